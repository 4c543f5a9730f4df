"""The OpenAPI 3.1 description of the node's JSON API (/api/v1), built in code.

The request schemas below are also what `node.web.api` checks bodies against (`checked()`, at the end:
types, lengths, ranges, enums), so the document and the validation cannot drift apart; the workflow then
checks meaning (required fields, dates, ID numbers). `document()` is served at /api/v1/openapi.json; a
test compares its paths with the Flask rules.
"""

from __future__ import annotations

import functools
from typing import Any

from .. import queries, workflow as wf
from ..errors import ValidationFailed

API_PREFIX = "/api/v1"
DATETIME = {"type": "string", "description": "Local Vietnam time `YYYY-MM-DD HH:MM:SS` (\"\" when unset)"}
STATUS_CODES = sorted(wf.STATUSES)


def _str(limit: int, **kw: Any) -> dict[str, Any]:
    return {"type": "string", "maxLength": limit, **kw}


def _int(lo: int, hi: int, **kw: Any) -> dict[str, Any]:
    return {"type": "integer", "minimum": lo, "maximum": hi, **kw}


def _enum(values) -> dict[str, Any]:
    return {"type": "string", "enum": list(values)}


BOOL = {"type": "boolean"}

DOCUMENT_IN = {"type": "object", "properties": {
    "name": _str(300), "copy_kind": _enum(wf.COPY_KINDS), "count": _int(1, 100),
    "digitised": _enum(wf.DIGITISED)}, "required": ["name"]}

# Reception body (workflow.validate_reception); null counts as absent.
RECEPTION_FIELDS: dict[str, dict[str, Any]] = {
    "procedure_code": _str(40), "applicant_name": _str(120), "applicant_id_number": _str(20),
    "applicant_birth_date": _str(10, description="YYYY-MM-DD"), "applicant_gender": _enum(("male", "female")),
    "applicant_address": _str(300), "applicant_phone": _str(20), "applicant_email": _str(120),
    "owner_name": _str(120), "matter": _str(500), "sets": _int(1, 50), "pages": _int(1, 10000),
    "return_method": _enum(wf.RETURN_METHODS), "channel": _int(1, 3),
    "documents": {"type": "array", "maxItems": 50, "items": DOCUMENT_IN,
                  "description": "Omitted: the procedure's list of documents."},
    "online": {"type": "boolean", "description": "true: register an online submission (status 1)"},
}

# Parameters of the workflow actions (workflow._HANDLERS); null counts as absent.
ACTION_PARAMS: dict[str, dict[str, Any]] = {
    "reason": _str(1000), "note": _str(1000), "handler_id": _str(64),
    "items": {"oneOf": [{"type": "array", "maxItems": 50, "items": _str(300)}, _str(5000)],
              "description": "Documents to add: a list, or one per line"},
    "amount": _int(1, 1_000_000_000, description="whole đồng"), "online": BOOL, "result_digitised": BOOL,
    "new_appointment": _str(19, description="YYYY-MM-DD HH:MM"), "rating": _enum(wf.RATINGS),
    "rating_reason": _str(500), "method": _enum(wf.RETURN_METHODS),
    "agency": _enum(wf.AGENCIES),
}
# action -> (parameters it reads, parameters it requires)
ACTION_FIELDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "accept": (("note",), ()), "refuse": (("reason",), ("reason",)),
    "request_supplement": (("reason", "items"), ("reason", "items")),
    "supplement_received": (("note",), ()), "transfer": (("note",), ()),
    "assign": (("handler_id", "note"), ("handler_id",)), "propose": (("note",), ()),
    "request_payment": (("amount",), ()), "record_payment": (("online",), ()),
    "sign": (("result_digitised", "note"), ()), "stop": (("reason",), ("reason",)),
    "apologise": (("reason", "new_appointment"), ("reason", "new_appointment")),
    "withdraw": (("reason",), ("reason",)), "return_result": (("rating", "rating_reason", "method"), ("rating",)),
    "send_to_agency": (("agency", "note"), ("agency",)), "agency_accept": (("note",), ()),
    "agency_result": (("result_digitised", "note"), ()), "agency_return": (("reason",), ("reason",)),
}
TOKEN_FIELDS = {"username": _str(40), "password": _str(1024)}
# Editing applicant details (workflow.edit_dossier), resolving a conflict, reviewing a possible duplicate.
EDIT_FIELDS: dict[str, dict[str, Any]] = {name: RECEPTION_FIELDS[name] for name in wf.EDIT_LIMITS}
RESOLVE_FIELDS: dict[str, dict[str, Any]] = {
    "choice": _enum(("keep", "take", "new")),
    "take": _str(200, description="choice take: the version of the candidate whose value is taken"),
    "value": _str(500, description="choice new: the new value, checked like an edit of that field"),
}
REVIEW_FIELDS: dict[str, dict[str, Any]] = {"decision": _enum(("distinct", "duplicate")), "note": _str(500)}
SEARCH_FIELDS = {"q": _str(100)}


