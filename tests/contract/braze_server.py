#!/usr/bin/env python3
"""Strict local stand-in for Braze's /users/track and /users/delete (stdlib).

  POST /users/track   {"attributes": [...], "events": [...], "purchases": [...]}
       at most 75 objects in the three arrays together; every object has
       exactly one identifier: external_id, user_alias {alias_name, alias_label},
       or braze_id (else email identifies it); alias-only users need "_update_existing_only": false.
       201 {"message": "success", "attributes_processed": n[, "errors": [
             {"type": ..., "input_array": "attributes", "index": i}]]}
       400 {"message": "..."} for a fatal problem (nothing applied).
  POST /users/delete  {"external_ids": [...]} | {"user_aliases": [...]}, <= 50
       201 {"deleted": n, "message": "success"}
  auth: Authorization: Bearer <REST API key>   (401 {"message": "Invalid API key: ..."})
  Every answer carries X-RateLimit-Limit/Remaining/Reset.

Users are kept by identifier; attributes merge, null removes one.

Control: GET /_state, POST /_control. Faults: status_sequence (429 with
Retry-After: 0 and X-RateLimit-Remaining: 0, 500, 503), invalid_ids (identifier
values answered as non-fatal errors, not applied).
"""
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class State:
    def __init__(self, api_key):
        self.lock = threading.Lock()
        self.api_key = api_key
        self.faults = {}
        self.reset()

    def reset(self):
        self.users = {}
        self.counters = {k: 0 for k in (
            "requests", "track_requests", "delete_requests", "attributes", "applied", "errors",
            "deleted", "auth_failures", "bad_requests", "faults_served", "max_objects_seen")}


def ident(obj):
    """The object's identifier; email identifies only an object without the others."""
    keys = [k for k in ("external_id", "user_alias", "braze_id") if k in obj] or \
        [k for k in ("email",) if k in obj]
    if len(keys) != 1:
        return None
    k = keys[0]
    v = obj[k]
    if k == "user_alias":
        if not isinstance(v, dict) or set(v) != {"alias_name", "alias_label"} or \
                not all(isinstance(x, str) and x for x in v.values()):
            return None
        return f"alias:{v['alias_label']}:{v['alias_name']}"
    return f"{k}:{v}" if isinstance(v, str) and v else None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    wbufsize = -1
    disable_nagle_algorithm = True

    def log_message(self, *a):
        pass

    @property
    def st(self):
        return self.server.state

    def reply(self, status, doc, extra=()):
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-RateLimit-Limit", "3000")
        self.send_header("X-RateLimit-Remaining", "0" if status == 429 else "2999")
        self.send_header("X-RateLimit-Reset", str(int(time.time()) + 1))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/_state":
            with self.st.lock:
                return self.reply(200, {"users": self.st.users, "counters": self.st.counters})
        self.reply(404, {"message": "not found"})

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        st = self.st
        if self.path == "/_control":
            doc = json.loads(raw or b"{}")
            with st.lock:
                if doc.pop("reset", False):
                    st.reset()
                    st.faults = {}
                st.faults.update(doc)
            return self.reply(200, {"ok": True})
        with st.lock:
            st.counters["requests"] += 1
            if self.headers.get("Authorization") != f"Bearer {st.api_key}":
                st.counters["auth_failures"] += 1
                return self.reply(401, {"message": "Invalid API key: check your key"})
            seq = st.faults.get("status_sequence") or []
            if seq:
                st.faults["status_sequence"] = seq[1:]
                st.counters["faults_served"] += 1
                extra = [("Retry-After", "0")] if seq[0] == 429 else []
                return self.reply(int(seq[0]), {"message": "injected fault"}, extra)
            if "application/json" not in (self.headers.get("Content-Type") or ""):
                return self.bad("Content-Type must be application/json")
            try:
                doc = json.loads(raw)
            except ValueError:
                return self.bad("Invalid JSON")
            if self.path == "/users/track":
                return self.track(doc)
            if self.path == "/users/delete":
                return self.delete(doc)
            return self.reply(404, {"message": "not found"})

    def bad(self, message):
        self.st.counters["bad_requests"] += 1
        return self.reply(400, {"message": message})

    def track(self, doc):
        st = self.st
        if not isinstance(doc, dict) or set(doc) - {"attributes", "events", "purchases"}:
            return self.bad("unknown top-level key")
        arrays = [doc.get(k) or [] for k in ("attributes", "events", "purchases")]
        total = sum(len(a) for a in arrays)
        if total == 0:
            return self.bad("Valid data must be provided in the 'attributes', 'events', or 'purchases' fields.")
        if total > 75:
            return self.bad("Too many objects: at most 75 across attributes, events and purchases")
        attrs = arrays[0]
        for a in attrs:
            if not isinstance(a, dict) or ident(a) is None:
                return self.bad("Each object needs exactly one of external_id, user_alias, braze_id, email")
            if "user_alias" in a and a.get("_update_existing_only") is not False:
                return self.bad("alias-only users need _update_existing_only: false")
        st.counters["track_requests"] += 1
        st.counters["max_objects_seen"] = max(st.counters["max_objects_seen"], total)
        st.counters["attributes"] += len(attrs)
        bad = set(st.faults.get("invalid_ids") or [])
        errors = []
        for i, a in enumerate(attrs):
            key = ident(a)
            if key.split(":")[-1] in bad:
                errors.append({"type": "'external_id' or 'braze_id' or 'user_alias' is required",
                               "input_array": "attributes", "index": i})
                continue
            user = st.users.setdefault(key, {})
            for k, v in a.items():
                if k in ("external_id", "user_alias", "braze_id", "_update_existing_only"):
                    continue
                if v is None:
                    user.pop(k, None)
                else:
                    user[k] = v
            st.counters["applied"] += 1
        st.counters["errors"] += len(errors)
        resp = {"message": "success", "attributes_processed": len(attrs) - len(errors)}
        if errors:
            resp["errors"] = errors
        return self.reply(201, resp)

    def delete(self, doc):
        st = self.st
        if not isinstance(doc, dict) or len(doc) != 1 or next(iter(doc)) not in ("external_ids", "user_aliases"):
            return self.bad("give one of external_ids or user_aliases")
        k, ids = next(iter(doc.items()))
        if not isinstance(ids, list) or not ids or len(ids) > 50:
            return self.bad("between 1 and 50 ids per request")
        st.counters["delete_requests"] += 1
        deleted = 0
        for v in ids:
            key = ident({"external_id": v} if k == "external_ids" else {"user_alias": v})
            if key is None:
                return self.bad("invalid id")
            if st.users.pop(key, None) is not None:
                deleted += 1
        st.counters["deleted"] += deleted
        return self.reply(201, {"deleted": deleted, "message": "success"})


class Server:
    def __init__(self, api_key="braze-rest-key-123", port=0):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        self.httpd.state = State(api_key)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def control(self, **kw):
        with self.httpd.state.lock:
            self.httpd.state.faults.update(kw)

    def state(self):
        st = self.httpd.state
        with st.lock:
            return {"users": json.loads(json.dumps(st.users)), "counters": dict(st.counters)}

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


if __name__ == "__main__":
    s = Server(port=int(sys.argv[1]) if len(sys.argv) > 1 else 0)
    print(s.httpd.server_address[1], flush=True)
    s.thread.join()
