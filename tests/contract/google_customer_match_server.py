#!/usr/bin/env python3
"""Strict local stand-in for the Google Ads API OfflineUserDataJobService
(REST, Customer Match), Python stdlib only.

  POST /vNN/customers/{cid}/offlineUserDataJobs:create
       {"job": {"type": "CUSTOMER_MATCH_USER_LIST",
                "customerMatchUserListMetadata": {"userList": "customers/{cid}/userLists/{id}",
                                                  ["consent": {...}]}}}
       -> {"resourceName": "customers/{cid}/offlineUserDataJobs/{n}"}
  POST /vNN/customers/{cid}/offlineUserDataJobs/{n}:addOperations
       {"enablePartialFailure": true, "operations": [{"create"|"remove": {"userIdentifiers": [...]}}]}
       -> {} or {"partialFailureError": {"code": 3, "message", "details": [GoogleAdsFailure]}}
  POST /vNN/customers/{cid}/offlineUserDataJobs/{n}:run -> {"name": "customers/{cid}/operations/..."}
  POST /vNN/customers/{cid}/googleAds:search  {"query": GAQL on offline_user_data_job or user_list}
  auth: Authorization: Bearer <access token> (401 UNAUTHENTICATED) and
        developer-token (403 PERMISSION_DENIED); login-customer-id recorded.

Checks: <= 100,000 operations per call; one of create/remove per operation;
1..20 identifiers, each exactly one of hashedEmail, hashedPhoneNumber,
addressInfo {hashedFirstName, hashedLastName, countryCode (2 upper-case
letters, clear), postalCode (clear)}, thirdPartyUserId, mobileId; hashes
are 64 lowercase hex. With known plaintext, every hash must be Google's
normalisation of a known value (re-hashed here): else hash_mismatch counts.
A job runs once; operations apply when a poll sees it SUCCESS.

Control: GET /_state, POST /_control (as the Meta server). Faults:
  status_sequence  statuses for the next API calls: 429 (RESOURCE_EXHAUSTED),
                   503, "aborted" (409 ABORTED, concurrent modification)
  invalid_emails   plaintext emails whose operations fail (partial failure)
  fail_jobs        N: the next N jobs that run end FAILED (nothing applied)
  polls_to_finish  polls a job stays RUNNING before it finishes (default 0)
"""
import argparse
import hashlib
import json
import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HEX64 = re.compile(r"^[0-9a-f]{64}$")
ROUTE = re.compile(r"^/v\d+/customers/(\d+)/(offlineUserDataJobs:create|offlineUserDataJobs/(\d+):"
                   r"(addOperations|run)|googleAds:search)$")
IDENT = ("hashedEmail", "hashedPhoneNumber", "addressInfo", "thirdPartyUserId", "mobileId")


def sha(s):
    return hashlib.sha256(s.encode()).hexdigest()


def google_email(e):
    e = re.sub(r"\s", "", e).lower()
    local, _, dom = e.partition("@")
    if dom in ("gmail.com", "googlemail.com"):
        local = local.split("+", 1)[0].replace(".", "")
    return f"{local}@{dom}"


def google_phone(p):
    return "+" + re.sub(r"\D", "", p).lstrip("0")


def google_name(n):
    return " ".join("".join(ch for ch in w if ch.isalpha()) for w in n.strip().lower().split()).strip()