def _obj(props: dict[str, Any], required: tuple[str, ...] | list[str] = ()) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        out["required"] = list(required)
    return out


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


S, N, B = {"type": "string"}, {"type": "integer"}, {"type": "boolean"}

DOSSIER_PROPS: dict[str, Any] = {
    "id": S, "code": S, "unit_code": S, "procedure_code": S, "procedure_version": N, "procedure_name": S,
    "status": {"type": "integer", "enum": STATUS_CODES}, "status_label": S, "step": S,
    "channel": N, "channel_label": S, "applicant_name": S, "applicant_id_number": S,
    "applicant_birth_date": S, "applicant_address": S, "applicant_phone": S, "applicant_email": S,
    "owner_name": S, "matter": S, "sets": N, "return_method": S, "return_method_label": S,
    "received_at": DATETIME, "received_by": S, "appointment_at": DATETIME, "original_appointment_at": DATETIME,
    "apology_at": DATETIME, "apology_reason": S, "handler_id": S, "handler_name": S, "step_deadline": DATETIME,
    "paused_at": DATETIME, "paused_minutes_left": N, "fee_amount": N, "fee_paid": B, "paid_online": B,
    "transferred_at": DATETIME, "result_at": DATETIME, "finished_at": DATETIME, "returned_at": DATETIME,
    "rating": S, "rating_label": S, "rating_reason": S, "reason": S,
    "supplement_items": {"type": "array", "items": S}, "result_digitised": B,
    "timing": {"type": "string", "enum": ["", "early", "on_time", "late", "overdue", "due_soon", "in_time"]},
    "updated_hlc": S,
}
LOOKUP_PROPS: dict[str, Any] = {
    "code": S, "procedure_code": S, "procedure_name": S, "status": {"type": "integer", "enum": STATUS_CODES},
    "status_label": S, "received_at": DATETIME, "appointment_at": DATETIME,
}

