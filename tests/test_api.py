"""The JSON API under /api/v1: tokens, the dossier journey by role, strict input, files, lookup, OpenAPI."""

from __future__ import annotations

import io
import json
import re

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from conftest import PASSWORD, ROLES, login, reception_body
from node import users, workflow as wf
from node.sync.log import Change
from node.sync.state import User
from node.web import api, openapi
from node.web.auth import make_token

API = "/api/v1"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
JOURNEY = [("transfer", {}), ("assign", None), ("propose", {}), ("sign", {"result_digitised": True}),
           ("return_result", {"rating": "satisfied"})]
ACTOR = {"transfer": "reception", "assign": "leader", "propose": "specialist", "sign": "leader",
         "return_result": "reception"}


def _officer(role: str) -> users.Officer:
    # Not the `officers` fixture: it would open a second Node (and rebind the database) beside the app's.
    return users.Officer.of(User.get(User.username == f"{role}1"))


@pytest.fixture
def auth(app):
    """role -> request headers carrying that role's bearer token (minted directly: argon2 is slow here)."""
    with app.app_context():
        return {role: {"Authorization": f"Bearer {make_token(_officer(role))}"} for role in ROLES}


@pytest.fixture
def specialist_id(app):
    return _officer("specialist").id


def changes() -> int:
    return Change.select().count()


def receive(client, auth, **over) -> str:
    resp = client.post(f"{API}/dossiers", json=reception_body(**over), headers=auth["reception"])
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()["dossier"]["code"]


def act(client, auth, role, code, action, params=None):
    return client.post(f"{API}/dossiers/{code}/actions/{action}", json=params or {}, headers=auth[role])


def snapshot(client, auth, code):
    return client.get(f"{API}/dossiers/{code}", headers=auth["leader"]).get_json(), changes()


def advance(client, auth, code, steps: int, specialist_id: str) -> None:
    for action, params in JOURNEY[:steps]:
        params = {"handler_id": specialist_id} if action == "assign" else params
        resp = act(client, auth, ACTOR[action], code, action, params)
        assert resp.status_code == 200, resp.get_json()


def error(resp, status: int, code: str) -> dict:
    assert resp.status_code == status, resp.get_json()
    body = resp.get_json()
    assert body["error"]["code"] == code and body["error"]["message"]
    return body["error"]


# ---------------------------------------------------------------- tokens

def test_token_flow(client):
    resp = client.post(f"{API}/auth/token", json={"username": "Reception1", "password": PASSWORD})
    body = resp.get_json()
    assert resp.status_code == 200 and body["expires_in"] == 12 * 3600 and body["officer"]["roles"] == ["reception"]
    ok = client.get(f"{API}/dossiers", headers={"Authorization": f"Bearer {body['token']}"})
    assert ok.status_code == 200 and ok.get_json()["total"] == 0
    error(client.post(f"{API}/auth/token", json={"username": "reception1", "password": "sai"}),
          401, "invalid_credentials")
    assert error(client.post(f"{API}/auth/token", json={"username": 5}), 422, "validation_failed")["fields"]
    missing = client.get(f"{API}/dossiers")
    assert error(missing, 401, "unauthorized") and missing.headers["WWW-Authenticate"].startswith("Bearer")
    error(client.get(f"{API}/dossiers", headers={"Authorization": "Bearer not-a-token"}), 401, "unauthorized")
    error(client.get(f"{API}/dossiers", headers={"Authorization": f"Basic {body['token']}"}), 401, "unauthorized")


def test_failed_logins_are_throttled(client):
    for _ in range(5):
        error(client.post(f"{API}/auth/token", json={"username": "leader1", "password": "x" * 8}),
              401, "invalid_credentials")
    error(client.post(f"{API}/auth/token", json={"username": "leader1", "password": PASSWORD}),
          429, "too_many_attempts")


def test_session_cookie_does_not_authenticate_the_api(client):
    login(client, "reception")  # the API is exempt from CSRF: a cookie alone must never be enough
    error(client.get(f"{API}/dossiers"), 401, "unauthorized")
    error(client.post(f"{API}/dossiers", json=reception_body()), 401, "unauthorized")


