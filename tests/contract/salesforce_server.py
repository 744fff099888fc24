#!/usr/bin/env python3
"""Salesforce Bulk API 2.0 contract server (see contract_base.py for control routes and faults).

Enforced contract (developer.salesforce.com Bulk API 2.0; ../../shared/reference/destinations.md §2):
  Auth: "Authorization: Bearer <token>" (config "token"), else 401
        [{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]
  Every answer carries Sforce-Limit-Info: api-usage=<n>/<max>.
  GET   /services/data/vNN.N/limits
  POST  /services/data/vNN.N/jobs/ingest  {"object","operation":insert|upsert|update|delete|hardDelete,
        "externalIdFieldName" (upsert: required, must be an External ID field), "contentType":"CSV",
        "columnDelimiter":"COMMA","lineEnding":"LF"} -> 200 JobInfo (state Open, contentUrl)
  PUT   /services/data/vNN.N/jobs/ingest/{id}/batches  Content-Type: text/csv -> 201.
        A second PUT makes the job fail at close ("Found multiple contents for job").
  PATCH /services/data/vNN.N/jobs/ingest/{id}  {"state":"UploadComplete"|"Aborted"}
  GET   /services/data/vNN.N/jobs/ingest/{id}   UploadComplete -> InProgress -> JobComplete|Failed
        (after config/control "processing_ms"); numberRecordsProcessed/Failed, errorMessage.
  GET   .../{id}/successfulResults/  "sf__Id","sf__Created",<uploaded columns>
  GET   .../{id}/failedResults/      "sf__Id","sf__Error",<uploaded columns>
  GET   .../{id}/unprocessedrecords/ <uploaded columns>
  GET   /services/data/vNN.N/sobjects/{Object}/describe/  (REST API "sObject Describe",
        developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_sobject_describe.htm)
        -> {"name","label","createable","updateable","fields":[{"name","label","type",
        "createable","updateable","nillable","externalId","unique"}]}: Id (type "id", not
        createable) plus the configured fields, with Salesforce's type names (string, email,
        double, boolean, date, datetime); unknown object -> 404 [{"errorCode":"NOT_FOUND",
        "message":"The requested resource does not exist"}].
  GET   /services/data/vNN.N/query?q=SELECT Id, F FROM O WHERE F IN ('a','b')   (this shape only)
        -> {"totalSize","done","records":[{"attributes":{..},"Id":..,"F":..}],"nextRecordsUrl"?}
  CSV rules checked: header names are fields of the object (else the job fails: InvalidBatch),
  LF line endings (CRLF fails the job), "#N/A" blanks a field, "" leaves it unchanged,
  values valid for the field type (number, boolean true/false, date YYYY-MM-DD,
  datetime ISO 8601 with zone, email), required fields on create, an external id at most once
  per job (DUPLICATE_EXTERNAL_ID), delete rows by Id (ENTITY_IS_DELETED for a deleted one).
  Faults: reject_ids (ext id values) -> failedResults FIELD_CUSTOM_VALIDATION_EXCEPTION;
  control "unprocessed_ids" -> left in unprocessedrecords and the job Failed.

Config: {"token": "...", "schema": {Object: {"external_ids": [...], "required": [...],
  "fields": {name: "string"|"number"|"boolean"|"date"|"datetime"|"email"}}},
  "processing_ms": 0, "query_page_size": 2000, "api_max": 15000}
/_state: {"objects": {Object: {Id: {field: value}}}, "jobs": {id: state}}
"""
import csv
import io
import json
import os
import re
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from contract_base import ApiError, ContractState, serve  # noqa: E402

DEFAULT_SCHEMA = {
    "Contact": {
        "prefix": "003",
        "external_ids": ["Warehouse_Id__c"],
        "required": ["LastName"],
        "fields": {"Warehouse_Id__c": "string", "Email": "email", "FirstName": "string",
                   "LastName": "string", "Plan__c": "string", "Ltv__c": "number",
                   "Vip__c": "boolean", "Signup__c": "datetime", "Birthdate": "date",
                   "Description": "string"},
    },
}
API = re.compile(r"^/services/data/v(\d+\.\d)(/.*)$")
NUMBER = re.compile(r"^-?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$")
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
SOQL = re.compile(r"^SELECT Id, (\w+) FROM (\w+) WHERE (\w+) IN \((.*)\)$", re.S)