SCHEMAS: dict[str, Any] = {
    "Error": _obj({"error": _obj({"code": S, "message": S, "fields": {
        "type": "object", "additionalProperties": S,
        "description": "field name (e.g. documents[0].name) -> message"}}, ["code", "message"])}, ["error"]),
    "TokenRequest": _obj(TOKEN_FIELDS, ["username", "password"]),
    "Token": _obj({"token": S, "token_type": {"const": "Bearer"}, "expires_in": N, "officer": _ref("Officer")},
                  ["token", "expires_in"]),
    "Officer": _obj({"id": S, "username": S, "full_name": S, "roles": {"type": "array", "items": S}}),
    "Procedure": _obj({
        "code": S, "version": N, "effective_from": S, "name": S, "name_vi": S, "name_en": S, "field": S,
        "level": S, "time_kind": S, "time_value": N, "cutoff_15h": B, "time_label": S,
        "fee_rule": {"type": "object"}, "documents": {"type": "array", "items": {"type": "object"}},
        "online_level": S, "interconnected": B, "supplement_rule": S}),
    "ProcedureList": _obj({"items": {"type": "array", "items": _ref("Procedure")}}, ["items"]),
    "CalendarDay": _obj({"day": S, "kind": _enum(("day_off", "working_day")), "name": S,
                         "layer": {"type": "string",
                                   "description": "\"\" the seed, \"*\" the hub, else this commune"}}),
    "Calendar": _obj({"year": N, "items": {"type": "array", "items": _ref("CalendarDay")}}, ["year", "items"]),
    "Due": _obj({"procedure": S, "received": S, "appointment": _str(16, description="YYYY-MM-DD HH:MM")},
                ["appointment"]),
    "ReceptionBody": _obj(RECEPTION_FIELDS, ["procedure_code", "applicant_name", "applicant_id_number"]),
    "ActionParams": {**_obj(ACTION_PARAMS), "description": "Each action reads only its own parameters: " + "; ".join(
        f"{name}: {', '.join(p) or '(none)'}" + (f" (required: {', '.join(r)})" if r else "")
        for name, (p, r) in ACTION_FIELDS.items())},
    "SearchBody": _obj(SEARCH_FIELDS, ["q"]),
    "Dossier": _obj(DOSSIER_PROPS, list(DOSSIER_PROPS)),
    "Document": _obj({"id": S, "position": N, "name": S, "copy_kind": S, "copy_kind_label": S, "count": N,
                      "digitised": S, "digitised_label": S}),
    "Attachment": _obj({"id": S, "dossier_id": S, "document_id": S, "filename": S, "mime": S, "size": N,
                        "sha256": S, "uploaded_by": S, "uploaded_at": DATETIME, "url": S}),
    "Event": _obj({"id": S, "at": DATETIME, "action": S, "action_label": S, "from_status": N, "to_status": N,
                   "by_user": S, "by_name": S, "to_user": S, "to_name": S, "unit": S, "step_deadline": S,
                   "note": S, "applied": B}),
    "AllowedAction": _obj({"name": _enum(wf.ACTIONS), "label": S, "to_status": {"type": ["integer", "null"]},
                           "params": {"type": "array", "items": S}, "required": {"type": "array", "items": S},
                           "choices": {"type": "object", "description": "assign: handler_id -> specialists"}}),
    "DossierDetail": _obj({
        "dossier": _ref("Dossier"), "documents": {"type": "array", "items": _ref("Document")},
        "attachments": {"type": "array", "items": _ref("Attachment")},
        "events": {"type": "array", "items": _ref("Event")},
        "allowed_actions": {"type": "array", "items": _ref("AllowedAction")}},
        ["dossier", "documents", "attachments", "events", "allowed_actions"]),
    "Received": {"allOf": [_ref("DossierDetail"), _obj({"warnings": {"type": "array", "items": S}})]},
    "DossierPage": _obj({"items": {"type": "array", "items": _ref("Dossier")}, "total": N, "page": N,
                         "size": N, "pages": N}, ["items", "total", "page", "size", "pages"]),
    "Lookup": _obj(LOOKUP_PROPS, list(LOOKUP_PROPS)),
    "EditBody": {**_obj(EDIT_FIELDS), "description": "Only the applicant's details; other fields are refused (422)"},
    "ResolveBody": _obj(RESOLVE_FIELDS, ["choice"]),
    "ReviewBody": _obj(REVIEW_FIELDS, ["decision"]),
    "ConflictCandidate": _obj({
        "version": _str(200, description="<hlc>~<node_id>"), "value": {"description": "field conflicts"},
        "action": {"type": ["string", "null"], "description": "status conflicts"}, "node_id": S, "node_name": S,
        "by_user": S, "by_name": S, "at": DATETIME, "winner": B,
        "applied": {"type": "boolean", "description": "its value (or action) is what the dossier shows now"}}),
    "Conflict": _obj({
        "id": S, "dossier_id": S, "unit_code": S, "kind": _enum(("field", "status")), "field": S, "label": S,
        "base": S, "winner": S, "resolved": B, "resolution": {"type": ["object", "null"]},
        "current": {"description": "the field's value in the dossier now (field conflicts)"}, "code": S,
        "applicant_name": S, "candidates": {"type": "array", "items": _ref("ConflictCandidate")}}),
    "ConflictList": _obj({"items": {"type": "array", "items": _ref("Conflict")}, "page": N, "size": N, "open": N,
                          "duplicates_open": N}, ["items", "open", "duplicates_open"]),
    "Resolved": _obj({"conflict": _ref("Conflict"), "change": _obj({"node_id": S, "seq": N, "hlc": S, "hash": S})},
                     ["conflict", "change"]),
    "Duplicate": _obj({"id": S, "unit_code": S, "procedure_code": S, "reviewed": B, "decision": S, "note": S,
                       "reviewed_by": S, "reviewed_at": DATETIME, "dossiers": {"type": "array", "items": _obj({
                           "id": S, "code": S, "applicant_name": S, "received_at": DATETIME, "origin_node": S,
                           "origin_name": S, "status": {"type": ["integer", "null"]}})}}),
    "DuplicateList": _obj({"items": {"type": "array", "items": _ref("Duplicate")}, "open": N}, ["items", "open"]),
    "Reviewed": _obj({"duplicate": _ref("Duplicate"), "change": _obj({"node_id": S, "seq": N, "hlc": S, "hash": S})},
                     ["duplicate", "change"]),
}
SCHEMAS["DossierDetail"]["properties"]["conflicts"] = {"type": "array", "items": _ref("Conflict")}

