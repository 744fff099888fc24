#!/usr/bin/env python3
"""Strict local stand-in for the Mailchimp Marketing API 3.0 list members
endpoints (Python stdlib).

  GET    /3.0/lists/{id}                          the list (check)
  POST   /3.0/lists/{id}                          batch subscribe/update:
         {"members": [{email_address, status, merge_fields?, tags?, language?, vip?}],
          "update_existing": bool}  (<= 500 members)
         -> 200 {new_members, updated_members, errors[{email_address, error, error_code}],
                 total_created, total_updated, error_count}
  DELETE /3.0/lists/{id}/members/{md5(lower(email))}              archive (204; 404 if none)
  POST   /3.0/lists/{id}/members/{hash}/actions/delete-permanent  delete (204; 404)
  auth: HTTP Basic, any user, the API key as password (401 otherwise).
  More than 10 simultaneous connections -> 429 (Mailchimp's rule).

Members are kept by subscriber hash; with update_existing, a member's
status and merge fields are replaced by what is sent, tags are added.

Control: GET /_state, POST /_control. Faults: status_sequence (statuses for the
next API requests: 429, 503, "bare403"), invalid_emails (plaintext emails
answered in errors[] with ERROR_GENERIC), delay_ms.
"""
import base64
import hashlib
import json
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STATUSES = ("subscribed", "unsubscribed", "cleaned", "pending", "transactional")
MERGE_TAG = re.compile(r"^[A-Z0-9_]{1,10}$")
LIST = re.compile(r"^/3\.0/lists/(\w+)(?:/members/([0-9a-f]{32})(/actions/delete-permanent)?)?(?:\?.*)?$")


def subscriber_hash(email):
    return hashlib.md5(email.strip().lower().encode()).hexdigest()


