#!/usr/bin/env python3
"""Strict local stand-in for Meta's Custom Audience users edge (Python stdlib).

Implements what Backflow's meta_audience destination relies on, and refuses
anything else the way the Graph API does (JSON error objects):

  POST   /v{N}.{M}/{audience_id}/users   add members
  DELETE /v{N}.{M}/{audience_id}/users   remove members
  GET    /v{N}.{M}/{audience_id}         the audience (check)
  body   {"payload": {"schema": "EMAIL" | ["EMAIL", "PHONE", ...],
                      "data": [["<sha256 hex>", ...], ...]},
          "session": {"session_id": int, "batch_seq": int, "last_batch_flag": bool,
                      ["estimated_num_total": int]}}
  auth   Authorization: Bearer <token> (or ?access_token=)   else 400 code 190
  200    {"audience_id", "session_id", "num_received", "num_invalid_entries",
          "invalid_entry_samples": {value: reason}}

Checks: schema keys are Meta's; every row has one cell per key; hashed keys
hold "" or 64 lowercase hex digits, EXTERN_ID/MADID are clear text; at most
--max-rows rows (400 code 100 otherwise); batch_seq goes 1, 2, 3 within a
session. With known plaintext (`known`), every received hash must be the
SHA-256 of a known value normalised per Meta's rules (re-hashed here,
independently of Backflow's C code): a mismatch counts in hash_mismatch and
the row is reported invalid, as Meta would fail to match it.

Members: a member is the {key: value} cells of an added row; an added row
sharing an identifying cell (EMAIL, PHONE, EXTERN_ID, MADID) with a member
updates it; a removal removes every member sharing an identifying cell with
the removed row (Meta matches people by any identifier).

Control (no auth): GET /_state  {members, counters, sessions, faults}
                   POST /_control {faults..., "reset": true, "known": [...]}
Faults:
  status_sequence  list answered to the next /users requests, in order, before
                   handling (not applied): an HTTP status, "throttle" (400 code
                   17), "throttle613", "transient" (500 code 2, is_transient)
  invalid_emails   plaintext emails whose rows Meta calls invalid (not added)
  short_received   N: the next N requests are applied to no row and answer
                   num_received 0 (a lost batch)
  delay_ms         sleep before each /users request

    python3 meta_audience_server.py --port 0 --token T --audience-id 123 [--no-verify] [--lean]
"""
import argparse
import hashlib
import json
import re
import sys
import threading
import time
import unicodedata
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

KEYS = ("EMAIL", "PHONE", "FN", "LN", "FI", "CT", "ST", "ZIP", "COUNTRY", "DOBY", "DOBM",
        "DOBD", "GEN", "EXTERN_ID", "MADID")
CLEAR_KEYS = ("EXTERN_ID", "MADID")
# Keys that identify a person on their own; names, places, birth dates and
# gender only help Meta match and never identify a member alone.
ID_KEYS = ("EMAIL", "PHONE", "EXTERN_ID", "MADID")
HEX_RUN = re.compile(r"[0-9a-f]*")
PATH = re.compile(r"^/v\d+\.\d+/(\d+)(/users|/usersreplace)?$")

US_STATES = {"california": "ca", "newyork": "ny", "texas": "tx", "florida": "fl",
             "washington": "wa", "districtofcolumbia": "dc"}


def _letters(v):
    return "".join(ch for ch in unicodedata.normalize("NFC", v.strip()).lower() if ch.isalpha())


def meta_normalize(key, value):
    """Meta's published normalisation, in Python (independent of the C code)."""
    v = str(value).strip()
    if key == "EMAIL":
        return v.lower()
    if key == "PHONE":
        return re.sub(r"\D", "", v).lstrip("0")
    if key in ("FN", "LN", "CT"):
        return _letters(v)
    if key == "FI":
        return _letters(v)[:1]
    if key == "ST":
        s = _letters(v)
        return US_STATES.get(s, s)
    if key == "ZIP":
        z = re.sub(r"\s", "", v.lower())
        return z[:5] if re.match(r"^\d{5}(-?\d{4})?$", z) else z
    if key == "COUNTRY":
        return {"usa": "us", "unitedstates": "us", "unitedkingdom": "gb"}.get(_letters(v), _letters(v))
    if key == "GEN":
        return _letters(v)[:1]
    if key in ("DOBY",):
        return v[:4]
    if key in ("DOBM", "DOBD"):
        part = v[5:7] if key == "DOBM" else v[8:10]
        return part if len(v) >= 10 else v.zfill(2)
    if key == "MADID":
        return v.lower()
    return v


