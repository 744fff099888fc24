"""The OAuth 2.0 refresh-token grant (RFC 6749 §6) as Salesforce and HubSpot serve
it, shared by their contract servers.

Salesforce (POST /services/oauth2/token, form grant_type=refresh_token,
client_id, client_secret, refresh_token; answer {access_token, instance_url,
id, token_type, issued_at, signature} and no expires_in: a session ends after
the org's session timeout, then the API answers 401 INVALID_SESSION_ID;
errors 400 {"error": "invalid_grant" | "invalid_client_id" | "invalid_client"
| "unsupported_grant_type", "error_description"}):
  https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_refresh_token_flow.htm
  https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/intro_understanding_refresh_token_oauth.htm
HubSpot (POST /oauth/v1/token, application/x-www-form-urlencoded with the same
four fields; answer {token_type, refresh_token, access_token, expires_in};
errors 400 {"status": "BAD_REFRESH_TOKEN" | "BAD_CLIENT_ID" | ..., "message"};
an expired token gets 401 category EXPIRED_AUTHENTICATION):
  https://developers.hubspot.com/docs/api-reference/legacy/authentication/oauth-tokens/v1/refresh-oauth-token.md
  https://developers.hubspot.com/docs/api-reference/legacy/authentication/oauth-tokens/v1/guide

Config "oauth": {"client_id", "client_secret", "refresh_token",
"expires_in" (seconds a token lives; HubSpot tells it, Salesforce does not)}.
Control keys: oauth_expires_in (for tokens issued from now on),
oauth_expire_all (every issued token ends now).
"""
import base64
import secrets
import time
import urllib.parse


class RefreshTokens:
    def __init__(self, config, vendor):
        self.vendor = vendor
        o = config.get("oauth") or {}
        self.client_id = o.get("client_id")
        self.client_secret = o.get("client_secret")
        self.refresh_token = o.get("refresh_token")
        self.expires_in = float(o.get("expires_in", 7200 if vendor == "salesforce" else 1800))
        self.tokens = {}  # access token -> expiry (unix seconds)
        self.grants = 0
        self.refused = []

    @property
    def path(self):
        return "/services/oauth2/token" if self.vendor == "salesforce" else "/oauth/v1/token"

    def valid(self, authorization):
        token = authorization[7:] if (authorization or "").startswith("Bearer ") else None
        return bool(token) and self.tokens.get(token, 0) > time.time()

    def control(self, key, value):
        if key == "oauth_expires_in":
            self.expires_in = float(value)
            return True
        if key == "oauth_expire_all":
            self.tokens = {t: 0 for t in self.tokens}
            return True
        return False

    def refuse(self, code, why):
        self.refused.append(code)
        if self.vendor == "salesforce":
            return 400, {"error": code, "error_description": why}, []
        return 400, {"status": code, "message": why, "correlationId": secrets.token_hex(8)}, []

    def grant(self, handler, base_url, body):
        """The token endpoint: returns (status, body, headers)."""
        ctype = (handler.headers.get("Content-Type") or "").split(";")[0].strip()
        if ctype != "application/x-www-form-urlencoded":
            return self.refuse("invalid_request" if self.vendor == "salesforce" else "BAD_REQUEST",
                               "Content-Type must be application/x-www-form-urlencoded")
        try:
            form = urllib.parse.parse_qs(body.decode(), strict_parsing=True)
        except ValueError:
            return self.refuse("invalid_request", "malformed form body")
        one = {k: v[0] for k, v in form.items() if len(v) == 1}
        sf = self.vendor == "salesforce"
        if one.get("grant_type") != "refresh_token":
            return self.refuse("unsupported_grant_type" if sf else "BAD_GRANT_TYPE",
                               "grant type not supported")
        if one.get("client_id") != self.client_id:
            return self.refuse("invalid_client_id" if sf else "BAD_CLIENT_ID",
                               "client identifier invalid" if sf else "missing or unknown client id")
        if one.get("client_secret") != self.client_secret:
            return self.refuse("invalid_client" if sf else "BAD_CLIENT_SECRET",
                               "invalid client credentials" if sf else "missing or invalid client secret")
        if one.get("refresh_token") != self.refresh_token:
            return self.refuse("invalid_grant" if sf else "BAD_REFRESH_TOKEN",
                               "expired access/refresh token" if sf else "missing or unknown refresh token")
        self.grants += 1
        if sf:
            token = "00D5g000004Fake!AR" + secrets.token_urlsafe(40)
        else:
            token = "CJT" + secrets.token_urlsafe(60)
        self.tokens[token] = time.time() + self.expires_in
        if sf:
            return 200, {"access_token": token, "instance_url": base_url,
                         "id": "https://login.salesforce.com/id/00D5g000004Fake/0055g00000Fake",
                         "token_type": "Bearer", "issued_at": str(int(time.time() * 1000)),
                         "signature": base64.b64encode(secrets.token_bytes(32)).decode()}, []
        return 200, {"token_type": "bearer", "refresh_token": self.refresh_token,
                     "access_token": token, "expires_in": int(self.expires_in)}, []