class State:
    def __init__(self, api_key, list_id):
        self.lock = threading.Lock()
        self.api_key, self.list_id = api_key, list_id
        self.faults = {}
        self.active = 0
        self.reset()

    def reset(self):
        self.members = {}
        self.counters = {k: 0 for k in (
            "requests", "batch_requests", "members_received", "created", "updated", "errors",
            "archived", "deleted", "not_found", "auth_failures", "bad_requests", "too_many_connections",
            "max_concurrent", "faults_served", "max_members_seen")}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    wbufsize = -1
    disable_nagle_algorithm = True

    def log_message(self, *a):
        pass

    @property
    def st(self):
        return self.server.state

    def reply(self, status, doc=None):
        body = b"" if doc is None else json.dumps(doc).encode()
        self.send_response(status)
        if doc is not None:
            self.send_header("Content-Type", "application/problem+json" if status >= 400 else "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def problem(self, status, title, detail):
        self.reply(status, {"type": "https://mailchimp.com/developer/marketing/docs/errors/",
                            "title": title, "status": status, "detail": detail, "instance": "test"})

    def read(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def do_GET(self):
        if self.path == "/_state":
            with self.st.lock:
                return self.reply(200, {"members": self.st.members, "counters": self.st.counters})
        self.api("GET")

    def do_POST(self):
        if self.path == "/_control":
            doc = json.loads(self.read() or b"{}")
            with self.st.lock:
                if doc.pop("reset", False):
                    self.st.reset()
                    self.st.faults = {}
                self.st.faults.update(doc)
            return self.reply(200, {"ok": True})
        self.api("POST")

    def do_DELETE(self):
        self.api("DELETE")

    def api(self, method):
        st = self.st
        raw = self.read()
        with st.lock:
            st.active += 1
            st.counters["max_concurrent"] = max(st.counters["max_concurrent"], st.active)
            too_many = st.active > 10
        try:
            if too_many:
                with st.lock:
                    st.counters["too_many_connections"] += 1
                return self.problem(429, "Too Many Requests",
                                    "You have exceeded the limit of 10 simultaneous connections.")
            delay = st.faults.get("delay_ms")
            if delay:
                time.sleep(delay / 1000)
            with st.lock:
                self.handle_api(method, raw)
        finally:
            with st.lock:
                st.active -= 1

    def handle_api(self, method, raw):
        st = self.st
        st.counters["requests"] += 1
        auth = self.headers.get("Authorization", "")
        ok = False
        if auth.startswith("Basic "):
            try:
                user, _, pw = base64.b64decode(auth[6:]).decode().partition(":")
                ok = pw == st.api_key
            except ValueError:
                ok = False
        if not ok:
            st.counters["auth_failures"] += 1
            return self.problem(401, "API Key Invalid", "Your API key may be invalid, or you've attempted to "
                                                        "access the wrong datacenter.")
        seq = st.faults.get("status_sequence") or []
        if seq:
            st.faults["status_sequence"] = seq[1:]
            st.counters["faults_served"] += 1
            f = seq[0]
            if f == "bare403":
                return self.reply(403)
            return self.problem(int(f), "Too Many Requests" if f == 429 else "Internal Server Error",
                                "injected fault")
        m = LIST.match(self.path)
        if not m or m.group(1) != st.list_id:
            return self.problem(404, "Resource Not Found", "The requested resource could not be found.")
        h, permanent = m.group(2), m.group(3)
        if h is None:
            if method == "GET":
                return self.reply(200, {"id": st.list_id, "name": "Test audience"})
            if method != "POST":
                return self.problem(405, "Method Not Allowed", "")
            return self.batch(raw)
        if (method, bool(permanent)) not in (("DELETE", False), ("POST", True)):
            return self.problem(405, "Method Not Allowed", "")
        member = st.members.get(h)
        if member is None or (not permanent and member["status"] == "archived"):
            st.counters["not_found"] += 1
            return self.problem(404, "Resource Not Found", "The requested resource could not be found.")
        if permanent:
            del st.members[h]
            st.counters["deleted"] += 1
        else:
            member["status"] = "archived"
            st.counters["archived"] += 1
        return self.reply(204)

    def bad(self, detail):
        self.st.counters["bad_requests"] += 1
        return self.problem(400, "Invalid Resource", detail)

    def batch(self, raw):
        st = self.st
        if "application/json" not in (self.headers.get("Content-Type") or ""):
            return self.bad("Content-Type must be application/json")
        try:
            doc = json.loads(raw)
        except ValueError:
            return self.bad("We encountered an unspecified JSON parsing error.")
        members = doc.get("members") if isinstance(doc, dict) else None
        if not isinstance(members, list) or not members:
            return self.bad("members must be a non-empty array")
        if len(members) > 500:
            return self.bad("You may only subscribe 500 members at a time.")
        upd = doc.get("update_existing", False)
        if not isinstance(upd, bool):
            return self.bad("update_existing must be a boolean")
        st.counters["batch_requests"] += 1
        st.counters["members_received"] += len(members)
        st.counters["max_members_seen"] = max(st.counters["max_members_seen"], len(members))
        bad = {e.strip().lower() for e in st.faults.get("invalid_emails") or []}
        new, updated, errors = [], [], []
        for m in members:
            if not isinstance(m, dict) or not isinstance(m.get("email_address"), str):
                return self.bad("Schema describes object, array found instead")
            email = m["email_address"]
            if m.get("status") not in STATUSES:
                return self.bad(f"status must be one of {', '.join(STATUSES)}")
            mf = m.get("merge_fields", {})
            if not isinstance(mf, dict) or any(not MERGE_TAG.match(k) for k in mf):
                return self.bad("merge_fields keys must be merge tags")
            tags = m.get("tags", [])
            if not isinstance(tags, list) or any(not isinstance(t, str) or not t for t in tags):
                return self.bad("tags must be a list of names")
            extra = set(m) - {"email_address", "status", "merge_fields", "tags", "language", "vip", "email_type"}
            if extra:
                return self.bad(f"unknown member fields: {sorted(extra)}")
            if email != email.strip():
                return self.bad("email_address has surrounding whitespace")
            if "@" not in email or email.strip().lower() in bad:
                errors.append({"email_address": email, "error_code": "ERROR_GENERIC",
                               "error": f"{email} looks fake or invalid, please enter a real email address."})
                continue
            h = subscriber_hash(email)
            cur = st.members.get(h)
            if cur is not None and cur["status"] != "archived" and not upd:
                errors.append({"email_address": email, "error_code": "ERROR_CONTACT_EXISTS",
                               "error": f"{email} is already a list member."})
                continue
            rec = {"email_address": email, "status": m["status"], "merge_fields": dict(mf),
                   "tags": sorted(set(tags) | set((cur or {}).get("tags", [])))}
            if cur is not None:
                merged = dict(cur["merge_fields"])
                merged.update(mf)
                rec["merge_fields"] = merged
            st.members[h] = rec
            (updated if cur is not None else new).append({"id": h, "email_address": email,
                                                          "status": m["status"]})
        st.counters["created"] += len(new)
        st.counters["updated"] += len(updated)
        st.counters["errors"] += len(errors)
        return self.reply(200, {"new_members": new, "updated_members": updated, "errors": errors,
                                "total_created": len(new), "total_updated": len(updated),
                                "error_count": len(errors)})


class Server:
    def __init__(self, api_key="0123456789abcdef0123456789abcdef-us14", list_id="a1b2c3d4e5", port=0):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        self.httpd.state = State(api_key, list_id)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def control(self, **kw):
        with self.httpd.state.lock:
            self.httpd.state.faults.update(kw)

    def state(self):
        st = self.httpd.state
        with st.lock:
            return {"members": json.loads(json.dumps(st.members)), "counters": dict(st.counters)}

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


if __name__ == "__main__":
    s = Server(port=int(sys.argv[1]) if len(sys.argv) > 1 else 0)
    print(s.httpd.server_address[1], flush=True)
    s.thread.join()
