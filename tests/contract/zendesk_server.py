#!/usr/bin/env python3
"""Zendesk Support users contract server (see contract_base.py for control routes and faults).

Enforced contract (developer.zendesk.com; ../../shared/reference/destinations.md §7):
  Auth: "Authorization: Basic base64(<email>/token:<api_token>)" (config "email", "api_token"),
        else 401 {"error":"Couldn't authenticate you"}
  Every answer carries X-Rate-Limit / X-Rate-Limit-Remaining (and ratelimit-reset on 429).
  GET    /api/v2/users/me
  POST   /api/v2/users/create_or_update_many  {"users":[{...}]} <= 100 users, each matched by
         email or external_id (strings), attributes typed (verified: bool, organization_id: int,
         tags: list), custom fields under user_fields (keys must exist when config
         "user_fields" lists them). -> 200 {"job_status":{"id","url","status":"queued",...}}
         More than 30 queued jobs -> 429 TooManyJobs.
  GET    /api/v2/job_statuses/{id}  queued -> working -> completed after "processing_ms";
         results[] in request order: {"index","id","status":"Created"|"Updated","email"?,
         "external_id"?} or {"index","status":"Failed","error","details"}.
         A new user needs a name ("Name: is too short"); faults.reject_ids (email or
         external_id) fail with "UserUpdateError".
  GET    /api/v2/users/search?query=email:"a@b.c"   -> {"users":[...],"count"}
  DELETE /api/v2/users/destroy_many?ids=1,2 | ?external_ids=a,b  (<= 100) -> job_status;
         results {"index","id","action":"delete","success":true,"status":"Deleted"} or
         {"index","status":"Failed","error":"UserNotFound","success":false}
/_state: {"users": {id: {user}}}
"""
import base64
import json
import os
import re
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from contract_base import ApiError, ContractState, serve  # noqa: E402

MAX_USERS = 100
MAX_QUEUED = 30
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
ATTRS = {"name": str, "email": str, "phone": str, "external_id": str, "role": str, "alias": str,
         "details": str, "notes": str, "locale": str, "time_zone": str, "verified": bool,
         "organization_id": int, "signature": str, "tags": list, "moderator": bool,
         "suspended": bool, "shared_phone_number": bool, "remote_photo_url": str,
         "default_group_id": int, "custom_role_id": int}


def zd_error(status, error, description=None):
    body = {"error": error}
    if description:
        body["description"] = description
    return ApiError(status, body)


