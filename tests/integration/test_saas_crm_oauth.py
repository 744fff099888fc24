"""Destination OAuth (issue 14): `auth: {refresh_token, client_id, client_secret}`
for HubSpot and Salesforce against their contract servers' token endpoints
(tests/contract/oauth_refresh.py). Access tokens are obtained by Backflow, kept
in memory only, renewed before they expire (HubSpot's expires_in) and once on
a 401 (a Salesforce session ending mid-run), and never printed or stored."""
import os

from test_saas_crm_salesforce import sf_config, sf_expected, sf_state
from test_saas_crm_support import (HS_SCHEMA, CrmCase, hubspot_config, hubspot_expected,
                                   hubspot_state)

CLIENT_ID = "3MVG9backflowConsumerKey"
CLIENT_SECRET = "oauthClientSecret0123456789abcdef"
REFRESH = "5Aep861backflowRefreshToken0123456789"
SECRETS = (CLIENT_SECRET, REFRESH, "00D5g000004Fake!AR", "CJT")


def auth_yaml(refresh=REFRESH, token_url=None):
    url = f", token_url: \"{token_url}\"" if token_url else ""
    return (f"    auth: {{refresh_token: \"{refresh}\", client_id: \"{CLIENT_ID}\", "
            f"client_secret: \"{CLIENT_SECRET}\"{url}}}\n")


def oauth_config(expires_in):
    return {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "refresh_token": REFRESH,
            "expires_in": expires_in}


class OAuthCase(CrmCase):
    def assertNothingLeaks(self, project, *texts):
        for t in texts:
            for s in SECRETS:
                self.assertNotIn(s, t)
        for root, _, files in os.walk(os.path.join(project.dir, ".backflow")):
            for f in files:
                with open(os.path.join(root, f), "rb") as fh:
                    data = fh.read()
                for s in SECRETS:
                    self.assertNotIn(s.encode(), data, f)


class HubSpotOAuth(OAuthCase):
    N = 250

    def setUp(self):
        self.p = self.new_project(rows=self.N)
        self.s = self.new_server("hubspot_server.py",
                                 {"schema": HS_SCHEMA, "oauth": oauth_config(2)})

    def configure(self, refresh=REFRESH, token_line=""):
        text = hubspot_config(self.s.base, extra=auth_yaml(refresh))
        # No static token: the refresh-token grant is the only credential.
        text = "\n".join(line for line in text.splitlines()
                         if not line.strip().startswith("token:")) + "\n"
        self.p.write_config(text.replace("    auth:", token_line + "    auth:"))

    def test_tokens_expiring_mid_run_are_renewed_before_they_end(self):
        self.configure()
        self.s.control(delay_ms=600)  # 5+ requests: the 2 s token ends mid-run
        run = self.run_sync(self.p, "contacts")
        self.assertCounts(run, status="succeeded", added=self.N, rejected=0, failed=0)
        self.assertEqual(hubspot_state(self.s), hubspot_expected(self.p))
        c = self.s.counters()["counters"]
        self.assertGreaterEqual(c["oauth_grants"], 2)
        self.assertNotIn("auth_failures", c)  # renewed before, never rejected
        self.assertNothingLeaks(self.p, run["_stderr"])

    def test_a_refused_refresh_token_is_a_clear_error_without_secrets(self):
        self.configure(refresh="5Aep861revokedRefreshToken999")
        p = self.p.run("run", "contacts", "--json")
        self.assertEqual(p.returncode, 4, p.stderr)
        self.assertIn("refused the refresh_token grant: BAD_REFRESH_TOKEN: missing or unknown "
                      "refresh token (HTTP 400)", p.stderr)
        self.assertNotIn("5Aep861revokedRefreshToken999", p.stdout + p.stderr)
        self.assertNothingLeaks(self.p, p.stdout, p.stderr)
        self.assertEqual(hubspot_state(self.s), {})

    def test_token_and_auth_together_is_a_config_error(self):
        self.configure(token_line="    token: \"pat-na1-static\"\n")
        v = self.p.run("run", "contacts")
        self.assertEqual(v.returncode, 2, v.stderr)
        self.assertIn("needs either token (an access token) or auth", v.stderr)
        text = hubspot_config(self.s.base, extra="    auth: {refresh_token: x, client_id: y}\n")
        self.p.write_config("\n".join(line for line in text.splitlines()
                                      if not line.strip().startswith("token:")) + "\n")
        v = self.p.run("run", "contacts")
        self.assertEqual(v.returncode, 2, v.stderr)
        self.assertIn("needs client_secret", v.stderr)


class SalesforceOAuth(OAuthCase):
    N = 120

    def setUp(self):
        self.p = self.new_project(rows=self.N)
        # The session ends after 0.8 s on the server; the token answer does
        # not say so (Salesforce sends no expires_in).
        self.s = self.new_server("salesforce_server.py",
                                 {"processing_ms": 60, "oauth": oauth_config(0.8)})

    def configure(self):
        text = sf_config(self.s.base, extra=auth_yaml(token_url=self.s.base +
                                                      "/services/oauth2/token"))
        text = "\n".join(line for line in text.splitlines()
                         if not line.strip().startswith("access_token:")) + "\n"
        self.p.write_config(text)

    def test_session_ending_mid_run_is_renewed_once_on_the_401(self):
        self.configure()
        self.s.control(delay_ms=300)  # ~8 requests: the session ends mid-run
        run = self.run_sync(self.p, "people")
        self.assertCounts(run, status="succeeded", added=self.N, rejected=0, failed=0)
        self.assertEqual(sf_state(self.s), sf_expected(self.p))
        c = self.s.counters()["counters"]
        self.assertGreaterEqual(c["auth_failures"], 1)
        # A new session after the 401s, at most one per 401 (requests in
        # flight together share one).
        self.assertGreaterEqual(c["oauth_grants"], 2)
        self.assertLessEqual(c["oauth_grants"], 1 + c["auth_failures"])
        self.assertNothingLeaks(self.p, run["_stderr"])

    def test_without_refresh_a_static_token_still_works(self):
        self.s.stop()
        self.s = self.new_server("salesforce_server.py", {"processing_ms": 60,
                                                          "token": "00D5g000004Static!AQ"})
        self.p.write_config(sf_config(self.s.base, token="00D5g000004Static!AQ"))
        run = self.run_sync(self.p, "people")
        self.assertCounts(run, status="succeeded", added=self.N)
        self.assertNotIn("oauth_grants", self.s.counters()["counters"])
