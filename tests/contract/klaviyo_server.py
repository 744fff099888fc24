#!/usr/bin/env python3
"""Klaviyo profiles, bulk import jobs and list membership: a strict contract server
(Python stdlib; see contract_base.py for the control routes and the generic faults).

Enforced contract (developers.klaviyo.com, revision 2025-01-15;
../../shared/reference/destinations.md §9), JSON:API answers
{"errors":[{"id","status","code","title","detail","source":{...}}]} on refusals:
  Every /api request: "Authorization: Klaviyo-API-Key <key>" (config "api_key") else 401
  not_authenticated; a "revision: YYYY-MM-DD" header else 400 (source.parameter
  "revision"). Bodies: Content-Type application/vnd.api+json, else 415.
  POST /api/profile-bulk-import-jobs
       {"data":{"type":"profile-bulk-import-job","attributes":{"profiles":{"data":[
         {"type":"profile","attributes":{email?, phone_number?, external_id?, first_name, ...,
          "location":{...}, "properties":{...}}}]}},
        "relationships"?:{"lists":{"data":[{"type":"list","id":L}]}}}}
       1..10,000 profiles, <= 5 MB body, <= 100 KB a profile, each with an identifier,
       known attribute and location keys only, string attributes, no nulls (a bulk import
       does not clear: a null is refused here so a client never relies on it).
       Validated at once: a malformed email, or an email in faults "refuse_emails", answers
       400 with source.pointer /data/attributes/profiles/data/N/attributes/email for each;
       an unknown list 400 pointing at /data/relationships/lists/data/0/id.
       -> 202 {"data":{"type":"profile-bulk-import-job","id",...,"attributes":{"status":"queued",
       "total_count",...}}}
  GET  /api/profile-bulk-import-jobs/{id}   queued -> processing -> complete, one step per poll
       ("polls_to_complete", default 2); the import is applied when the job completes.
       Profiles failing then (a phone_number that is not E.164, an email in faults
       "import_error_emails") are counted in failed_count and listed by
  GET  /api/profile-bulk-import-jobs/{id}/import-errors?page[size]=N (default 20, max 100)
       &page[cursor]=C -> {"data":[{"type":"import-error","id","attributes":{"code","title",
       "detail","source":{"pointer":"/data/attributes/profiles/data/N"},"original_payload":{..}}}],
       "links":{"self","next"}}  (faults "errors_without_pointer": original_payload only)
       Faults "cancel_jobs": N -> the next N jobs end "cancelled" (nothing applied).
  GET  /api/profile-bulk-import-jobs?page[size]=N, GET /api/lists/{id}
  GET  /api/profiles?filter=any(email|phone_number|external_id,["v",...]) (<= 100 values;
       equals(field,"v") too)&page[size]=N (max 100)&fields[profile]=...
  DELETE /api/lists/{id}/relationships/profiles {"data":[{"type":"profile","id"}]} (<= 1,000)
       -> 204
  Profiles are upserted by email, else phone_number, else external_id; attributes and
  properties merge; list membership is kept per list (config "lists", default ["Y6nRLr"]).
/_state: {"profiles": {id: {attributes}}, "lists": {list_id: [profile ids]}, "jobs": {...}}
"""
import json
import os
import re
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from contract_base import ApiError, ContractState, serve  # noqa: E402

MAX_PROFILES = 10000
MAX_BODY = 5 * 1024 * 1024
MAX_PROFILE = 100 * 1024
MAX_FILTER_VALUES = 100
MAX_LIST_REMOVE = 1000
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
E164 = re.compile(r"^\+[1-9]\d{6,14}$")
REVISION = re.compile(r"^\d{4}-\d{2}-\d{2}(\.[a-z]+)?$")
IDS = ("email", "phone_number", "external_id")
ATTRS = {"email", "phone_number", "external_id", "first_name", "last_name", "organization", "title",
         "image", "locale", "location", "properties"}
LOCATION = {"address1", "address2", "city", "country", "region", "zip", "timezone", "latitude",
            "longitude", "ip"}