ERRORS = {
    "400": ("InvalidJSON", "Body is not a JSON object with Content-Type application/json (code invalid_json)"),
    "401": ("Unauthorized", "Missing, invalid or expired bearer token (code unauthorized)"),
    "403": ("Forbidden", "The caller's role may not do this (code forbidden)"),
    "404": ("NotFound", "No such dossier, action, procedure or file (code not_found)"),
    "409": ("Conflict", "The dossier's status does not allow the action (code transition_not_allowed)"),
    "413": ("TooLarge", "Body or file over the size limit (code payload_too_large)"),
    "422": ("Invalid", "A field is wrong; `fields` says which (code validation_failed)"),
    "429": ("TooManyAttempts", "Too many failed logins; try later (code too_many_attempts)"),
}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _param(name: str, where: str, schema: dict[str, Any], description: str = "", required: bool = False):
    out = {"name": name, "in": where, "schema": schema, "required": required or where == "path"}
    if description:
        out["description"] = description
    return out


CODE = _param("code", "path", {"type": "string"}, "dossier code, e.g. 000.17.22.H56-240315-0007")
PAGING = [_param("page", "query", _int(1, 100000, default=1)), _param("size", "query", _int(1, 200))]
ACCEPT_LANGUAGE = {"name": "Accept-Language", "in": "header", "required": False, "schema": {"type": "string"},
                   "description": "Starting with `en`: English messages; otherwise Vietnamese"}


def _op(op_id: str, summary: str, ok: dict[str, Any], errors: str = "", *, status: str = "200",
        params: list | None = None, body: dict[str, Any] | None = None, public: bool = False) -> dict[str, Any]:
    responses: dict[str, Any] = {status: ok}
    codes = errors.split() + ([] if public else ["401"])
    for code in sorted(set(codes)):
        responses[code] = {"$ref": f"#/components/responses/{ERRORS[code][0]}"}
    op: dict[str, Any] = {"operationId": op_id, "summary": summary, "parameters": (params or []) + [ACCEPT_LANGUAGE],
                          "responses": responses}
    if body is not None:
        op["requestBody"] = {"required": True, "content": body}
    if public:
        op["security"] = []
    return op


def _json_body(name: str) -> dict[str, Any]:
    return {"application/json": {"schema": _ref(name)}}


