#!/usr/bin/env python3
"""HubSpot CRM v3 contract server (see contract_base.py for control routes and faults).

Enforced contract (developers.hubspot.com, CRM v3 objects; ../../shared/reference/destinations.md §1):
  Auth: "Authorization: Bearer <token>" (config "token"), else 401
        {"status":"error","message":...,"category":"INVALID_AUTHENTICATION","correlationId":...};
        or a token from POST /oauth/v1/token (refresh-token grant, config "oauth", see
        oauth_refresh.py), 401 category EXPIRED_AUTHENTICATION once it has expired.
  POST /crm/v3/objects/{object}/batch/upsert
        {"inputs":[{"idProperty":"email","id":"a@b.c","objectWriteTraceId":"0","properties":{...}}]}
        <= 100 inputs; idProperty must be a unique property of the object; id non-empty;
        no id twice in one batch; property values must be JSON strings (stricter than HubSpot,
        which coerces; Backflow promises strings) valid for the property's type
        (number: decimal; bool: "true"/"false"; date: YYYY-MM-DD or epoch ms;
        datetime: ISO 8601 with zone or epoch ms); email must look like one.
        Any invalid input fails the whole batch with 400 VALIDATION_ERROR (as HubSpot does).
        200 {"status":"COMPLETE","results":[{id,new,properties,createdAt,updatedAt,archived,
             objectWriteTraceId}],"startedAt","completedAt"}
        207 the same plus "errors":[{status,category,message,context:{objectWriteTraceId:[..]}}],
            "numErrors" when faults.reject_ids names some ids (those are not stored).
  POST /crm/v3/objects/{object}/batch/read
        {"idProperty":"email","properties":["email"],"inputs":[{"id":..}]} (no idProperty: hs ids)
        200 results; 207 + errors [{category:"OBJECT_NOT_FOUND",context:{ids:[...]}}] for misses.
  POST /crm/v3/objects/{object}/batch/archive  {"inputs":[{"id":"<hs id>"}]} -> 204
  GET  /crm/v3/objects/{object}?limit=N        -> {"results":[...],"paging":...}
  GET  /crm/v3/properties/{object}             -> {"results":[{name,label,type,fieldType,hasUniqueValue}]}
        (403 MISSING_SCOPES when the object's schema is configured as null: any property accepted)
  Unknown object type -> 404; rate limit -> 429 {"status":"error","errorType":"RATE_LIMIT",
  "policyName":"TEN_SECONDLY_ROLLING",...}; window limits also send X-HubSpot-RateLimit-*.

Config (--config JSON): {"token": "...", "schema": {object: {"unique": [...],
  "properties": {name: "string"|"number"|"bool"|"date"|"datetime"} or null (any names)}}}
/_state: {"objects": {object: {hs_id: {properties}}}}
"""
import json
import re
import sys
import time
import uuid
import os

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from contract_base import ApiError, ContractState, serve  # noqa: E402
from oauth_refresh import RefreshTokens  # noqa: E402

MAX_INPUTS = 100
_TEXT = ("firstname", "lastname", "phone", "company", "website", "lifecyclestage", "city",
         "state", "country", "jobtitle")
DEFAULT_SCHEMA = {
    # standard properties plus the custom ones the tests and the bench map to
    "contacts": {"unique": ["email"], "properties": dict(
        {"email": "string", "plan": "string", "ltv": "number", "vip": "bool", "signup": "datetime",
         "birthdate": "date", "source": "string", "note": "string"}, **{p: "string" for p in _TEXT})},
    "companies": {"unique": ["domain"], "properties": {"domain": "string", "name": "string",
                                                       "industry": "string", "numberofemployees": "number"}},
    "deals": {"unique": [], "properties": {"dealname": "string", "amount": "number",
                                           "closedate": "datetime", "dealstage": "string"}},
}
FIELD_TYPES = {"string": "text", "number": "number", "bool": "booleancheckbox", "date": "date",
               "datetime": "date"}