def test_message_language_follows_accept_language(client):
    vi = client.get(f"{API}/dossiers").get_json()["error"]["message"]
    en = client.get(f"{API}/dossiers", headers={"Accept-Language": "en-GB,en;q=0.8"}).get_json()["error"]["message"]
    assert vi != en and "token" in en
    assert client.get(f"{API}/nothing", headers={"Accept-Language": "en"}).get_json()["error"]["message"] == \
        "Page not found."


# ---------------------------------------------------------------- the journey, by role

def test_happy_path(client, auth, specialist_id):
    resp = client.post(f"{API}/dossiers", json=reception_body(sets=2, unknown_field=[1]), headers=auth["reception"])
    assert resp.status_code == 201 and resp.headers["Location"].endswith(resp.get_json()["dossier"]["code"])
    body = resp.get_json()
    code = body["dossier"]["code"]
    assert body["dossier"]["status"] == wf.ACCEPTED and body["dossier"]["sets"] == 2
    assert body["dossier"]["appointment_at"] == "2026-03-02 17:00:00" and body["warnings"] == []
    assert [a["name"] for a in body["allowed_actions"]] == ["transfer", "withdraw"]
    assert len(body["documents"]) == 3
    advance(client, auth, code, 1, specialist_id)
    leader_view = client.get(f"{API}/dossiers/{code}", headers=auth["leader"]).get_json()
    assign = next(a for a in leader_view["allowed_actions"] if a["name"] == "assign")
    assert specialist_id in [c["id"] for c in assign["choices"]["handler_id"]]
    for action, params in JOURNEY[1:]:
        params = {"handler_id": specialist_id} if action == "assign" else params
        resp = act(client, auth, ACTOR[action], code, action, params)
        assert resp.status_code == 200, resp.get_json()
    final = resp.get_json()
    d = final["dossier"]
    assert d["status"] == wf.RETURNED and d["rating"] == "satisfied" and d["result_digitised"] is True
    assert d["handler_id"] == specialist_id and d["handler_name"] == "Trần Văn Đức"
    assert d["timing"] == "on_time" and final["allowed_actions"] == []
    assert [e["action"] for e in final["events"]] == ["receive"] + [a for a, _ in JOURNEY]
    mine = client.get(f"{API}/dossiers?worklist=all", headers=auth["reception"]).get_json()
    assert mine["total"] == 0


def test_online_registration_then_accept(client, auth):
    resp = client.post(f"{API}/dossiers", json=reception_body(online=True), headers=auth["reception"])
    d = resp.get_json()["dossier"]
    assert resp.status_code == 201 and d["status"] == wf.NEW and d["channel"] == 2 and d["appointment_at"] == ""
    listed = client.get(f"{API}/dossiers?worklist=new", headers=auth["reception"]).get_json()
    assert [x["code"] for x in listed["items"]] == [d["code"]]
    accepted = act(client, auth, "reception", d["code"], "accept").get_json()["dossier"]
    assert accepted["status"] == wf.ACCEPTED and accepted["appointment_at"]
    error(client.post(f"{API}/dossiers", json=reception_body(online=True), headers=auth["specialist"]),
          403, "forbidden")


@pytest.mark.parametrize("stage", range(len(JOURNEY)))
def test_wrong_role_is_forbidden_and_changes_nothing(client, auth, specialist_id, stage):
    code = receive(client, auth)
    advance(client, auth, code, stage, specialist_id)
    action, params = JOURNEY[stage]
    params = {"handler_id": specialist_id} if action == "assign" else params
    before = snapshot(client, auth, code)
    wrong = [r for r in ROLES if r not in wf.ACTIONS[action].roles]
    assert wrong
    for role in wrong:
        error(act(client, auth, role, code, action, params), 403, "forbidden")
    assert snapshot(client, auth, code) == before


@pytest.mark.parametrize("stage,action,role", [
    (0, "sign", "leader"), (0, "return_result", "reception"), (1, "transfer", "reception"),
    (2, "sign", "leader"), (4, "withdraw", "reception"), (5, "return_result", "reception")])
