"""The online submission's per-address rate limit behind a reverse proxy (MOTCUA_HUB_TRUSTED_PROXIES).

By default the hub ignores X-Forwarded-For (anyone can send it): the client address is the connection's,
so behind a proxy every resident shares the proxy's allowance, and a forged header changes nothing. With
TRUSTED_PROXIES=N, werkzeug's ProxyFix takes the N-th address from the right of X-Forwarded-For (the one the
last trusted proxy saw), so residents are counted apart and a value a client prepends is not believed.
"""
# ruff: noqa: F811  (pytest fixtures imported from hubtest are parameters here)

from __future__ import annotations

import hashlib
import hmac

import pytest
from hubtest import PASSWORD, hub_db_url  # noqa: F401  (fixtures are imported by name; see hubtest.py)
from test_online_submission import body

from central import create_app
from central.errors import HubError
from central.instance import init_hub
from central.models import SubmissionHit
from central.storage.testing import UNIT_A, NodeWriter
from central.tokens import create_token

PROXY = "10.0.0.1"  # the reverse proxy's own address, as the hub's socket sees it


def make_app(tmp_path, clock, hub_db_url, **config):
    path = tmp_path / "hub"
    init_hub(path, "Trung tâm huyện Đồng Hỷ", "admin", PASSWORD, hub_db_url)
    app = create_app(dict({"DATA_DIR": str(path), "TESTING": True, "WTF_CSRF_ENABLED": False, "NOW": clock,
                           "DATABASE_URL": hub_db_url, "PUBLIC_PER_HOUR": 1}, **config))
    hub = app.extensions["motcua_hub"]
    token = create_token(hub, [UNIT_A], "commune")
    resp = app.test_client().post("/api/v1/enroll", json={"token": token, "software_version": "0.1.0",
                                                          **dict(NodeWriter(UNIT_A).record(), unit_name="Xã A")})
    assert resp.status_code == 200, resp.data
    return app, hub


@pytest.fixture
def opened():
    apps = []
    yield apps
    for hub in apps:
        hub.close()


def via_proxy(client, forwarded: str | None):
    headers = {"X-Forwarded-For": forwarded} if forwarded is not None else {}
    return client.post("/nop-ho-so", data=body(client), content_type="multipart/form-data", headers=headers,
                       environ_base={"REMOTE_ADDR": PROXY})


def counted(hub, address: str) -> int:
    """Submissions the rate limit holds for this address (it keeps only a keyed hash)."""
    key = hmac.new(hub.secret.encode(), f"client|{address}".encode(), hashlib.sha256).hexdigest()
    return SubmissionHit.select().where(SubmissionHit.client == key).count()


def test_by_default_the_forwarded_header_is_not_believed(tmp_path, clock, hub_db_url, opened):
    app, hub = make_app(tmp_path, clock, hub_db_url)
    opened.append(hub)
    assert app.config["TRUSTED_PROXIES"] == 0
    client = app.test_client()
    assert via_proxy(client, "203.0.113.5").status_code == 303
    assert counted(hub, PROXY) == 1 and counted(hub, "203.0.113.5") == 0, "counted against the connection"
    resp = via_proxy(client, "203.0.113.6")
    assert resp.status_code == 429, "a forged or a proxy's header does not give a new allowance"
    assert via_proxy(client, None).status_code == 429


def test_behind_a_trusted_proxy_residents_are_counted_apart(tmp_path, clock, hub_db_url, opened):
    app, hub = make_app(tmp_path, clock, hub_db_url, TRUSTED_PROXIES=1)
    opened.append(hub)
    client = app.test_client()
    assert via_proxy(client, "203.0.113.5").status_code == 303
    assert counted(hub, "203.0.113.5") == 1 and counted(hub, PROXY) == 0
    assert via_proxy(client, "203.0.113.6").status_code == 303, "another resident behind the same proxy"
    assert via_proxy(client, "203.0.113.5").status_code == 429
    resp = via_proxy(client, "198.51.100.9, 203.0.113.5")
    assert resp.status_code == 429, "a value the client put in front of the proxy's is not believed"
    assert counted(hub, "198.51.100.9") == 0
    assert via_proxy(client, None).status_code == 303, "without the header: the connection's address"
    assert counted(hub, PROXY) == 1


def test_two_proxies_take_the_second_address_from_the_right(tmp_path, clock, hub_db_url, opened, monkeypatch):
    monkeypatch.setenv("MOTCUA_HUB_TRUSTED_PROXIES", "2")
    app, hub = make_app(tmp_path, clock, hub_db_url)
    opened.append(hub)
    assert app.config["TRUSTED_PROXIES"] == 2
    client = app.test_client()
    assert via_proxy(client, "198.51.100.9, 203.0.113.5, 10.0.0.2").status_code == 303
    assert counted(hub, "203.0.113.5") == 1


@pytest.mark.parametrize("value", ["x", "-1", "6", "1.5", " "])
def test_a_bad_setting_stops_the_hub_with_a_message(tmp_path, value, monkeypatch):
    init_hub(tmp_path / "hub", "Trung tâm huyện Đồng Hỷ", "admin", PASSWORD)
    monkeypatch.setenv("MOTCUA_HUB_TRUSTED_PROXIES", value)
    with pytest.raises(HubError, match="MOTCUA_HUB_TRUSTED_PROXIES must be a whole number from 0 to 5"):
        create_app({"DATA_DIR": str(tmp_path / "hub")})