def _paths() -> dict[str, Any]:
    detail = _json(_ref("DossierDetail"))
    return {
        "/auth/token": {"post": _op("getToken", "Exchange a username and password for a bearer token",
                                    _json(_ref("Token")), "400 401 413 422 429", body=_json_body("TokenRequest"),
                                    public=True)},
        "/openapi.json": {"get": _op("getOpenAPI", "This document", _json({"type": "object"}), public=True)},
        "/procedures": {"get": _op(
            "listProcedures", "Procedures in force on a date (default today)", _json(_ref("ProcedureList")), "422",
            params=[_param("on", "query", {"type": "string", "format": "date"}, "YYYY-MM-DD")], public=True)},
        "/procedures/{code}": {"get": _op(
            "getProcedure", "One procedure in the version in force on a date", _json(_ref("Procedure")), "404 422",
            params=[_param("code", "path", {"type": "string"}, "national procedure code"),
                    _param("on", "query", {"type": "string", "format": "date"}, "YYYY-MM-DD")], public=True)},
        "/calendar": {"get": _op("getCalendar", "Calendar overrides (extra days off, extra working days)",
                                 _json(_ref("Calendar")), "422",
                                 params=[_param("year", "query", _int(2000, 2100), "default: this year")])},
        "/due": {"get": _op(
            "getDue", "Appointment for a procedure received at a given time", _json(_ref("Due")), "422",
            params=[_param("procedure", "query", {"type": "string"}, required=True),
                    _param("received", "query", {"type": "string"}, "YYYY-MM-DD HH:MM (default: now)")])},
        "/dossiers": {
            "get": _op("listDossiers", "A worklist, paged", _json(_ref("DossierPage")), "422",
                       params=[_param("worklist", "query", _enum(queries.WORKLISTS), "default: mine")] + PAGING),
            "post": _op("receiveDossier", "Receive a dossier at the counter (reception role)",
                        _json(_ref("Received"), "Created"), "400 403 413 422", status="201",
                        body=_json_body("ReceptionBody")),
        },
        "/dossiers/search": {
            "get": _op("searchDossiers", "Search by code, ID number or name", _json(_ref("DossierPage")), "422",
                       params=[_param("q", "query", _str(100), required=True)] + PAGING),
            "post": _op("searchDossiersPost", "Search, the query in the body (keeps ID numbers out of URLs)",
                        _json(_ref("DossierPage")), "400 413 422", params=list(PAGING),
                        body=_json_body("SearchBody")),
        },
        "/dossiers/{code}": {
            "get": _op("getDossier", "A dossier with documents, files, history, actions and conflicts", detail, "404",
                       params=[CODE]),
            "patch": _op("editDossier", "Correct the applicant's details (reception, specialist, leader): one signed "
                         "change of field writes; a concurrent edit elsewhere becomes a conflict", detail,
                         "400 403 404 409 413 422", params=[CODE], body=_json_body("EditBody"))},
        "/conflicts": {"get": _op(
            "listConflicts", "Conflicts of this node's units (open by default) with open counts",
            _json(_ref("ConflictList")), "422",
            params=[_param("state", "query", _enum(("open", "resolved", "all")), "default: open")] + PAGING)},
        "/conflicts/{cid}/resolve": {"post": _op(
            "resolveConflict", "Keep this, take that, or enter a new value (leader, admin): one signed change",
            _json(_ref("Resolved")), "400 403 404 409 413 422",
            params=[_param("cid", "path", {"type": "string"}, "conflict id")], body=_json_body("ResolveBody"))},
        "/duplicates": {"get": _op(
            "listDuplicates", "Possible duplicates of this node's units (open by default)",
            _json(_ref("DuplicateList")), "422",
            params=[_param("state", "query", _enum(("open", "reviewed", "all")), "default: open")])},
        "/duplicates/{fid}/review": {"post": _op(
            "reviewDuplicate", "Two different dossiers, or one submitted twice (reception, leader, admin)",
            _json(_ref("Reviewed")), "400 403 404 413 422",
            params=[_param("fid", "path", {"type": "string"}, "duplicate flag id")], body=_json_body("ReviewBody"))},
        "/dossiers/{code}/actions/{action}": {"post": _op(
            "performAction", "Carry out a workflow action", detail, "400 403 404 409 413 422",
            params=[CODE, _param("action", "path", _enum(wf.ACTIONS))],
            body={"application/json": {"schema": _ref("ActionParams")}})},
        "/dossiers/{code}/attachments": {"post": _op(
            "uploadAttachment", "Attach a scan (PDF, JPEG or PNG)", _json(_ref("Attachment"), "Created"),
            "400 403 404 413 422", status="201", params=[CODE],
            body={"multipart/form-data": {"schema": _obj({
                "file": {"type": "string", "contentMediaType": "application/octet-stream"},
                "document_id": {"type": "string", "description": "optional: the dossier document it scans"}},
                ["file"])}})},
        "/attachments/{att_id}": {"get": _op(
            "getAttachment", "The file of an attachment",
            {"description": "The file", "content": {m: {"schema": {"type": "string", "contentMediaType": m}}
                                                    for m in ("application/pdf", "image/jpeg", "image/png")}},
            "404", params=[_param("att_id", "path", {"type": "string"})])},
        "/lookup/{code}": {"get": _op("lookupDossier", "Public status of a dossier (no personal data)",
                                      _json(_ref("Lookup")), "404", params=[CODE], public=True)},
    }