def test_wrong_status_conflicts_and_changes_nothing(client, auth, specialist_id, stage, action, role):
    code = receive(client, auth)
    advance(client, auth, code, stage, specialist_id)
    before = snapshot(client, auth, code)
    error(act(client, auth, role, code, action, {"rating": "satisfied", "reason": "x"}), 409,
          "transition_not_allowed")
    assert snapshot(client, auth, code) == before


def test_receive_needs_reception_role(client, auth):
    for role in ("specialist", "leader", "admin"):
        error(client.post(f"{API}/dossiers", json=reception_body(), headers=auth[role]), 403, "forbidden")
    assert client.get(f"{API}/dossiers?worklist=all", headers=auth["leader"]).get_json()["total"] == 0


# ---------------------------------------------------------------- strict input

RAW = {"Content-Type": "application/json"}


@pytest.mark.parametrize("data,headers,status,code,field", [
    (b"{not json", RAW, 400, "invalid_json", None),
    (b"[1, 2]", RAW, 400, "invalid_json", None),
    (b'"text"', RAW, 400, "invalid_json", None),
    (b'{"sets": NaN}', RAW, 400, "invalid_json", None),
    (b'{"applicant_name": "\\ud800"}', RAW, 400, "invalid_json", None),
    (b"\xff\xfe{}", RAW, 400, "invalid_json", None),
    (json.dumps(reception_body()).encode(), {"Content-Type": "text/plain"}, 400, "invalid_json", None),
    (b"", RAW, 400, "invalid_json", None),
    (reception_body(sets="abc"), None, 422, "validation_failed", "sets"),
    (reception_body(sets=True), None, 422, "validation_failed", "sets"),
    (reception_body(sets=1.5), None, 422, "validation_failed", "sets"),
    (reception_body(documents="x"), None, 422, "validation_failed", "documents"),
    (reception_body(documents=["x"]), None, 422, "validation_failed", "documents[0]"),
    (reception_body(documents=[{"name": "A", "copy_kind": ["original"]}]), None, 422, "validation_failed",
     "documents[0].copy_kind"),
    (reception_body(documents=[{"name": "A", "count": "2"}]), None, 422, "validation_failed", "documents[0].count"),
    (reception_body(applicant_name=["a"]), None, 422, "validation_failed", "applicant_name"),
    (reception_body(online="yes"), None, 422, "validation_failed", "online"),
    (reception_body(procedure_code="9.999999"), None, 422, "validation_failed", "procedure_code"),
    (reception_body(applicant_id_number="12"), None, 422, "validation_failed", "applicant_id_number"),
])
def test_bad_reception_bodies(client, auth, data, headers, status, code, field):
    before = changes()
    if headers is None:
        resp = client.post(f"{API}/dossiers", json=data, headers=auth["reception"])
    else:
        resp = client.post(f"{API}/dossiers", data=data, headers={**headers, **auth["reception"]})
    err = error(resp, status, code)
    if field:
        assert field in err["fields"], err
    assert changes() == before


@pytest.mark.parametrize("stage,action,role,params,field", [
    (2, "request_payment", "specialist", {"amount": True}, "amount"),
    (2, "request_payment", "specialist", {"amount": "5000"}, "amount"),
    (1, "assign", "leader", {"handler_id": 5}, "handler_id"),
    (1, "assign", "leader", {"handler_id": "nobody"}, "handler_id"),
    (2, "request_supplement", "specialist", {"reason": "Thiếu", "items": [1]}, "items"),
    (2, "request_supplement", "specialist", {"reason": "Thiếu"}, "items"),
    (2, "apologise", "leader", {"reason": "Bận", "new_appointment": "mai"}, "new_appointment"),
    (4, "return_result", "reception", {"rating": ["satisfied"]}, "rating"),
    (4, "return_result", "reception", {"rating": "not_satisfied"}, "rating_reason"),
    (4, "return_result", "reception", {"rating": "satisfied", "note": {"x": 1}}, "note"),
    (3, "sign", "leader", {"result_digitised": "1"}, "result_digitised"),
])
def test_bad_action_params(client, auth, specialist_id, stage, action, role, params, field):
    code = receive(client, auth)
    advance(client, auth, code, stage, specialist_id)
    before = snapshot(client, auth, code)
    assert field in error(act(client, auth, role, code, action, params), 422, "validation_failed")["fields"]
    assert snapshot(client, auth, code) == before