PROPS_PATH = re.compile(r"^/crm/v3/properties/([A-Za-z0-9_-]+)$")
NUMBER = re.compile(r"^-?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$")
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
OBJECT_PATH = re.compile(r"^/crm/v3/objects/([A-Za-z0-9_-]+)(/batch/(upsert|read|archive))?$")


def now_iso():
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())


def err(status, category, message, **extra):
    body = {"status": "error", "message": message, "correlationId": str(uuid.uuid4()),
            "category": category}
    body.update(extra)
    return ApiError(status, body)


class HubSpot(ContractState):
    name = "hubspot"

    def __init__(self, config):
        self.oauth = RefreshTokens(config, "hubspot")
        super().__init__(config)

    def reset_data(self):
        self.schema = dict(DEFAULT_SCHEMA)
        self.schema.update(self.config.get("schema") or {})
        self.objects = {t: {} for t in self.schema}      # type -> hs_id -> record
        self.index = {t: {} for t in self.schema}        # type -> (prop, norm value) -> hs_id
        self.next_id = 1001

    def check_auth(self, handler):
        if handler.path.partition("?")[0] == self.oauth.path:
            return None  # the token endpoint authenticates the client itself
        header = handler.headers.get("Authorization") or ""
        if self.oauth.valid(header):
            return None
        if header[7:] in self.oauth.tokens:
            return (401, {"status": "error", "message": "The OAuth token used to make this call "
                          "expired.", "correlationId": str(uuid.uuid4()),
                          "category": "EXPIRED_AUTHENTICATION"}, [])
        want = "Bearer " + self.config.get("token", "")
        if not self.config.get("token") or header != want:
            return (401, {"status": "error", "message": "Authentication credentials not found.",
                          "correlationId": str(uuid.uuid4()), "category": "INVALID_AUTHENTICATION"}, [])
        return None

    def rate_limited_answer(self):
        return (429, {"status": "error", "message": "You have reached your ten_secondly_rolling limit.",
                      "errorType": "RATE_LIMIT", "correlationId": str(uuid.uuid4()),
                      "policyName": "TEN_SECONDLY_ROLLING"}, [])

    def server_error_answer(self, status):
        if status == 429:
            return self.rate_limited_answer()
        return status, {"status": "error", "message": "internal error (injected)",
                        "correlationId": str(uuid.uuid4()), "category": "INTERNAL_ERROR"}, []

    def state_view(self):
        return {"objects": {t: {i: dict(r["properties"]) for i, r in objs.items()}
                            for t, objs in self.objects.items()}}

    # ---- helpers
    @staticmethod
    def norm(prop, value):
        return value.lower() if prop == "email" else value

    def check_value(self, obj, prop, value, problems):
        props = self.schema[obj]["properties"]
        if not isinstance(value, str):
            problems.append({"isValid": False, "name": prop, "error": "INVALID_TYPE",
                             "message": f"Property \"{prop}\" must be sent as a string"})
            return
        if props is not None and prop not in props:
            problems.append({"isValid": False, "name": prop, "error": "PROPERTY_DOESNT_EXIST",
                             "message": f"Property \"{prop}\" does not exist"})
            return
        kind = (props or {}).get(prop, "string")
        if value == "":
            return  # clears the property
        ok = True
        if kind == "number":
            ok = bool(NUMBER.match(value))
        elif kind == "bool":
            ok = value in ("true", "false")
        elif kind == "date":
            ok = bool(DATE.match(value)) or value.isdigit()
        elif kind == "datetime":
            ok = bool(DATETIME.match(value)) or value.isdigit()
        if prop == "email" and not EMAIL.match(value):
            problems.append({"isValid": False, "name": prop, "error": "INVALID_EMAIL",
                             "message": f"Email address {value} is invalid"})
        elif not ok:
            problems.append({"isValid": False, "name": prop, "error": f"INVALID_{kind.upper()}",
                             "message": f"{value} is not a valid {kind} for property \"{prop}\""})

    def parse_inputs(self, body):
        try:
            doc = json.loads(body)
        except ValueError:
            raise err(400, "VALIDATION_ERROR", "Invalid input JSON on line 1") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("inputs"), list):
            raise err(400, "VALIDATION_ERROR", "Invalid input JSON: 'inputs' is required")
        inputs = doc["inputs"]
        if len(inputs) > MAX_INPUTS:
            raise err(400, "VALIDATION_ERROR",
                      f"Batch input size {len(inputs)} exceeds the limit of {MAX_INPUTS}")
        for i in inputs:
            if not isinstance(i, dict):
                raise err(400, "VALIDATION_ERROR", "Invalid input JSON: inputs must be objects")
        return doc, inputs

    def record_view(self, hs_id, rec, new=None, trace=None, props=None):
        properties = rec["properties"] if props is None else {
            p: rec["properties"].get(p) for p in props}
        out = {"id": hs_id, "properties": properties, "createdAt": rec["createdAt"],
               "updatedAt": rec["updatedAt"], "archived": False}
        if new is not None:
            out["new"] = new
        if trace is not None:
            out["objectWriteTraceId"] = trace
        return out

    # ---- routes
    def extra_control(self, key, value):
        return self.oauth.control(key, value)

    def route(self, handler, method, path, query, body):
        if path == self.oauth.path and method == "POST":
            res = self.oauth.grant(handler, "", body)
            self.counters["oauth_grants" if res[0] == 200 else "oauth_refused"] += 1
            return res
        pm = PROPS_PATH.match(path)
        if pm and method == "GET":
            obj = pm.group(1)
            if obj not in self.schema:
                raise err(404, "OBJECT_NOT_FOUND", f"Unable to infer object type from: {obj}")
            props = self.schema[obj]["properties"]
            if props is None:
                raise err(403, "MISSING_SCOPES", "This app hasn't been granted all required scopes "
                          "to make this call.", errors=[{"message": "missing crm.schemas read scope"}])
            unique = self.schema[obj]["unique"]
            return 200, {"results": [{"name": n, "label": n.title(), "type": t,
                                      "fieldType": FIELD_TYPES.get(t, "text"),
                                      "hasUniqueValue": n in unique}
                                     for n, t in props.items()]}, []
        m = OBJECT_PATH.match(path)
        if not m:
            raise err(404, "OBJECT_NOT_FOUND", f"No route for {method} {path}")
        obj, verb = m.group(1), m.group(3)
        if obj not in self.schema:
            raise err(404, "OBJECT_NOT_FOUND", f"Unable to infer object type from: {obj}")
        if verb is None:
            if method != "GET":
                raise err(405, "VALIDATION_ERROR", "method not allowed")
            limit = 10
            for part in query.split("&"):
                if part.startswith("limit="):
                    limit = max(1, min(100, int(part[6:] or 10)))
            items = list(self.objects[obj].items())[:limit]
            return 200, {"results": [self.record_view(i, r) for i, r in items]}, []
        if method != "POST":
            raise err(405, "VALIDATION_ERROR", "method not allowed")
        self.counters[f"{verb}_requests"] += 1
        return getattr(self, verb)(obj, body)

    def upsert(self, obj, body):
        started = now_iso()
        _, inputs = self.parse_inputs(body)
        unique = self.schema[obj]["unique"]
        kinds = self.schema[obj]["properties"]
        seen = set()
        problems = []
        for inp in inputs:
            idp, idv, props = inp.get("idProperty"), inp.get("id"), inp.get("properties")
            if idp not in unique:
                raise err(400, "VALIDATION_ERROR",
                          f"idProperty {idp!r} is not a unique property of {obj}")
            if not isinstance(idv, str) or not idv:
                raise err(400, "VALIDATION_ERROR", "Each input needs a non-empty string 'id'")
            if not isinstance(props, dict):
                raise err(400, "VALIDATION_ERROR", "Each input needs 'properties'")
            key = (idp, self.norm(idp, idv))
            if key in seen:
                raise err(400, "VALIDATION_ERROR", "Duplicate IDs found in batch input: " + idv)
            seen.add(key)
            if idp == "email" and not EMAIL.match(idv):
                problems.append({"isValid": False, "name": "email", "error": "INVALID_EMAIL",
                                 "message": f"Email address {idv} is invalid"})
            for p, v in props.items():
                # fast path: a string for a known string property needs no more checks
                if type(v) is str and (kinds is None or kinds.get(p) == "string") and p != "email":
                    continue
                self.check_value(obj, p, v, problems)
        if problems:
            self.counters["validation_errors"] += 1
            raise err(400, "VALIDATION_ERROR",
                      "Property values were not valid: " + json.dumps(problems))
        results, errors = [], []
        idx = self.index[obj]
        ts = now_iso()
        for inp in inputs:
            idp, idv, props = inp["idProperty"], inp["id"], inp["properties"]
            trace = inp.get("objectWriteTraceId")
            if self.is_rejected(idv):
                self.counters["rejected"] += 1
                ctx = {"objectWriteTraceId": [trace]} if trace is not None else {"ids": [idv]}
                errors.append({"status": "error", "category": "VALIDATION_ERROR",
                               "message": "Property values were not valid (injected rejection)",
                               "context": ctx, "errors": []})
                continue
            key = (idp, self.norm(idp, idv))
            hs_id = idx.get(key)
            new = hs_id is None
            if new:
                hs_id = str(self.next_id)
                self.next_id += 1
                rec = {"properties": {idp: self.norm(idp, idv)}, "createdAt": ts, "updatedAt": ts}
                self.objects[obj][hs_id] = rec
                idx[key] = hs_id
                self.counters["created"] += 1
            else:
                rec = self.objects[obj][hs_id]
                rec["updatedAt"] = ts
                self.counters["updated"] += 1
            for p, v in props.items():
                if p in unique and v:
                    old = rec["properties"].get(p)
                    if old:
                        idx.pop((p, self.norm(p, old)), None)
                    idx[(p, self.norm(p, v))] = hs_id
                    v = self.norm(p, v)
                rec["properties"][p] = v
            results.append(self.record_view(hs_id, rec, new, trace))
        self.counters["upserted_inputs"] += len(results)
        out = {"status": "COMPLETE", "results": results, "startedAt": started,
               "completedAt": now_iso()}
        if errors:
            out["errors"] = errors
            out["numErrors"] = len(errors)
            return 207, out, []
        return 200, out, []

    def read(self, obj, body):
        doc, inputs = self.parse_inputs(body)
        idp = doc.get("idProperty")
        props = doc.get("properties") or []
        if idp is not None and idp not in self.schema[obj]["unique"]:
            raise err(400, "VALIDATION_ERROR", f"idProperty {idp!r} is not a unique property of {obj}")
        results, missing = [], []
        for inp in inputs:
            idv = inp.get("id")
            if not isinstance(idv, str):
                raise err(400, "VALIDATION_ERROR", "Each input needs a string 'id'")
            hs_id = self.index[obj].get((idp, self.norm(idp, idv))) if idp else idv
            rec = self.objects[obj].get(hs_id) if hs_id else None
            if rec is None:
                missing.append(idv)
            else:
                results.append(self.record_view(hs_id, rec, props=props))
        out = {"status": "COMPLETE", "results": results, "startedAt": now_iso(),
               "completedAt": now_iso()}
        if missing:
            out["errors"] = [{"status": "error", "category": "OBJECT_NOT_FOUND",
                              "message": f"Could not get some {obj.upper()} objects, they may be "
                                         "deleted or not exist. Check that ids are valid.",
                              "context": {"ids": missing}}]
            out["numErrors"] = 1
            return 207, out, []
        return 200, out, []

    def archive(self, obj, body):
        _, inputs = self.parse_inputs(body)
        for inp in inputs:
            idv = inp.get("id")
            if not isinstance(idv, str) or not idv.isdigit():
                raise err(400, "VALIDATION_ERROR", "archive inputs must be HubSpot object ids")
        for inp in inputs:
            rec = self.objects[obj].pop(inp["id"], None)
            if rec is None:
                continue
            self.counters["archived"] += 1
            for p in self.schema[obj]["unique"]:
                v = rec["properties"].get(p)
                if v:
                    self.index[obj].pop((p, self.norm(p, v)), None)
        return 204, None, []


if __name__ == "__main__":
    serve(HubSpot)