@functools.lru_cache(maxsize=1)
def document() -> dict[str, Any]:
    """The whole OpenAPI 3.1 document (built once)."""
    return {
        "openapi": "3.1.0",
        "info": {"title": "motcua node API", "version": "1.0.0",
                 "description": "JSON API of a commune one-stop-shop node. Errors are always "
                                "{\"error\": {\"code\", \"message\", \"fields\"?}}. Times are local Vietnam time "
                                "as stored (`YYYY-MM-DD HH:MM:SS`)."},
        "servers": [{"url": API_PREFIX}],
        "security": [{"bearer": []}],
        "paths": _paths(),
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "description": "Token from POST /auth/token"}},
            "schemas": SCHEMAS,
            "responses": {name: _json(_ref("Error"), text) for name, text in ERRORS.values()},
        },
    }


# ---------------------------------------------------------------- checking bodies against the schemas above

_TYPES = {"string": str, "integer": int, "boolean": bool, "array": list, "object": dict}
_TYPE_NAMES = {"string": ("chuỗi ký tự", "a string"), "integer": ("số nguyên", "an integer"),
               "boolean": ("true hoặc false", "true or false"), "array": ("danh sách", "a list"),
               "object": ("đối tượng", "an object")}


def schema_errors(value: Any, schema: dict[str, Any], path: str, errors: dict[str, str], lang: str = "vi") -> None:
    """Check `value` against the JSON Schema subset used here (type, enum, maxLength, minimum/maximum,
    maxItems, items, properties, oneOf), adding {path: message} to `errors`; null counts as absent."""
    def say(vi: str, en: str) -> None:
        errors[path] = en if lang == "en" else vi

    if value is None:
        return
    if "oneOf" in schema:
        for option in schema["oneOf"]:
            trial: dict[str, str] = {}
            schema_errors(value, option, path, trial, lang)
            if not trial:
                return
        return say("Kiểu dữ liệu không hợp lệ.", "Wrong type.")
    kind = schema["type"]
    if not isinstance(value, _TYPES[kind]) or (kind != "boolean" and isinstance(value, bool)):
        vi, en = _TYPE_NAMES[kind]
        say(f"Phải là {vi}.", f"Must be {en}.")
    elif "enum" in schema and value not in schema["enum"]:
        say("Phải là một trong: " + ", ".join(schema["enum"]), "Must be one of: " + ", ".join(schema["enum"]))
    elif kind == "string" and len(value) > schema.get("maxLength", len(value)):
        say(f"Tối đa {schema['maxLength']} ký tự.", f"At most {schema['maxLength']} characters.")
    elif kind == "integer" and not schema.get("minimum", value) <= value <= schema.get("maximum", value):
        say(f"Số nguyên từ {schema['minimum']} đến {schema['maximum']}.",
            f"An integer from {schema['minimum']} to {schema['maximum']}.")
    elif kind == "array":
        if len(value) > schema.get("maxItems", len(value)):
            return say(f"Tối đa {schema['maxItems']} mục.", f"At most {schema['maxItems']} items.")
        for i, item in enumerate(value):
            schema_errors(item, schema.get("items", {"type": "string"}), f"{path}[{i}]", errors, lang)
    elif kind == "object":
        for key, sub in schema.get("properties", {}).items():
            if key in value:
                schema_errors(value[key], sub, f"{path}.{key}" if path else key, errors, lang)


def checked(lang: str, body: dict[str, Any], fields: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The known, non-null fields of `body`, each as `fields` describes; ValidationFailed (422) otherwise."""
    errors: dict[str, str] = {}
    schema_errors(body, {"type": "object", "properties": fields}, "", errors, lang)
    if errors:
        raise ValidationFailed("Dữ liệu không đúng kiểu, vui lòng kiểm tra các trường được đánh dấu.",
                               "Some fields have the wrong type; check the marked fields.", fields=errors)
    return {k: v for k, v in body.items() if k in fields and v is not None}