class Zendesk(ContractState):
    name = "zendesk"

    def reset_data(self):
        self.users = {}
        self.next_user = 360000001
        self.jobs = {}
        self.next_job = 1
        self.processing_ms = self.config.get("processing_ms", 0)

    def extra_control(self, key, value):
        if key == "processing_ms":
            self.processing_ms = value
            return True
        return False

    def check_auth(self, handler):
        cred = f"{self.config.get('email', '')}/token:{self.config.get('api_token', '')}"
        want = "Basic " + base64.b64encode(cred.encode()).decode()
        if handler.headers.get("Authorization") != want:
            return 401, {"error": "Couldn't authenticate you"}, []
        return None

    def rate_limited_answer(self):
        return 429, {"error": "APIRateLimitExceeded", "description": "Number of allowed API requests per "
                     "minute exceeded"}, [("ratelimit-reset", "1")]

    def server_error_answer(self, status):
        return status, {"error": "ServiceUnavailable", "description": "injected"}, []

    def state_view(self):
        return {"users": {str(k): v for k, v in self.users.items()}}

    def route(self, handler, method, path, query, body):
        self.handler_headers = handler.headers
        res = self.dispatch(method, path, query, body)
        return res[0], res[1], list(res[2]) + [("X-Rate-Limit", "700"), ("X-Rate-Limit-Remaining", "600")]

    def dispatch(self, method, path, query, body):
        if path == "/api/v2/users/me" and method == "GET":
            return 200, {"user": {"id": 1, "name": "Agent", "email": self.config.get("email"),
                                  "role": "admin"}}, []
        if path == "/api/v2/users/create_or_update_many" and method == "POST":
            return self.create_or_update_many(body)
        if path == "/api/v2/users/destroy_many" and method == "DELETE":
            return self.destroy_many(query)
        if path == "/api/v2/users/search" and method == "GET":
            return self.search(query)
        m = re.match(r"^/api/v2/job_statuses/([\w-]+)(\.json)?$", path)
        if m and method == "GET":
            job = self.jobs.get(m.group(1))
            if job is None:
                raise zd_error(404, "RecordNotFound", "Not found")
            self.counters["polls"] += 1
            self.advance(job)
            return 200, {"job_status": self.view(job)}, []
        raise zd_error(404, "InvalidEndpoint", "Not found")

    # ---- jobs
    def queued(self):
        now = time.monotonic()
        for j in self.jobs.values():
            if j["status"] in ("queued", "working") and now >= j["done_at"]:
                self.finish(j)
        return sum(1 for j in self.jobs.values() if j["status"] in ("queued", "working"))

    def finish(self, job):
        job["results"] = self.apply_users(job["items"]) if job["kind"] == "upsert" \
            else self.apply_deletes(job["items"])
        job["status"] = "completed"

    def new_job(self, kind, items):
        if self.queued() >= MAX_QUEUED:
            self.counters["too_many_jobs"] += 1
            raise ApiError(429, {"error": "TooManyJobs",
                                 "description": f"Number of allowed queued jobs ({MAX_QUEUED}) exceeded"},
                           [("Retry-After", "1")])
        jid = f"V3-{self.next_job:08x}"
        self.next_job += 1
        job = {"id": jid, "kind": kind, "items": items, "status": "queued", "results": None,
               "done_at": time.monotonic() + self.processing_ms / 1000.0}
        self.jobs[jid] = job
        self.counters["jobs"] += 1
        return 200, {"job_status": self.view(job)}, []

    def view(self, job):
        v = {"id": job["id"], "url": f"https://example.zendesk.com/api/v2/job_statuses/{job['id']}.json",
             "status": job["status"], "total": len(job["items"]),
             "progress": len(job["items"]) if job["status"] == "completed" else 0,
             "message": "Completed at " + time.strftime("%Y-%m-%d %H:%M:%S +0000", time.gmtime())
             if job["status"] == "completed" else None,
             "results": job["results"]}
        return v

    def advance(self, job):
        if job["status"] == "queued":
            job["status"] = "working"
            return
        if job["status"] == "working" and time.monotonic() >= job["done_at"]:
            self.finish(job)

    def find(self, email=None, external_id=None):
        for uid, u in self.users.items():
            if external_id is not None and u.get("external_id") == external_id:
                return uid
            if external_id is None and email is not None and (u.get("email") or "").lower() == email.lower():
                return uid
        return None

    def apply_users(self, items):
        results = []
        for index, u in enumerate(items):
            ext, email = u.get("external_id"), u.get("email")
            if self.is_rejected(ext) or self.is_rejected(email):
                self.counters["rejected"] += 1
                results.append({"index": index, "status": "Failed", "error": "UserUpdateError",
                                "details": "Rejected by a business rule (injected)"})
                continue
            uid = self.find(email=email, external_id=ext)
            if uid is None and ext is not None and email is not None:
                uid = self.find(email=email)
            if uid is None and not u.get("name"):
                results.append({"index": index, "status": "Failed", "error": "UserCreateError",
                                "details": "Name: is too short (minimum is 1 character)"})
                continue
            created = uid is None
            if created:
                uid = self.next_user
                self.next_user += 1
                self.users[uid] = {"id": uid}
                self.counters["created"] += 1
            else:
                self.counters["updated"] += 1
            user = self.users[uid]
            for k, v in u.items():
                if k == "user_fields":
                    user.setdefault("user_fields", {}).update(v)
                else:
                    user[k] = v
            r = {"index": index, "id": uid, "status": "Created" if created else "Updated"}
            if email is not None:
                r["email"] = email
            if ext is not None:
                r["external_id"] = ext
            results.append(r)
        return results

    def apply_deletes(self, items):
        results = []
        for index, (kind, value) in enumerate(items):
            uid = None
            if kind == "ids":
                uid = int(value) if value.isdigit() and int(value) in self.users else None
            else:
                uid = self.find(external_id=value)
            if uid is None:
                results.append({"index": index, "status": "Failed", "error": "UserNotFound",
                                "success": False, "details": f"User {value} not found"})
                continue
            del self.users[uid]
            self.counters["deleted"] += 1
            results.append({"index": index, "id": uid, "action": "delete", "success": True,
                            "status": "Deleted"})
        return results

    # ---- routes
    def create_or_update_many(self, body):
        ctype = self.handler_headers.get("Content-Type", "")
        if not ctype.startswith("application/json"):
            raise zd_error(415, "UnsupportedMediaType", "Content-Type must be application/json")
        try:
            doc = json.loads(body)
        except ValueError:
            raise zd_error(400, "InvalidJSON", "The request body is not valid JSON") from None
        users = doc.get("users") if isinstance(doc, dict) else None
        if not isinstance(users, list) or not users:
            raise zd_error(400, "RecordInvalid", "users: must be a non-empty array")
        if len(users) > MAX_USERS:
            raise zd_error(400, "TooManyRecords", f"Too many users: at most {MAX_USERS} per request")
        allowed_custom = self.config.get("user_fields")
        for u in users:
            if not isinstance(u, dict):
                raise zd_error(400, "RecordInvalid", "each user must be an object")
            if u.get("email") is None and u.get("external_id") is None:
                raise zd_error(400, "RecordInvalid", "each user needs email or external_id")
            for k, v in u.items():
                if k == "user_fields":
                    if not isinstance(v, dict):
                        raise zd_error(400, "RecordInvalid", "user_fields must be an object")
                    for fk in v:
                        if allowed_custom is not None and fk not in allowed_custom:
                            raise zd_error(422, "RecordInvalid", f"user_fields: unknown field key '{fk}'")
                    continue
                if k not in ATTRS:
                    raise zd_error(422, "RecordInvalid", f"unknown user attribute '{k}' "
                                                          "(custom fields go under user_fields)")
                want = ATTRS[k]
                if v is not None and not (type(v) is want or (want is int and type(v) is int)):
                    raise zd_error(422, "RecordInvalid", f"{k}: must be a {want.__name__}")
            if u.get("email") and not EMAIL.match(u["email"]):
                raise zd_error(422, "RecordInvalid", f"Email: {u['email']} is not properly formatted")
        self.counters["upsert_requests"] += 1
        self.counters["users_sent"] += len(users)
        return self.new_job("upsert", users)

    def destroy_many(self, query):
        q = urllib.parse.parse_qs(query)
        if "ids" in q:
            kind, values = "ids", q["ids"][0].split(",")
        elif "external_ids" in q:
            kind, values = "external_ids", q["external_ids"][0].split(",")
        else:
            raise zd_error(400, "InvalidParameter", "ids or external_ids is required")
        if len(values) > MAX_USERS:
            raise zd_error(400, "TooManyRecords", f"at most {MAX_USERS} ids")
        self.counters["destroy_requests"] += 1
        return self.new_job("delete", [(kind, v) for v in values])

    def search(self, query):
        q = urllib.parse.parse_qs(query).get("query", [""])[0]
        m = re.match(r'^email:"?([^"]+)"?$', q)
        if not m:
            raise zd_error(400, "InvalidParameter", "this contract server searches email:\"...\" only")
        self.counters["searches"] += 1
        uid = self.find(email=m.group(1))
        users = [self.users[uid]] if uid is not None else []
        return 200, {"users": users, "count": len(users), "next_page": None}, []


if __name__ == "__main__":
    serve(Zendesk)