class State:
    def __init__(self, token, dev_token, customer_id, user_list_id):
        self.lock = threading.Lock()
        self.token, self.dev_token = token, dev_token
        self.customer_id, self.user_list_id = customer_id, user_list_id
        self.faults = {}
        self.reset()

    def reset(self):
        self.jobs = {}
        self.next_job = 1
        self.members = []
        self.index = {}
        self.known = {}
        self.counters = {k: 0 for k in (
            "requests", "jobs_created", "jobs_run", "jobs_succeeded", "jobs_failed",
            "add_operations_calls", "operations", "operations_applied", "partial_failures",
            "hash_mismatch", "bad_requests", "auth_failures", "faults_served", "max_ops_seen",
            "members_removed")}

    def set_known(self, people):
        k = {"email": set(), "phone": set(), "first_name": set(), "last_name": set()}
        for p in people:
            if p.get("email"):
                k["email"].add(sha(google_email(p["email"])))
            if p.get("phone"):
                k["phone"].add(sha(google_phone(p["phone"])))
            for f in ("first_name", "last_name"):
                if p.get(f):
                    k[f].add(sha(google_name(p[f])))
        self.known = k

    @staticmethod
    def ids(idents):
        out = []
        for i in idents:
            if "hashedEmail" in i:
                out.append(("email", i["hashedEmail"]))
            elif "hashedPhoneNumber" in i:
                out.append(("phone", i["hashedPhoneNumber"]))
            elif "thirdPartyUserId" in i:
                out.append(("crm", i["thirdPartyUserId"]))
            elif "mobileId" in i:
                out.append(("mobile", i["mobileId"]))
            else:
                a = i["addressInfo"]
                out.append(("address", (a["hashedFirstName"], a["hashedLastName"], a["countryCode"],
                                        a["postalCode"])))
        return out

    def apply(self, op):
        kind, idents = op
        ids = self.ids(idents)
        hit = set()
        for c in ids:
            hit |= {i for i in self.index.get(c, ()) if self.members[i] is not None}
        if kind == "create":
            if hit:
                idx = min(hit)
                self.members[idx].update(dict(ids))
            else:
                self.members.append(dict(ids))
                idx = len(self.members) - 1
            for c in ids:
                self.index.setdefault(c, set()).add(idx)
        else:
            for idx in hit:
                self.members[idx] = None
                self.counters["members_removed"] += 1

    def dump(self):
        return [{k: (list(v) if isinstance(v, tuple) else v) for k, v in m.items()}
                for m in self.members if m is not None]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    wbufsize = -1
    disable_nagle_algorithm = True

    def log_message(self, *a):
        pass

    @property
    def st(self):
        return self.server.state

    def reply(self, status, doc):
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def error(self, status, gstatus, message, code_name=None, code_value=None):
        err = {"code": status, "message": message, "status": gstatus}
        if code_name:
            err["details"] = [{"@type": "type.googleapis.com/google.ads.googleads.v21.errors.GoogleAdsFailure",
                               "errors": [{"errorCode": {code_name: code_value}, "message": message}]}]
        self.reply(status, {"error": err})

    def bad(self, message, code_name="requestError", code_value="INVALID_INPUT"):
        self.st.counters["bad_requests"] += 1
        return self.error(400, "INVALID_ARGUMENT", message, code_name, code_value)

    def do_GET(self):
        if self.path == "/_state":
            with self.st.lock:
                return self.reply(200, {"members": self.st.dump(), "counters": self.st.counters,
                                        "jobs": {k: v["status"] for k, v in self.st.jobs.items()}})
        self.error(404, "NOT_FOUND", "no such route")

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        if self.path == "/_control":
            doc = json.loads(raw or b"{}")
            with self.st.lock:
                if doc.pop("reset", False):
                    self.st.reset()
                    self.st.faults = {}
                if "known" in doc:
                    self.st.set_known(doc.pop("known"))
                self.st.faults.update(doc)
            return self.reply(200, {"ok": True})
        with self.st.lock:
            self.api(raw)

    def api(self, raw):
        st = self.st
        st.counters["requests"] += 1
        if self.headers.get("Authorization") != f"Bearer {st.token}":
            st.counters["auth_failures"] += 1
            return self.error(401, "UNAUTHENTICATED", "Request is missing required authentication credential.",
                              "authenticationError", "NOT_ADS_USER")
        if self.headers.get("developer-token") != st.dev_token:
            st.counters["auth_failures"] += 1
            return self.error(403, "PERMISSION_DENIED", "The developer token is not valid.",
                              "authorizationError", "DEVELOPER_TOKEN_NOT_APPROVED")
        m = ROUTE.match(self.path)
        if not m:
            return self.error(404, "NOT_FOUND", "no such method")
        if m.group(1) != st.customer_id:
            return self.error(403, "PERMISSION_DENIED", "The caller does not have permission",
                              "authorizationError", "USER_PERMISSION_DENIED")
        seq = st.faults.get("status_sequence") or []
        if seq:
            st.faults["status_sequence"] = seq[1:]
            st.counters["faults_served"] += 1
            f = seq[0]
            if f == 429:
                return self.error(429, "RESOURCE_EXHAUSTED", "Too many requests. Retry in 1 seconds.",
                                  "quotaError", "RESOURCE_TEMPORARILY_EXHAUSTED")
            if f == "aborted":
                return self.error(409, "ABORTED", "Multiple requests were attempting to modify the same resource.",
                                  "databaseError", "CONCURRENT_MODIFICATION")
            return self.error(int(f), "UNAVAILABLE", "The service is currently unavailable.")
        if "application/json" not in (self.headers.get("Content-Type") or ""):
            return self.bad("Content-Type must be application/json")
        try:
            doc = json.loads(raw)
        except ValueError:
            return self.bad("Invalid JSON payload received.")
        what = m.group(2)
        if what == "offlineUserDataJobs:create":
            return self.create(doc)
        if what == "googleAds:search":
            return self.search(doc)
        job = st.jobs.get(m.group(3))
        if job is None:
            return self.error(404, "NOT_FOUND", "Resource was not found.", "mutateError", "RESOURCE_NOT_FOUND")
        if m.group(4) == "addOperations":
            return self.add_operations(job, doc)
        return self.run(job, m.group(3))

    def create(self, doc):
        st = self.st
        job = doc.get("job") if isinstance(doc, dict) else None
        if not isinstance(job, dict) or job.get("type") != "CUSTOMER_MATCH_USER_LIST":
            return self.bad("job.type must be CUSTOMER_MATCH_USER_LIST")
        meta = job.get("customerMatchUserListMetadata") or {}
        want = f"customers/{st.customer_id}/userLists/{st.user_list_id}"
        if meta.get("userList") != want:
            return self.bad("The user list is not a Customer Match list of this customer.",
                            "offlineUserDataJobError", "INVALID_USER_LIST_ID")
        consent = meta.get("consent")
        if consent is not None and (not isinstance(consent, dict) or any(
                k not in ("adUserData", "adPersonalization") or v not in ("GRANTED", "DENIED", "UNSPECIFIED")
                for k, v in consent.items())):
            return self.bad("invalid consent")
        jid = str(st.next_job)
        st.next_job += 1
        st.jobs[jid] = {"status": "PENDING", "ops": [], "polls": 0}
        st.counters["jobs_created"] += 1
        return self.reply(200, {"resourceName": f"customers/{st.customer_id}/offlineUserDataJobs/{jid}"})

    def check_identifier(self, i):
        """None if valid, else a reason."""
        st = self.st
        if not isinstance(i, dict) or len(i) != 1 or next(iter(i)) not in IDENT:
            return "each userIdentifier must hold exactly one identifier"
        k, v = next(iter(i.items()))
        if k in ("hashedEmail", "hashedPhoneNumber"):
            if not isinstance(v, str) or not HEX64.match(v):
                return f"{k} must be a lowercase hex SHA-256"
            if st.known:
                pool = st.known["email" if k == "hashedEmail" else "phone"]
                if v not in pool:
                    st.counters["hash_mismatch"] += 1
        elif k == "addressInfo":
            if not isinstance(v, dict) or set(v) != {"hashedFirstName", "hashedLastName", "countryCode",
                                                     "postalCode"}:
                return "addressInfo needs hashedFirstName, hashedLastName, countryCode and postalCode"
            for f in ("hashedFirstName", "hashedLastName"):
                if not HEX64.match(v[f]):
                    return f"{f} must be a lowercase hex SHA-256"
                if st.known and v[f] not in st.known["first_name" if f == "hashedFirstName" else "last_name"]:
                    st.counters["hash_mismatch"] += 1
            if not re.match(r"^[A-Z]{2}$", v["countryCode"]):
                return "countryCode must be ISO 3166-1 alpha-2, in clear"
            if not v["postalCode"] or HEX64.match(v["postalCode"]):
                return "postalCode must be sent in clear"
        elif not isinstance(v, str) or not v:
            return f"{k} must be a non-empty string"
        return None

    def add_operations(self, job, doc):
        st = self.st
        if job["status"] != "PENDING":
            return self.bad("The job is not PENDING.", "offlineUserDataJobError",
                            "INVALID_JOB_STATUS")  # not applied
        ops = doc.get("operations") if isinstance(doc, dict) else None
        if not isinstance(ops, list) or not ops:
            return self.bad("operations must be a non-empty list")
        if len(ops) > 100000:
            return self.bad("Too many operations in the request.", "requestError", "TOO_MANY_MUTATE_OPERATIONS")
        st.counters["add_operations_calls"] += 1
        st.counters["max_ops_seen"] = max(st.counters["max_ops_seen"], len(ops))
        bad_emails = {sha(google_email(e)) for e in st.faults.get("invalid_emails") or []}
        errors, accepted = [], []
        for n, op in enumerate(ops):
            why = None
            kind = None
            if not isinstance(op, dict) or len(op) != 1 or next(iter(op)) not in ("create", "remove"):
                why = "operation must be one of create or remove"
            else:
                kind, body = next(iter(op.items()))
                idents = body.get("userIdentifiers") if isinstance(body, dict) else None
                if not isinstance(idents, list) or not idents:
                    why = "userIdentifiers must be a non-empty list"
                elif len(idents) > 20:
                    why = "Too many user identifiers in the user data (at most 20)."
                else:
                    for i in idents:
                        why = self.check_identifier(i)
                        if why:
                            break
                    if not why and any(i.get("hashedEmail") in bad_emails for i in idents):
                        why = "The email address is not valid."
            if why:
                errors.append({"errorCode": {"offlineUserDataJobError": "INVALID_USER_IDENTIFIER"},
                               "message": why,
                               "location": {"fieldPathElements": [{"fieldName": "operations", "index": n}]}})
            else:
                accepted.append((kind, idents))
        st.counters["operations"] += len(ops)
        if errors and not doc.get("enablePartialFailure"):
            return self.bad(errors[0]["message"], "offlineUserDataJobError", "INVALID_USER_IDENTIFIER")
        job["ops"].extend(accepted)
        if not errors:
            return self.reply(200, {})
        st.counters["partial_failures"] += len(errors)
        return self.reply(200, {"partialFailureError": {
            "code": 3, "message": f"{len(errors)} operations failed",
            "details": [{"@type": "type.googleapis.com/google.ads.googleads.v21.errors.GoogleAdsFailure",
                         "errors": errors}]}})

    def run(self, job, jid):
        st = self.st
        if job["status"] != "PENDING":
            return self.bad("The job has already been run.", "offlineUserDataJobError", "INVALID_JOB_STATUS")
        job["status"] = "RUNNING"
        fail = st.faults.get("fail_jobs") or 0
        if fail:
            st.faults["fail_jobs"] = fail - 1
            job["fail"] = True
        st.counters["jobs_run"] += 1
        return self.reply(200, {"name": f"customers/{st.customer_id}/operations/job-{jid}"})

    def search(self, doc):
        st = self.st
        q = doc.get("query", "") if isinstance(doc, dict) else ""
        m = re.search(r"offline_user_data_job\.resource_name = '([^']+)'", q)
        if m and "FROM offline_user_data_job" in q:
            jid = m.group(1).rsplit("/", 1)[-1]
            job = st.jobs.get(jid)
            if job is None:
                return self.reply(200, {"results": []})
            if job["status"] == "RUNNING":
                job["polls"] += 1
                if job["polls"] > (st.faults.get("polls_to_finish") or 0):
                    if job.get("fail"):
                        job["status"] = "FAILED"
                        st.counters["jobs_failed"] += 1
                    else:
                        for op in job["ops"]:
                            st.apply(op)
                            st.counters["operations_applied"] += 1
                        job["status"] = "SUCCESS"
                        st.counters["jobs_succeeded"] += 1
            row = {"resourceName": m.group(1), "status": job["status"]}
            if job["status"] == "FAILED":
                row["failureReason"] = "UNKNOWN"
            return self.reply(200, {"results": [{"offlineUserDataJob": row}],
                                    "fieldMask": "offlineUserDataJob.status,offlineUserDataJob.failureReason"})
        m = re.search(r"user_list\.resource_name = '([^']+)'", q)
        if m and "FROM user_list" in q:
            want = f"customers/{st.customer_id}/userLists/{st.user_list_id}"
            res = [{"userList": {"resourceName": want, "id": st.user_list_id, "name": "test list"}}] \
                if m.group(1) == want else []
            return self.reply(200, {"results": res})
        return self.bad("Error in query: unsupported", "queryError", "UNEXPECTED_INPUT")


class Server:
    def __init__(self, token="ya29.test", dev_token="devtok-123", customer_id="1234567890",
                 user_list_id="555", port=0):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        self.httpd.state = State(token, dev_token, customer_id, user_list_id)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def control(self, **kw):
        st = self.httpd.state
        with st.lock:
            if "known" in kw:
                st.set_known(kw.pop("known"))
            st.faults.update(kw)

    def state(self):
        st = self.httpd.state
        with st.lock:
            return {"members": st.dump(), "counters": dict(st.counters),
                    "jobs": {k: v["status"] for k, v in st.jobs.items()}}

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    a = ap.parse_args()
    s = Server(port=a.port)
    print(s.httpd.server_address[1], flush=True)
    s.thread.join()


if __name__ == "__main__":
    sys.exit(main())