def meta_hash(key, value):
    norm = meta_normalize(key, value)
    if key in CLEAR_KEYS:
        return norm
    return hashlib.sha256(norm.encode()).hexdigest()


class State:
    def __init__(self, token, audience_id, max_rows, verify, lean=False):
        self.lean = lean
        self.lock = threading.Lock()
        self.token = token
        self.audience_id = audience_id
        self.max_rows = max_rows
        self.verify = verify
        self.reset()
        self.faults = {}

    def reset(self):
        self.members = []          # list of {key: value}, None once removed
        self.index = {}            # (key, value) -> set(member idx)
        self.sessions = {}         # (method, session_id) -> last batch_seq
        self.replacing = {}        # usersreplace session_id -> rows received so far (cells)
        self.replaced = []         # closed usersreplace sessions: {"session_id", "batches", "rows"}
        self.known = {}            # key -> set(expected cell)
        self.counters = {k: 0 for k in (
            "requests", "add_requests", "remove_requests", "rows_received", "rows_added",
            "rows_removed", "invalid_entries", "hash_mismatch", "auth_failures", "bad_requests",
            "throttled", "faults_served", "max_rows_seen", "replace_requests", "replace_sessions_closed",
            "users_during_replace")}

    def set_known(self, people):
        self.known = {}
        for person in people:
            for k, v in person.items():
                if v is None or str(v).strip() == "":
                    continue
                self.known.setdefault(k, set()).add(meta_hash(k, v))

    def add(self, cells):
        """A row whose identifying cell is already a member's updates that member."""
        m = dict(cells)
        ids = [(k, v) for k, v in cells if k in ID_KEYS]
        for c in ids:
            for idx in self.index.get(c, ()):
                if self.members[idx] is not None:
                    self.members[idx].update(m)
                    for c2 in ids:
                        self.index.setdefault(c2, set()).add(idx)
                    return
        self.members.append(m)
        idx = len(self.members) - 1
        for c in ids:
            self.index.setdefault(c, set()).add(idx)

    def remove(self, cells):
        """Removes every member sharing an identifying cell with the row."""
        hit = set()
        for c in cells:
            if c[0] in ID_KEYS:
                hit |= self.index.get(c, set())
        removed = 0
        for idx in hit:
            m = self.members[idx]
            if m is None:
                continue
            for c in m.items():
                if c[0] in ID_KEYS:
                    self.index.get(c, set()).discard(idx)
            self.members[idx] = None
            removed += 1
        return removed

    def dump(self):
        return [dict(m) for m in self.members if m is not None]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "meta-contract/1"
    # One write per response (headers + body) and no Nagle: otherwise the
    # client's delayed ACK stalls every keep-alive answer by ~40 ms.
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
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def graph_error(self, status, code, message, subcode=None, transient=False, etype="OAuthException"):
        err = {"message": message, "type": etype, "code": code, "fbtrace_id": "Atest"}
        if subcode:
            err["error_subcode"] = subcode
        if transient:
            err["is_transient"] = True
        self.reply(status, {"error": err})

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def do_GET(self):
        if self.path == "/_state":
            with self.st.lock:
                return self.reply(200, {"members": self.st.dump(), "counters": self.st.counters,
                                        "sessions": {f"{m} {s}": q for (m, s), q in self.st.sessions.items()},
                                        "faults": self.st.faults})
        self.graph_api("GET")

    def do_POST(self):
        if self.path == "/_control":
            doc = json.loads(self.body() or b"{}")
            with self.st.lock:
                if doc.pop("reset", False):
                    self.st.reset()
                    self.st.faults = {}
                if "known" in doc:
                    self.st.set_known(doc.pop("known"))
                if doc.pop("clear_faults", False):
                    self.st.faults = {}
                self.st.faults.update(doc)
            return self.reply(200, {"ok": True})
        self.graph_api("POST")

    def do_DELETE(self):
        self.graph_api("DELETE")

    def authorized(self, query):
        auth = self.headers.get("Authorization", "")
        token = auth[7:] if auth.startswith("Bearer ") else (query.get("access_token") or [None])[0]
        return token == self.st.token

    def next_fault(self):
        seq = self.st.faults.get("status_sequence") or []
        if seq:
            self.st.faults["status_sequence"] = seq[1:]
            self.st.counters["faults_served"] += 1
            return seq[0]
        return None

    def graph_api(self, method):
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        raw = self.body()
        m = PATH.match(url.path)
        st = self.st
        with st.lock:
            st.counters["requests"] += 1
            if not self.authorized(query):
                st.counters["auth_failures"] += 1
                return self.graph_error(400, 190, "Invalid OAuth access token - Cannot parse access token")
            if not m or m.group(1) != st.audience_id:
                return self.graph_error(400, 100, "Unsupported request - Object does not exist", subcode=33,
                                        etype="GraphMethodException")
            if not m.group(2):
                if method != "GET":
                    return self.graph_error(400, 100, "Unsupported request", etype="GraphMethodException")
                return self.reply(200, {"id": st.audience_id, "name": "test audience",
                                        "operation_status": {"code": 200, "description": "Normal"}})
            if method not in ("POST", "DELETE"):
                return self.graph_error(400, 100, "Unsupported request", etype="GraphMethodException")
            fault = self.next_fault()
            delay = st.faults.get("delay_ms")
        if delay:
            time.sleep(delay / 1000)
        if fault is not None:
            with st.lock:
                st.counters["throttled"] += fault in ("throttle", "throttle613") or fault == 429
            if fault == "throttle":
                return self.graph_error(400, 17, "User request limit reached", subcode=2446079)
            if fault == "throttle613":
                return self.graph_error(400, 613, "Calls to this api have exceeded the rate limit.",
                                        subcode=1487742)
            if fault == "transient":
                return self.graph_error(500, 2, "An unexpected error has occurred.", transient=True)
            return self.graph_error(int(fault), 1, "An unknown error occurred")
        self.users(method, raw, replace=m.group(2) == "/usersreplace")

    def bad(self, message):
        with self.st.lock:
            self.st.counters["bad_requests"] += 1
        return self.graph_error(400, 100, "(#100) " + message, etype="OAuthException")

    def users(self, method, raw, replace=False):
        st = self.st
        if "application/json" not in (self.headers.get("Content-Type") or ""):
            return self.bad("payload must be JSON")
        try:
            doc = json.loads(raw)
        except ValueError:
            return self.bad("malformed JSON")
        payload = doc.get("payload") if isinstance(doc, dict) else None
        if not isinstance(payload, dict):
            return self.bad("The parameter payload is required")
        schema = payload.get("schema")
        if isinstance(schema, str):
            schema = [schema]
        if (not isinstance(schema, list) or not schema or len(set(schema)) != len(schema)
                or any(k not in KEYS for k in schema)):
            return self.bad("Invalid schema")
        data = payload.get("data")
        if not isinstance(data, list) or not data:
            return self.bad("payload.data must be a non-empty array")
        if len(data) > st.max_rows:
            return self.bad(f"Too many entries: at most {st.max_rows} per request")
        session = doc.get("session")
        if replace and (method != "POST" or session is None):
            return self.bad("usersreplace takes a POST with a session")
        if session is not None:
            if (not isinstance(session, dict) or not isinstance(session.get("session_id"), int)
                    or not isinstance(session.get("batch_seq"), int)
                    or not isinstance(session.get("last_batch_flag"), bool)):
                return self.bad("Invalid session")
        width = len(schema)
        if not all(isinstance(row, list) and len(row) == width for row in data):
            return self.bad("Each data row must have one entry per schema key")
        for i, k in enumerate(schema):
            column = [row[i] for row in data]
            if not all(isinstance(c, str) for c in column):
                return self.bad("Entries must be strings")
            if k not in CLEAR_KEYS and not (all(len(c) in (0, 64) for c in column)
                                            and HEX_RUN.fullmatch("".join(column))):
                return self.bad(f"{k} entries must be SHA-256 hashed (lowercase hex)")
        with st.lock:
            if session is not None:
                skey = ("REPLACE" if replace else method, session["session_id"])
                last = st.sessions.get(skey, 0)
                if replace and last == 0 and session["batch_seq"] != 1:
                    st.counters["bad_requests"] += 1
                    return self.graph_error(400, 2650, "Invalid Upload Batch for Replace: the first batch_seq "
                                                       "was not detected", subcode=1870147)
                if replace and last < 0:
                    st.counters["bad_requests"] += 1
                    return self.graph_error(400, 2650, "Invalid Upload Batch for Replace: session ended",
                                            subcode=1870148)
                if session["batch_seq"] != last + 1:
                    st.counters["bad_requests"] += 1
                    return self.graph_error(400, 100, f"(#100) batch_seq {session['batch_seq']} does not "
                                                      f"follow {last} in session")
                st.sessions[skey] = session["batch_seq"]
            st.counters["requests_ok"] = st.counters.get("requests_ok", 0) + 1
            if replace:
                st.counters["replace_requests"] += 1
            else:
                st.counters["add_requests" if method == "POST" else "remove_requests"] += 1
                st.counters["users_during_replace"] += bool(st.replacing)
            st.counters["max_rows_seen"] = max(st.counters["max_rows_seen"], len(data))
            short = st.faults.get("short_received") or 0
            if short:
                st.faults["short_received"] = short - 1
                return self.reply(200, {"audience_id": st.audience_id,
                                        "session_id": (session or {}).get("session_id"),
                                        "num_received": 0, "num_invalid_entries": 0,
                                        "invalid_entry_samples": {}})
            bad_emails = {hashlib.sha256(e.strip().lower().encode()).hexdigest()
                          for e in st.faults.get("invalid_emails") or []}
            invalid, n_invalid, n_received = {}, 0, len(data)
            if st.lean:  # benchmark: validated above, counted, not stored
                st.counters["rows_added" if method == "POST" else "rows_removed"] += len(data)
                st.counters["rows_received"] += len(data)
                data = []
            for row in data:
                cells = [(k, c) for k, c in zip(schema, row) if c]
                why, sample = ("empty row", "") if not cells else (None, None)
                for k, c in cells:
                    if k == "EMAIL" and c in bad_emails:
                        why, sample = "Invalid email", c
                    elif st.verify and st.known and k in st.known and c not in st.known[k]:
                        st.counters["hash_mismatch"] += 1
                        why, sample = f"{k} does not match any known value", c
                if why:
                    invalid[sample] = why
                    n_invalid += 1
                    st.counters["invalid_entries"] += 1
                    continue
                if replace:
                    st.replacing.setdefault(session["session_id"], []).append(cells)
                elif method == "POST":
                    st.add(cells)
                    st.counters["rows_added"] += 1
                else:
                    st.counters["rows_removed"] += st.remove(cells)
            if replace:
                st.replacing.setdefault(session["session_id"], [])
            if replace and session["last_batch_flag"]:
                # The session is over: the audience becomes exactly what it received.
                rows = st.replacing.pop(session["session_id"])
                st.members, st.index = [], {}
                for cells in rows:
                    st.add(cells)
                st.sessions[("REPLACE", session["session_id"])] = -1
                st.replaced.append({"session_id": session["session_id"], "batches": session["batch_seq"],
                                    "rows": len(rows)})
                st.counters["replace_sessions_closed"] += 1
            if not st.lean:
                st.counters["rows_received"] += n_received
            return self.reply(200, {"audience_id": st.audience_id,
                                    "session_id": (session or {}).get("session_id"),
                                    "num_received": n_received, "num_invalid_entries": n_invalid,
                                    "invalid_entry_samples": invalid})