def sf_error(status, code, message):
    return ApiError(status, [{"errorCode": code, "message": message}])


def iso_now():
    return time.strftime("%Y-%m-%dT%H:%M:%S.000+0000", time.gmtime())


def parse_literals(text):
    """'a','b\\'c' -> ["a", "b'c"]"""
    out, i, n = [], 0, len(text)
    while i < n:
        while i < n and text[i] in " ,":
            i += 1
        if i >= n:
            break
        if text[i] != "'":
            raise ValueError("expected a string literal")
        i += 1
        buf = []
        while i < n and text[i] != "'":
            if text[i] == "\\" and i + 1 < n:
                i += 1
                buf.append({"n": "\n", "t": "\t"}.get(text[i], text[i]))
            else:
                buf.append(text[i])
            i += 1
        if i >= n:
            raise ValueError("unterminated literal")
        i += 1
        out.append("".join(buf))
    return out


def to_csv(header, rows):
    out = io.StringIO()
    w = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return out.getvalue()


class Salesforce(ContractState):
    name = "salesforce"

    def reset_data(self):
        self.schema = dict(DEFAULT_SCHEMA)
        self.schema.update(self.config.get("schema") or {})
        self.objects = {o: {} for o in self.schema}
        self.deleted = set()
        self.jobs = {}
        self.next_id = 1
        self.api_used = 0
        self.processing_ms = self.config.get("processing_ms", 0)
        self.unprocessed = set()
        self.queries = {}

    def extra_control(self, key, value):
        if key == "processing_ms":
            self.processing_ms = value
            return True
        if key == "unprocessed_ids":
            self.unprocessed = {str(v) for v in value or []}
            return True
        return False

    def check_auth(self, handler):
        self.api_used += 1
        if handler.headers.get("Authorization") != "Bearer " + self.config.get("token", ""):
            return (401, [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}], [])
        return None

    def limit_header(self):
        return [("Sforce-Limit-Info", f"api-usage={self.api_used}/{self.config.get('api_max', 15000)}")]

    def rate_limited_answer(self):
        return (403, [{"errorCode": "REQUEST_LIMIT_EXCEEDED",
                       "message": "TotalRequests Limit exceeded."}], self.limit_header())

    def server_error_answer(self, status):
        return status, [{"errorCode": "SERVER_UNAVAILABLE", "message": "injected"}], []

    def state_view(self):
        return {"objects": {o: {i: dict(r) for i, r in objs.items()} for o, objs in self.objects.items()},
                "jobs": {j: v["state"] for j, v in self.jobs.items()}}

    SF_TYPES = {"string": "string", "email": "email", "number": "double", "boolean": "boolean",
                "date": "date", "datetime": "datetime"}

    def describe(self, obj):
        sc = self.schema.get(obj)
        if sc is None:
            raise sf_error(404, "NOT_FOUND", "The requested resource does not exist")
        ext = set(sc.get("external_ids", []))
        required = set(sc.get("required", []))
        fields = [{"name": "Id", "label": "Record ID", "type": "id", "createable": False,
                   "updateable": False, "nillable": False, "externalId": False, "unique": False}]
        for name, t in sc["fields"].items():
            fields.append({"name": name, "label": name.replace("__c", "").replace("_", " "),
                           "type": self.SF_TYPES[t], "createable": True, "updateable": True,
                           "nillable": name not in required, "externalId": name in ext,
                           "unique": name in ext})
        return 200, {"name": obj, "label": obj, "createable": True, "updateable": True,
                     "fields": fields}, []

    # ---- routing
    def route(self, handler, method, path, query, body):
        m = API.match(path)
        if not m:
            raise sf_error(404, "NOT_FOUND", "The requested resource does not exist")
        version, rest = m.group(1), m.group(2)
        self.version = version
        res = self.dispatch(handler, method, rest, query, body)
        status, rbody, hdrs = res[:3]
        out = (status, rbody, list(hdrs) + self.limit_header())
        return out + tuple(res[3:])

    def dispatch(self, handler, method, rest, query, body):
        if rest == "/limits" and method == "GET":
            return 200, {"DailyApiRequests": {"Max": self.config.get("api_max", 15000),
                                              "Remaining": self.config.get("api_max", 15000) - self.api_used}}, []
        if rest == "/query" and method == "GET":
            return self.query(query)
        if rest.startswith("/query/") and method == "GET":
            return self.query_more(rest[len("/query/"):])
        if rest == "/jobs/ingest" and method == "POST":
            return self.create_job(body)
        d = re.match(r"^/sobjects/(\w+)/describe/?$", rest)
        if d and method == "GET":
            return self.describe(d.group(1))
        m = re.match(r"^/jobs/ingest/(\w+)(/batches|/successfulResults/?|/failedResults/?|/unprocessedrecords/?)?$", rest)
        if not m:
            raise sf_error(404, "NOT_FOUND", "The requested resource does not exist")
        job = self.jobs.get(m.group(1))
        if job is None:
            raise sf_error(404, "NOT_FOUND", "The requested resource does not exist")
        sub = (m.group(2) or "").rstrip("/")
        if sub == "/batches" and method == "PUT":
            return self.upload(job, handler, body)
        if sub == "" and method == "PATCH":
            return self.patch(job, body)
        if sub == "" and method == "GET":
            self.counters["polls"] += 1
            self.advance(job)
            return 200, self.job_info(job), []
        if method == "GET" and sub in ("/successfulResults", "/failedResults", "/unprocessedrecords"):
            self.advance(job)
            if job["state"] not in ("JobComplete", "Failed", "Aborted"):
                raise sf_error(400, "INVALIDJOB", "Job is not complete")
            header = job["header"] or []
            if sub == "/successfulResults":
                text = to_csv(["sf__Id", "sf__Created"] + header, job["ok"])
            elif sub == "/failedResults":
                text = to_csv(["sf__Id", "sf__Error"] + header, job["failed"])
            else:
                text = to_csv(header, job["unprocessed"])
            return 200, text, [], "text/csv"
        raise sf_error(405, "METHOD_NOT_ALLOWED", f"{method} not allowed")

    # ---- jobs
    def job_info(self, job):
        info = {k: job[k] for k in ("id", "operation", "object", "state", "contentType",
                                    "columnDelimiter", "lineEnding", "apiVersion", "createdDate")}
        if job.get("externalIdFieldName"):
            info["externalIdFieldName"] = job["externalIdFieldName"]
        info["contentUrl"] = f"services/data/v{job['apiVersion']}/jobs/ingest/{job['id']}/batches"
        info["concurrencyMode"] = "Parallel"
        info["numberRecordsProcessed"] = len(job["ok"]) + len(job["failed"])
        info["numberRecordsFailed"] = len(job["failed"])
        if job.get("errorMessage"):
            info["errorMessage"] = job["errorMessage"]
        return info

    def create_job(self, body):
        try:
            doc = json.loads(body)
        except ValueError:
            raise sf_error(400, "JSON_PARSER_ERROR", "Unexpected character") from None
        obj, op = doc.get("object"), doc.get("operation")
        if obj not in self.schema:
            raise sf_error(400, "INVALIDJOB", f"InvalidJob : Invalid object type: {obj}")
        if op not in ("insert", "upsert", "update", "delete", "hardDelete"):
            raise sf_error(400, "INVALIDJOB", f"InvalidJob : Invalid operation: {op}")
        ext = doc.get("externalIdFieldName")
        if op == "upsert":
            if not ext:
                raise sf_error(400, "INVALIDJOB", "InvalidJob : External ID was blank for upsert")
            if ext not in self.schema[obj]["external_ids"]:
                raise sf_error(400, "INVALIDJOB",
                               f"InvalidJob : Field name provided, {ext} does not match an External ID "
                               f"field for {obj}")
        if doc.get("contentType", "CSV") != "CSV":
            raise sf_error(400, "INVALIDJOB", "InvalidJob : contentType must be CSV")
        if doc.get("columnDelimiter", "COMMA") != "COMMA" or doc.get("lineEnding", "LF") != "LF":
            raise sf_error(400, "INVALIDJOB", "this contract server supports COMMA/LF only")
        jid = "750" + f"{len(self.jobs) + 1:012d}" + "AAA"
        job = {"id": jid, "operation": op, "object": obj, "state": "Open", "contentType": "CSV",
               "columnDelimiter": "COMMA", "lineEnding": "LF", "apiVersion": self.version,
               "createdDate": iso_now(), "externalIdFieldName": ext, "data": None, "puts": 0,
               "header": None, "ok": [], "failed": [], "unprocessed": [], "complete_at": None}
        self.jobs[jid] = job
        self.counters["jobs_created"] += 1
        return 200, self.job_info(job), []

    def upload(self, job, handler, body):
        if not (handler.headers.get("Content-Type") or "").startswith("text/csv"):
            raise sf_error(400, "INVALIDJOB", "Content-Type must be text/csv")
        if job["state"] != "Open":
            raise sf_error(400, "INVALIDJOB", f"Job {job['id']} is not open for data upload")
        job["puts"] += 1
        job["data"] = body
        self.counters["uploads"] += 1
        self.counters["upload_bytes"] += len(body)
        return 201, None, []

    def patch(self, job, body):
        try:
            doc = json.loads(body)
        except ValueError:
            raise sf_error(400, "JSON_PARSER_ERROR", "Unexpected character") from None
        st = doc.get("state")
        if st == "Aborted":
            job["state"] = "Aborted"
            return 200, self.job_info(job), []
        if st != "UploadComplete" or job["state"] != "Open":
            raise sf_error(400, "INVALIDJOB", f"Cannot change state from {job['state']} to {st}")
        job["state"] = "UploadComplete"
        job["complete_at"] = time.monotonic() + self.processing_ms / 1000.0
        return 200, self.job_info(job), []

    def advance(self, job):
        if job["state"] == "UploadComplete":
            job["state"] = "InProgress"
        if job["state"] == "InProgress" and time.monotonic() >= job["complete_at"]:
            self.process(job)

    def fail(self, job, message):
        job["state"] = "Failed"
        job["errorMessage"] = message
        self.counters["jobs_failed"] += 1

    def new_id(self, obj):
        prefix = self.schema[obj].get("prefix", "a00")
        sid = f"{prefix}{self.next_id:012d}AAA"
        self.next_id += 1
        return sid

    def check_value(self, kind, v):
        if kind == "number":
            return bool(NUMBER.match(v))
        if kind == "boolean":
            return v in ("true", "false", "TRUE", "FALSE", "True", "False", "1", "0")
        if kind == "date":
            return bool(DATE.match(v))
        if kind == "datetime":
            return bool(DATETIME.match(v))
        if kind == "email":
            return bool(EMAIL.match(v))
        return True

    def process(self, job):
        data = job["data"]
        if job["puts"] > 1:
            return self.fail(job, f"InvalidJob : Found multiple contents for job: <{job['id']}>, "
                                  "please 'Close' / 'Abort' / 'Delete' the current Job then create a new "
                                  "Job and make sure you only do 'PUT' once on a given Job.")
        if data is None:
            return self.fail(job, "InvalidBatch : No data uploaded")
        text = data.decode("utf-8")
        rows = list(csv.reader(io.StringIO(text, newline="")))
        if "\r\n" in text:
            return self.fail(job, "ClientInputError : LineEnding is invalid on user data. "
                                  "Current LineEnding setting is LF")
        if not rows:
            return self.fail(job, "InvalidBatch : Empty CSV")
        header, rows = rows[0], rows[1:]
        job["header"] = header
        obj, schema = job["object"], self.schema[job["object"]]
        fields = schema["fields"]
        store = self.objects[obj]
        if job["operation"] in ("delete", "hardDelete"):
            if header != ["Id"]:
                return self.fail(job, "InvalidBatch : delete needs exactly one column: Id")
            for row in rows:
                rid = row[0] if row else ""
                if rid in store:
                    del store[rid]
                    self.deleted.add(rid)
                    job["ok"].append([rid, "false"] + row)
                    self.counters["deleted"] += 1
                elif rid in self.deleted:
                    job["failed"].append([rid, "ENTITY_IS_DELETED:entity is deleted:--"] + row)
                else:
                    job["failed"].append(["", "INVALID_CROSS_REFERENCE_KEY:invalid cross reference id:--"] + row)
            job["state"] = "JobComplete"
            return None
        for h in header:
            if h not in fields:
                return self.fail(job, f"InvalidBatch : Field name not found : {h}")
        ext = job.get("externalIdFieldName")
        if job["operation"] == "upsert" and ext not in header:
            return self.fail(job, f"InvalidBatch : The External ID field {ext} is missing from the header")
        by_ext = {}
        if ext:
            for rid, rec in store.items():
                if rec.get(ext):
                    by_ext[rec[ext]] = rid
        counts = {}
        if ext:
            for row in rows:
                if len(row) == len(header):
                    v = row[header.index(ext)]
                    counts[v] = counts.get(v, 0) + 1
        any_unprocessed = False
        for row in rows:
            if len(row) != len(header):
                job["failed"].append(["", "INVALID_FIELD:wrong number of columns:--"] + row)
                continue
            rec = dict(zip(header, row))
            key = rec.get(ext) if ext else None
            if key is not None and key in self.unprocessed:
                job["unprocessed"].append(row)
                any_unprocessed = True
                continue
            if key is not None and counts.get(key, 0) > 1:
                job["failed"].append(["", f"DUPLICATE_EXTERNAL_ID:External ID specified more than once in "
                                          f"this batch: {key}:--"] + row)
                continue
            if self.is_rejected(key):
                self.counters["rejected"] += 1
                job["failed"].append(["", "FIELD_CUSTOM_VALIDATION_EXCEPTION:Rejected by validation "
                                          "rule (injected):--"] + row)
                continue
            bad = [h for h, v in rec.items() if v not in ("", "#N/A") and not self.check_value(fields[h], v)]
            if bad:
                h = bad[0]
                job["failed"].append(["", f"INVALID_TYPE_ON_FIELD_IN_RECORD:{h}: value not of required "
                                          f"type: {rec[h]}:{h} --"] + row)
                continue
            rid = by_ext.get(key) if key else None
            created = rid is None
            if created and job["operation"] == "update":
                job["failed"].append(["", "ENTITY_IS_DELETED:entity is deleted:--"] + row)
                continue
            missing = [f for f in schema.get("required", [])
                       if rec.get(f) == "#N/A" or (created and rec.get(f) in (None, ""))]
            if missing:
                job["failed"].append(["", f"REQUIRED_FIELD_MISSING:Required fields are missing: "
                                          f"[{', '.join(missing)}]:{missing[0]} --"] + row)
                continue
            if created:
                rid = self.new_id(obj)
                store[rid] = {}
                if key:
                    by_ext[key] = rid
                self.counters["created"] += 1
            else:
                self.counters["updated"] += 1
            target = store[rid]
            for h, v in rec.items():
                if v == "#N/A":
                    target[h] = None
                elif v != "":
                    target[h] = v
            job["ok"].append([rid, "true" if created else "false"] + row)
        if any_unprocessed:
            return self.fail(job, "Processing stopped (injected): some records were not processed")
        job["state"] = "JobComplete"
        return None

    # ---- SOQL subset
    def query(self, query):
        q = urllib.parse.parse_qs(query).get("q", [""])[0]
        m = SOQL.match(q.strip())
        if not m:
            raise sf_error(400, "MALFORMED_QUERY", "this contract server understands only "
                                                   "SELECT Id, F FROM O WHERE F IN ('a', ...)")
        field, obj, where = m.group(1), m.group(2), m.group(3)
        if obj not in self.schema:
            raise sf_error(400, "INVALID_TYPE", f"sObject type '{obj}' is not supported.")
        if field != where or field not in self.schema[obj]["fields"]:
            raise sf_error(400, "INVALID_FIELD", f"No such column '{field}' on entity '{obj}'")
        try:
            values = set(parse_literals(m.group(4)))
        except ValueError as e:
            raise sf_error(400, "MALFORMED_QUERY", str(e)) from None
        self.counters["queries"] += 1
        records = [{"attributes": {"type": obj, "url": f"/services/data/v{self.version}/sobjects/{obj}/{rid}"},
                    "Id": rid, field: rec.get(field)}
                   for rid, rec in self.objects[obj].items() if rec.get(field) in values]
        return self.page(records, 0)

    def page(self, records, start):
        self.counters["query_pages"] += 1
        size = self.config.get("query_page_size", 2000)
        chunk = records[start:start + size]
        done = start + size >= len(records)
        out = {"totalSize": len(records), "done": done, "records": chunk}
        if not done:
            qid = f"01g{len(self.queries):015d}"
            self.queries[qid] = records
            out["nextRecordsUrl"] = f"/services/data/v{self.version}/query/{qid}-{start + size}"
        return 200, out, []

    def query_more(self, token):
        qid, _, start = token.partition("-")
        if qid not in self.queries:
            raise sf_error(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        return self.page(self.queries[qid], int(start))


if __name__ == "__main__":
    serve(Salesforce)