def test_bad_action_requests(client, auth, specialist_id):
    code = receive(client, auth)
    before = snapshot(client, auth, code)
    url = f"{API}/dossiers/{code}/actions/transfer"
    h = auth["reception"]
    error(client.post(url, data=b"[]", headers={**RAW, **h}), 400, "invalid_json")
    error(client.post(url, data=b"{", headers={**RAW, **h}), 400, "invalid_json")
    error(client.post(url, data=b"note=x", headers={"Content-Type": "application/x-www-form-urlencoded", **h}),
          400, "invalid_json")
    error(client.post(f"{API}/dossiers/{code}/actions/explode", json={}, headers=h), 404, "not_found")
    error(client.post(f"{API}/dossiers/000-000000-0000/actions/transfer", json={}, headers=h), 404, "not_found")
    error(client.get(f"{API}/dossiers/000-000000-0000", headers=h), 404, "not_found")
    resp = client.get(url, headers=h)
    assert error(resp, 405, "method_not_allowed") and "POST" in resp.headers["Allow"]
    assert snapshot(client, auth, code) == before
    # an empty body is no parameters; unknown fields are ignored
    assert client.post(url, headers=h).status_code == 200
    assert act(client, auth, "leader", code, "assign", {"handler_id": specialist_id, "extra": [1]}).status_code == 200


def test_body_over_max_content_length_is_413_json(app, client, auth):
    app.config["MAX_CONTENT_LENGTH"] = 2000
    before = changes()
    resp = client.post(f"{API}/dossiers", json=reception_body(matter="x" * 5000), headers=auth["reception"])
    error(resp, 413, "payload_too_large")
    assert changes() == before


# ---------------------------------------------------------------- files

def test_upload_and_download(client, auth):
    code = receive(client, auth)
    doc_id = client.get(f"{API}/dossiers/{code}", headers=auth["reception"]).get_json()["documents"][0]["id"]
    resp = client.post(f"{API}/dossiers/{code}/attachments", headers=auth["specialist"],
                       data={"file": (io.BytesIO(PNG), "giay-chung-sinh.png"), "document_id": doc_id})
    meta = resp.get_json()
    assert resp.status_code == 201 and meta["mime"] == "image/png" and meta["size"] == len(PNG)
    assert meta["document_id"] == doc_id
    got = client.get(meta["url"], headers=auth["leader"])
    assert got.status_code == 200 and got.data == PNG and got.mimetype == "image/png"
    got.close()
    error(client.get(meta["url"]), 401, "unauthorized")
    error(client.get(f"{API}/attachments/nope", headers=auth["leader"]), 404, "not_found")
    listed = client.get(f"{API}/dossiers/{code}", headers=auth["reception"]).get_json()["attachments"]
    assert [a["id"] for a in listed] == [meta["id"]]


def _upload(client, auth, code, data, name, role="reception"):
    return client.post(f"{API}/dossiers/{code}/attachments", headers=auth[role],
                       data={"file": (io.BytesIO(data), name)})


def test_bad_uploads_change_nothing(app, client, auth):
    code = receive(client, auth)
    app.config["MAX_UPLOAD_MB"] = 1
    before = changes()
    error(_upload(client, auth, code, PNG + b"\x00" * (1024 * 1024), "big.png"), 413, "payload_too_large")
    assert "file" in error(_upload(client, auth, code, b"just some text", "fake.png"), 422,
                           "validation_failed")["fields"]
    error(_upload(client, auth, code, PNG, "scan.exe"), 422, "validation_failed")
    error(_upload(client, auth, code, b"", "empty.pdf"), 422, "validation_failed")
    error(_upload(client, auth, code, PNG, "ok.png", role="admin"), 403, "forbidden")
    error(_upload(client, auth, "000-000000-0000", PNG, "ok.png"), 404, "not_found")
    error(client.post(f"{API}/dossiers/{code}/attachments", headers=auth["reception"],
                      data={"scan": (io.BytesIO(PNG), "a.png")}), 422, "validation_failed")
    error(client.post(f"{API}/dossiers/{code}/attachments", headers=auth["reception"], json={"file": "x"}),
          400, "invalid_multipart")
    assert changes() == before