class Server:
    """In-process server: s = Server(token, audience_id); s.url; s.state(); s.stop()."""

    def __init__(self, token="test-token", audience_id="23850000000000001", max_rows=10000,
                 verify=True, port=0, lean=False):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        self.httpd.state = State(token, audience_id, max_rows, verify, lean)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def control(self, **kw):
        st = self.httpd.state
        with st.lock:
            if kw.pop("reset", False):
                st.reset()
                st.faults = {}
            if "known" in kw:
                st.set_known(kw.pop("known"))
            st.faults.update(kw)

    def state(self):
        st = self.httpd.state
        with st.lock:
            return {"members": st.dump(), "counters": dict(st.counters),
                    "sessions": dict(st.sessions), "faults": dict(st.faults),
                    "replaced": list(st.replaced), "replacing": {k: len(v) for k, v in st.replacing.items()}}

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--token", default="test-token")
    ap.add_argument("--audience-id", default="23850000000000001")
    ap.add_argument("--max-rows", type=int, default=10000)
    ap.add_argument("--no-verify", action="store_true", help="skip re-hashing known plaintext")
    ap.add_argument("--lean", action="store_true",
                    help="benchmark: validate and count rows, keep no members")
    a = ap.parse_args()
    s = Server(a.token, a.audience_id, a.max_rows, not a.no_verify, a.port, a.lean)
    port = s.httpd.server_address[1]
    if a.port_file:
        with open(a.port_file + ".tmp", "w") as f:
            f.write(str(port))
        import os
        os.rename(a.port_file + ".tmp", a.port_file)
    else:
        print(port, flush=True)
    try:
        s.thread.join()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