JOB = re.compile(r"^/api/profile-bulk-import-jobs/([A-Za-z0-9_-]+)(/import-errors)?$")
LIST = re.compile(r"^/api/lists/([A-Za-z0-9]+)(/relationships/profiles)?$")
FILTER = re.compile(r'^(any|equals)\((email|phone_number|external_id),(.*)\)$', re.S)


def error(status, code, title, detail, source=None):
    e = {"id": f"e{time.monotonic_ns()}", "status": status, "code": code, "title": title,
         "detail": detail}
    if source:
        e["source"] = source
    return e


def refuse(status, code, title, detail, source=None):
    return ApiError(status, {"errors": [error(status, code, title, detail, source)]})


def invalid(detail, pointer=None, parameter=None):
    src = {"pointer": pointer} if pointer else ({"parameter": parameter} if parameter else None)
    return refuse(400, "invalid", "Invalid input.", detail, src)


class Klaviyo(ContractState):
    name = "klaviyo"

    def reset_data(self):
        self.profiles = {}          # id -> attributes (identifiers, attributes, location, properties)
        self.lists = {lid: [] for lid in self.config.get("lists", ["Y6nRLr"])}
        self.jobs = {}
        self.next_id = 1
        self.counters_extra = {}
        self.polls_to_complete = self.config.get("polls_to_complete", 2)

    def extra_control(self, key, value):
        if key in ("refuse_emails", "import_error_emails", "cancel_jobs", "errors_without_pointer"):
            self.faults[key] = value
            return True
        if key == "polls_to_complete":
            self.polls_to_complete = int(value)
            return True
        return False

    def new_id(self, prefix="01K"):
        self.next_id += 1
        return f"{prefix}{self.next_id:023d}"

    # ---- contract_base hooks
    def check_auth(self, handler):
        if handler.headers.get("Authorization") != f"Klaviyo-API-Key {self.config.get('api_key', '')}":
            return 401, {"errors": [error(401, "not_authenticated", "Authentication credentials were not "
                                          "provided.", "Missing or invalid private key.")]}, []
        rev = handler.headers.get("revision")
        if not rev or not REVISION.match(rev):
            self.counters["missing_revision"] += 1
            return 400, {"errors": [error(400, "invalid", "Invalid input.",
                                          "A valid revision header is required (YYYY-MM-DD).",
                                          {"parameter": "revision"})]}, []
        return None

    def rate_limited_answer(self):
        return 429, {"errors": [error(429, "throttled", "Request was throttled.",
                                      "Request was throttled. Expected available in 1 second.")]}, \
            [("Retry-After", "1")]

    def server_error_answer(self, status):
        return status, {"errors": [error(status, "error", "A server error occurred.", "injected")]}, []

    def state_view(self):
        return {"profiles": self.profiles, "lists": self.lists,
                "jobs": {j: {k: v for k, v in job.items() if k not in ("profiles", "errors")}
                         for j, job in self.jobs.items()}}

    # ---- routes
    def route(self, handler, method, path, query, body):
        q = urllib.parse.parse_qs(query, keep_blank_values=True)
        if method in ("POST", "PATCH", "DELETE") and body:
            ctype = (handler.headers.get("Content-Type") or "").split(";")[0].strip()
            if ctype != "application/vnd.api+json":
                self.counters["bad_content_type"] += 1
                raise refuse(415, "unsupported_media_type", "Unsupported media type.",
                             f"Content-Type must be application/vnd.api+json, not {ctype!r}")
        host = f"http://{handler.headers.get('Host')}"
        if path == "/api/profile-bulk-import-jobs":
            if method == "POST":
                return self.create_job(body)
            if method == "GET":
                size = self.page_size(q)
                jobs = list(self.jobs.values())[-size:]
                return 200, {"data": [self.job_doc(j)["data"] for j in jobs], "links": {"next": None}}, []
        m = JOB.match(path)
        if m and method == "GET":
            job = self.jobs.get(m.group(1))
            if job is None:
                raise refuse(404, "not_found", "Not found.", "A job with that id does not exist.")
            if m.group(2):
                return self.import_errors(job, q, host)
            return self.poll(job)
        m = LIST.match(path)
        if m:
            lid = m.group(1)
            if lid not in self.lists:
                raise refuse(404, "not_found", "Not found.", f"A list with id {lid} does not exist.")
            if not m.group(2) and method == "GET":
                return 200, {"data": {"type": "list", "id": lid, "attributes": {"name": "Test list"}}}, []
            if m.group(2) and method == "DELETE":
                return self.remove_from_list(lid, body)
        if path == "/api/profiles" and method == "GET":
            return self.get_profiles(q)
        raise refuse(405 if path.startswith("/api/") else 404, "method_not_allowed", "Method not allowed.",
                     f"{method} {path}")

    @staticmethod
    def page_size(q, default=20):
        raw = q.get("page[size]", [str(default)])[0]
        try:
            n = int(raw)
        except ValueError:
            raise invalid("page[size] must be an integer", parameter="page[size]") from None
        if not 1 <= n <= 100:
            raise invalid("page[size] must be between 1 and 100", parameter="page[size]")
        return n

    # ---- bulk import
    def create_job(self, body):
        c = self.counters
        c["job_requests"] += 1
        c["max_body_bytes"] = max(c["max_body_bytes"], len(body))
        if len(body) > MAX_BODY:
            raise refuse(413, "payload_too_large", "Payload too large.", "The request body exceeds 5 MB.")
        try:
            doc = json.loads(body)
        except ValueError:
            raise invalid("The request body is not valid JSON.", pointer="/data") from None
        data = doc.get("data") if isinstance(doc, dict) else None
        if not isinstance(data, dict) or data.get("type") != "profile-bulk-import-job":
            raise invalid("data.type must be profile-bulk-import-job", pointer="/data/type")
        if set(data) - {"type", "attributes", "relationships"}:
            raise invalid(f"unknown members {sorted(set(data) - {'type', 'attributes', 'relationships'})}",
                          pointer="/data")
        profiles = ((data.get("attributes") or {}).get("profiles") or {}).get("data")
        if not isinstance(profiles, list) or not profiles:
            raise invalid("profiles.data must be a non-empty array", pointer="/data/attributes/profiles/data")
        if len(profiles) > MAX_PROFILES:
            raise invalid("A job takes at most 10000 profiles.", pointer="/data/attributes/profiles/data")
        c["max_profiles_seen"] = max(c["max_profiles_seen"], len(profiles))
        list_ids = []
        rel = data.get("relationships")
        if rel is not None:
            lists = (rel.get("lists") or {}).get("data") if isinstance(rel, dict) else None
            if not isinstance(lists, list) or not lists:
                raise invalid("relationships.lists.data must be a non-empty array",
                              pointer="/data/relationships/lists/data")
            for i, l in enumerate(lists):
                if not isinstance(l, dict) or l.get("type") != "list" or l.get("id") not in self.lists:
                    raise invalid("List relationship is invalid.", pointer=f"/data/relationships/lists/data/{i}/id")
                list_ids.append(l["id"])
        refused = {e.strip().lower() for e in self.faults.get("refuse_emails") or []}
        errors = []
        for i, p in enumerate(profiles):
            base = f"/data/attributes/profiles/data/{i}"
            if not isinstance(p, dict) or p.get("type") != "profile" or not isinstance(p.get("attributes"), dict):
                raise invalid("each profile is {type: profile, attributes: {...}}", pointer=base)
            if len(json.dumps(p, separators=(",", ":")).encode()) > MAX_PROFILE:
                raise invalid("A profile is limited to 100 KB.", pointer=base)
            a = p["attributes"]
            extra = set(a) - ATTRS
            if extra:
                raise invalid(f"unknown profile attributes {sorted(extra)}", pointer=f"{base}/attributes")
            for k, v in a.items():
                if v is None:
                    c["nulls_received"] += 1
                    raise invalid(f"{k} is null (a bulk import does not clear fields)",
                                  pointer=f"{base}/attributes/{k}")
                if k in ("location", "properties"):
                    if not isinstance(v, dict) or not v:
                        raise invalid(f"{k} must be a non-empty object", pointer=f"{base}/attributes/{k}")
                    if k == "location" and set(v) - LOCATION:
                        raise invalid(f"unknown location keys {sorted(set(v) - LOCATION)}",
                                      pointer=f"{base}/attributes/location")
                    if any(x is None for x in v.values()):
                        c["nulls_received"] += 1
                        raise invalid(f"null in {k}", pointer=f"{base}/attributes/{k}")
                elif not isinstance(v, str):
                    raise invalid(f"{k} must be a string", pointer=f"{base}/attributes/{k}")
            if not any(isinstance(a.get(k), str) and a[k] for k in IDS):
                raise invalid("A profile needs an email, phone_number or external_id.", pointer=f"{base}/attributes")
            email = a.get("email")
            if email is not None and (not EMAIL.match(email) or email.lower() in refused):
                errors.append(error(400, "invalid", "Invalid input.", f"{email} is not a valid email address.",
                                    {"pointer": f"{base}/attributes/email"}))
        if errors:
            c["refused_jobs"] += 1
            c["refused_profiles"] += len(errors)
            raise ApiError(400, {"errors": errors})
        jid = self.new_id("job")
        now = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
        job = {"id": jid, "status": "queued", "polls": 0, "total_count": len(profiles), "completed_count": 0,
               "failed_count": 0, "created_at": now, "started_at": None, "completed_at": None,
               "expires_at": None, "lists": list_ids, "profiles": profiles, "errors": []}
        cancel = self.faults.get("cancel_jobs") or 0
        if cancel:
            self.faults["cancel_jobs"] = cancel - 1
            job["cancel"] = True
        self.jobs[jid] = job
        c["jobs"] += 1
        c["profiles_received"] += len(profiles)
        return 202, self.job_doc(job), []

    def job_doc(self, job):
        attrs = {k: job[k] for k in ("status", "total_count", "completed_count", "failed_count", "created_at",
                                     "started_at", "completed_at", "expires_at")}
        return {"data": {"type": "profile-bulk-import-job", "id": job["id"], "attributes": attrs,
                         "relationships": {"lists": {"data": [{"type": "list", "id": l} for l in job["lists"]]}},
                         "links": {"self": f"/api/profile-bulk-import-jobs/{job['id']}"}}}

    def poll(self, job):
        self.counters["polls"] += 1
        if job["status"] in ("queued", "processing"):
            job["polls"] += 1
            if job["polls"] >= self.polls_to_complete:
                self.finish(job)
            else:
                job["status"] = "processing"
                job["started_at"] = job["created_at"]
        return 200, self.job_doc(job), []

    def finish(self, job):
        now = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
        job["completed_at"] = now
        if job.get("cancel"):
            job["status"] = "cancelled"
            self.counters["cancelled_jobs"] += 1
            return
        bad = {e.strip().lower() for e in self.faults.get("import_error_emails") or []}
        no_pointer = self.faults.get("errors_without_pointer")
        for i, p in enumerate(job["profiles"]):
            a = p["attributes"]
            detail = None
            if a.get("phone_number") is not None and not E164.match(a["phone_number"]):
                detail, field = "Invalid phone number format (Example of a valid format: +13239169023)", "phone_number"
            elif a.get("email", "").lower() in bad:
                detail, field = "This email address cannot be imported.", "email"
            if detail:
                err = {"code": "invalid", "title": "Invalid input.", "detail": detail,
                       "original_payload": dict(a)}
                if not no_pointer:
                    err["source"] = {"pointer": f"/data/attributes/profiles/data/{i}/attributes/{field}"}
                job["errors"].append({"type": "import-error", "id": self.new_id("err"), "attributes": err})
                continue
            pid = self.upsert(a)
            for l in job["lists"]:
                if pid not in self.lists[l]:
                    self.lists[l].append(pid)
        job["failed_count"] = len(job["errors"])
        job["completed_count"] = job["total_count"] - job["failed_count"]
        job["status"] = "complete"
        self.counters["import_errors"] += job["failed_count"]
        self.counters["profiles_imported"] += job["completed_count"]

    def find(self, a):
        for k in IDS:
            v = a.get(k)
            if not v:
                continue
            for pid, prof in self.profiles.items():
                pv = prof.get(k)
                if pv is not None and (pv.lower() == v.lower() if k == "email" else pv == v):
                    return pid
        return None

    def upsert(self, a):
        pid = self.find(a)
        if pid is None:
            pid = self.new_id()
            self.profiles[pid] = {}
            self.counters["profiles_created"] += 1
        else:
            self.counters["profiles_updated"] += 1
        prof = self.profiles[pid]
        for k, v in a.items():
            if k in ("location", "properties"):
                prof.setdefault(k, {}).update(v)
            else:
                prof[k] = v
        return pid

    def import_errors(self, job, q, host):
        self.counters["import_error_requests"] += 1
        size = self.page_size(q)
        try:
            cursor = int(q.get("page[cursor]", ["0"])[0] or 0)
        except ValueError:
            raise invalid("bad page[cursor]", parameter="page[cursor]") from None
        page = job["errors"][cursor:cursor + size]
        base = f"{host}/api/profile-bulk-import-jobs/{job['id']}/import-errors"
        nxt = None
        if cursor + size < len(job["errors"]):
            nxt = f"{base}?page%5Bsize%5D={size}&page%5Bcursor%5D={cursor + size}"
        return 200, {"data": page, "links": {"self": base, "next": nxt, "prev": None}}, []

    # ---- profiles and lists
    def get_profiles(self, q):
        self.counters["profile_lookups"] += 1
        raw = q.get("filter", [""])[0]
        m = FILTER.match(raw)
        if not m:
            raise invalid(f"unsupported filter {raw!r}", parameter="filter")
        op, field, arg = m.groups()
        try:
            values = json.loads(arg) if op == "any" else [json.loads(arg)]
        except ValueError:
            raise invalid("filter values must be quoted strings", parameter="filter") from None
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise invalid("filter values must be strings", parameter="filter")
        if len(values) > MAX_FILTER_VALUES:
            raise invalid(f"any() takes at most {MAX_FILTER_VALUES} values", parameter="filter")
        size = self.page_size(q)
        fields = q.get("fields[profile]", [None])[0]
        want = {v.lower() if field == "email" else v for v in values}
        out = []
        for pid, prof in self.profiles.items():
            v = prof.get(field)
            if v is not None and (v.lower() if field == "email" else v) in want:
                attrs = {k: prof.get(k) for k in fields.split(",")} if fields else dict(prof)
                out.append({"type": "profile", "id": pid, "attributes": attrs})
        if len(out) > size:
            raise invalid("test server: results beyond one page are not paginated here", parameter="page[size]")
        return 200, {"data": out, "links": {"self": "/api/profiles", "next": None}}, []

    def remove_from_list(self, lid, body):
        self.counters["list_remove_requests"] += 1
        try:
            doc = json.loads(body or b"{}")
        except ValueError:
            raise invalid("The request body is not valid JSON.", pointer="/data") from None
        data = doc.get("data") if isinstance(doc, dict) else None
        if not isinstance(data, list) or not data:
            raise invalid("data must be a non-empty array", pointer="/data")
        if len(data) > MAX_LIST_REMOVE:
            raise invalid("At most 1000 profiles per call.", pointer="/data")
        for i, r in enumerate(data):
            if not isinstance(r, dict) or r.get("type") != "profile" or not isinstance(r.get("id"), str):
                raise invalid("each item is {type: profile, id}", pointer=f"/data/{i}")
        for r in data:
            if r["id"] in self.lists[lid]:
                self.lists[lid].remove(r["id"])
                self.counters["list_removed"] += 1
        return 204, None, []


if __name__ == "__main__":
    serve(Klaviyo)