# ---------------------------------------------------------------- reading

def test_lookup_is_public_and_has_no_personal_data(client, auth):
    code = receive(client, auth, applicant_email="huong@example.vn")
    resp = client.get(f"{API}/lookup/{code}")
    body = resp.get_json()
    assert resp.status_code == 200 and set(body) == set(openapi.LOOKUP_PROPS)
    assert body["status"] == wf.ACCEPTED and body["procedure_name"] == "Đăng ký khai sinh"
    text = json.dumps(body, ensure_ascii=False)
    for personal in ("Nguyễn Thị Hương", "019305001234", "2005-04-12", "Xóm Chợ", "0912345678", "huong@"):
        assert personal not in text
    error(client.get(f"{API}/lookup/000-000000-0000"), 404, "not_found")


def test_worklists_and_search(client, auth):
    code = receive(client, auth)
    page = client.get(f"{API}/dossiers?worklist=all&page=1&size=200", headers=auth["leader"]).get_json()
    assert page["total"] == 1 and page["size"] == 200 and page["items"][0]["code"] == code
    for query in ("size=201", "size=0", "page=0", "page=x", "worklist=bogus"):
        error(client.get(f"{API}/dossiers?{query}", headers=auth["leader"]), 422, "validation_failed")
    found = client.get(f"{API}/dossiers/search?q=nguyen thi huong", headers=auth["leader"]).get_json()
    assert [d["code"] for d in found["items"]] == [code]
    by_id = client.post(f"{API}/dossiers/search", json={"q": "019305001234"}, headers=auth["leader"]).get_json()
    assert [d["code"] for d in by_id["items"]] == [code]
    error(client.get(f"{API}/dossiers/search?q=", headers=auth["leader"]), 422, "validation_failed")
    error(client.post(f"{API}/dossiers/search", json={"q": 12}, headers=auth["leader"]), 422, "validation_failed")


def test_catalogue_calendar_and_due(client, auth):
    procs = client.get(f"{API}/procedures", headers={"Accept-Language": "en"}).get_json()["items"]
    birth = next(p for p in procs if p["code"] == "1.001193")
    assert birth["name"] == "Birth registration"
    assert client.get(f"{API}/procedures/1.001193").get_json()["version"] == 1
    error(client.get(f"{API}/procedures/9.999"), 404, "not_found")
    error(client.get(f"{API}/procedures?on=2026-13-40"), 422, "validation_failed")
    error(client.get(f"{API}/calendar?year=2026"), 401, "unauthorized")
    cal = client.get(f"{API}/calendar?year=2026", headers=auth["admin"]).get_json()
    assert cal["year"] == 2026 and cal["items"] and all(i["day"].startswith("2026-") for i in cal["items"])
    assert {i["kind"] for i in cal["items"]} <= {"day_off", "working_day"}
    error(client.get(f"{API}/calendar?year=abc", headers=auth["admin"]), 422, "validation_failed")
    due = client.get(f"{API}/due?procedure=1.001193&received=2026-03-02 15:30", headers=auth["reception"])
    assert due.get_json()["appointment"] == "2026-03-03 17:00"
    due = client.get(f"{API}/due?procedure=1.004873&received=2026-03-02 10:00", headers=auth["reception"])
    assert due.get_json()["appointment"] == "2026-03-05 10:00"
    for query in ("procedure=1.001193&received=yesterday", "procedure=9.9&received=2026-03-02 10:00",
                  "received=2026-03-02 10:00", "procedure=1.001193&received=9999-12-31 23:59"):
        error(client.get(f"{API}/due?{query}", headers=auth["reception"]), 422, "validation_failed")


# ---------------------------------------------------------------- the OpenAPI document

def _flask_operations(app) -> dict[tuple[str, str], object]:
    out = {}
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith(API + "/"):
            path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule[len(API):])
            for method in rule.methods - {"HEAD", "OPTIONS"}:
                out[(path, method.lower())] = rule
    return out


def test_openapi_matches_the_routes(app, client):
    resp = client.get(f"{API}/openapi.json")
    doc = resp.get_json()
    assert resp.status_code == 200 and doc["openapi"].startswith("3.1")
    assert doc["components"]["securitySchemes"]["bearer"] == {
        "type": "http", "scheme": "bearer", "description": "Token from POST /auth/token"}
    flask_ops = _flask_operations(app)
    doc_ops = {(path, method) for path, ops in doc["paths"].items() for method in ops}
    assert set(flask_ops) == doc_ops
    for (path, method), rule in flask_ops.items():
        op = doc["paths"][path][method]
        declared = {p["name"] for p in op["parameters"] if p["in"] == "path"}
        assert declared == set(rule.arguments), (path, method)
        assert (op.get("security") == []) == (rule.endpoint in api.PUBLIC), (path, method)
        assert "401" in op["responses"] or rule.endpoint in api.PUBLIC, (path, method)
        if method == "post" and not path.startswith("/dossiers/{code}/attachments"):
            assert "application/json" in op["requestBody"]["content"], path


def test_openapi_refs_resolve():
    doc = openapi.document()
    refs = re.findall(r'"\$ref": "#/([^"]+)"', json.dumps(doc))
    assert refs
    for ref in refs:
        node = doc
        for part in ref.split("/"):
            node = node[part]
    for response in doc["components"]["responses"].values():
        assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}


def test_protected_operations_refuse_without_token(app, client):
    for (path, method), rule in _flask_operations(app).items():
        if rule.endpoint in api.PUBLIC:
            continue
        url = API + re.sub(r"{[^}]+}", "x", path)
        resp = client.open(url, method=method.upper(), json={})
        assert resp.status_code == 401 and resp.get_json()["error"]["code"] == "unauthorized", url


def test_serialisers_match_the_schemas(client, auth):
    code = receive(client, auth)
    body = client.get(f"{API}/dossiers/{code}", headers=auth["reception"]).get_json()
    schemas = openapi.SCHEMAS
    assert set(body) == set(schemas["DossierDetail"]["properties"])
    assert set(body["dossier"]) == set(schemas["Dossier"]["properties"])
    assert set(body["events"][0]) == set(schemas["Event"]["properties"])
    assert set(body["documents"][0]) == set(schemas["Document"]["properties"])
    assert set(body["allowed_actions"][0]) <= set(schemas["AllowedAction"]["properties"])
    assert set(wf.ACTIONS) == set(openapi.ACTION_FIELDS)
    for params, required in openapi.ACTION_FIELDS.values():
        assert set(required) <= set(params) <= set(openapi.ACTION_PARAMS)


# ---------------------------------------------------------------- never a 500

_LEAF = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
                  st.text(max_size=20))
_ANY = st.recursive(_LEAF, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                   st.dictionaries(st.text(max_size=5), inner, max_size=3)),
                    max_leaves=8)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_any_json_gets_an_answer_not_a_crash(client, auth, specialist_id, data):
    body = reception_body()
    for key in data.draw(st.lists(st.sampled_from(sorted(openapi.RECEPTION_FIELDS)), max_size=3)):
        body[key] = data.draw(_ANY)
    resp = client.post(f"{API}/dossiers", json=body, headers=auth["reception"])
    assert resp.status_code in (201, 422), (body, resp.get_json())
    code = receive(client, auth)
    advance(client, auth, code, data.draw(st.integers(0, len(JOURNEY) - 1)), specialist_id)
    action = data.draw(st.sampled_from(sorted(wf.ACTIONS)))
    params = {k: data.draw(_ANY) for k in data.draw(st.lists(st.sampled_from(sorted(openapi.ACTION_PARAMS))))}
    for role in ROLES:
        resp = act(client, auth, role, code, action, params)
        assert resp.status_code in (200, 403, 409, 422), (action, params, resp.get_json())
