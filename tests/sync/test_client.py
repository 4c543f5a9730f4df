"""The transport to the hub: backoff, Retry-After, request signatures, errors mapped to the exception tree."""

from __future__ import annotations

import threading
from email.utils import format_datetime
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson
import pytest
from hypothesis import given, strategies as st

from node.sync import keys, protocol
from node.sync.errors import SignatureInvalid
from node.sync.client import (API, ClockSkewError, HubClient, HubKeyMismatch, HubRefused, HubUnreachable,
                              NodeForked, Reply, RequestsTransport, Transport, backoff_delay, normalise_hub_url,
                              parse_retry_after)

HUB_KEY = keys.NodeKey.generate()


class ScriptedTransport(Transport):
    """Answers from a list (a Reply, or an exception to raise) and records every request it was given."""

    def __init__(self, *replies):
        self.replies = list(replies)
        self.sent: list[dict] = []

    def send(self, method, path, *, headers, body, timeout):
        self.sent.append({"method": method, "path": path, "headers": headers, "body": body})
        if path == API + "/time":
            return time_reply()
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return reply


def time_reply(hub_ms: int = 1_000_000, key: str = HUB_KEY.public_b64, hub_id: str = "HUB1") -> Reply:
    return Reply(200, {"Content-Type": "application/json"},
                 orjson.dumps({"hub_time_ms": hub_ms, "hub_node_id": hub_id, "hub_public_key": key, "protocol": 1}))


def ok(obj) -> Reply:
    return Reply(200, {"Content-Type": protocol.MEDIA_TYPE}, protocol.encode_body(obj))


def error(status, code, message="no", headers=None) -> Reply:
    return Reply(status, dict({"Content-Type": "application/json"}, **(headers or {})),
                 orjson.dumps({"error": {"code": code, "message": message}}))


def make_client(transport, **over):
    sleeps: list[float] = []
    options = dict(node_id="NTEST", key=keys.NodeKey.generate(), hub_node_id="HUB1",
                   hub_public_key=HUB_KEY.public_b64, retries=3, sleep=sleeps.append, rand=lambda: 0.5,
                   wall_ms=lambda: 400_000, software_version="9.9")
    options.update(over)
    client = HubClient(transport, **options)
    return client, sleeps


# ---------------------------------------------------------------- backoff and Retry-After

@given(attempt=st.integers(min_value=0, max_value=60), r=st.floats(min_value=0, max_value=0.999999))
def test_backoff_is_full_jitter_within_the_exponential_cap(attempt, r):
    delay = backoff_delay(attempt, base=0.5, cap=30.0, rand=lambda: r)
    assert 0 <= delay < min(30.0, 0.5 * 2 ** attempt) + 1e-9


def test_backoff_grows_then_stops_at_the_cap():
    top = [backoff_delay(n, base=0.5, cap=30.0, rand=lambda: 1.0) for n in range(10)]
    assert top[:7] == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0] and set(top[6:]) == {30.0}
    assert backoff_delay(5, rand=lambda: 0.0) == 0.0


@pytest.mark.parametrize("value, expected", [("120", 120.0), ("0", 0.0), (" 7 ", 7.0), (None, None),
                                             ("soon", None), ("-5", None), ("1.5", None)])
def test_retry_after_in_seconds(value, expected):
    assert parse_retry_after(value) == expected


def test_retry_after_as_an_http_date():
    now = datetime(2026, 3, 2, 2, 0, tzinfo=timezone.utc)
    later = format_datetime(now + timedelta(seconds=90), usegmt=True)
    assert parse_retry_after(later, now=now.timestamp()) == pytest.approx(90.0)
    earlier = format_datetime(now - timedelta(seconds=90), usegmt=True)
    assert parse_retry_after(earlier, now=now.timestamp()) == 0.0


def test_503_with_retry_after_is_obeyed():
    transport = ScriptedTransport(error(503, "busy", headers={"Retry-After": "7"}), ok({"acked_seq": 0}))
    client, sleeps = make_client(transport)
    assert client.push([]) == {"acked_seq": 0}
    assert sleeps == [7.0]


def test_429_with_an_http_date_and_a_cap_on_waiting():
    far = format_datetime(datetime.now(timezone.utc) + timedelta(hours=2), usegmt=True)
    transport = ScriptedTransport(error(429, "slow_down", headers={"Retry-After": far}), ok({"acked_seq": 3}))
    client, sleeps = make_client(transport, max_wait=120.0)
    assert client.push([])["acked_seq"] == 3
    assert sleeps == [120.0]


def test_cut_links_are_retried_with_backoff_then_reported_unreachable():
    transport = ScriptedTransport(*[HubUnreachable("cut")] * 4)
    client, sleeps = make_client(transport, retries=3)
    with pytest.raises(HubUnreachable):
        client.status()
    assert sleeps == [0.25, 0.5, 1.0]  # rand = 0.5 of 0.5, 1, 2
    assert len([s for s in transport.sent if s["path"].endswith("/sync/status")]) == 4


def test_busy_after_every_retry_is_unreachable():
    transport = ScriptedTransport(*[error(503, "busy")] * 3)
    client, _ = make_client(transport, retries=2)
    with pytest.raises(HubUnreachable, match="503"):
        client.status()


# ---------------------------------------------------------------- signatures and bodies

def test_a_signed_request_verifies_with_the_node_key_and_request_message():
    transport = ScriptedTransport(ok({"acked_seq": 1}))
    node_key = keys.NodeKey.generate()
    client, _ = make_client(transport, key=node_key)
    client.push([{"x": "ồ"}])
    sent = transport.sent[-1]
    h = sent["headers"]
    assert h["X-Motcua-Node"] == "NTEST" and h["X-Motcua-Version"] == "9.9"
    assert h["Content-Type"] == protocol.MEDIA_TYPE and h["X-Motcua-Protocol"] == str(protocol.PROTOCOL_VERSION)
    # The time is on the hub's clock: the hub said 1,000,000 when ours said 400,000.
    assert int(h["X-Motcua-Time"]) == 1_000_000
    message = protocol.request_message("POST", "/api/v1/sync/push", int(h["X-Motcua-Time"]), "NTEST", sent["body"])
    keys.verify(node_key.public_b64, message, h["X-Motcua-Signature"])
    assert protocol.decode_body(sent["body"]) == {"node_id": "NTEST", "changes": [{"x": "ồ"}]}
    other = protocol.request_message("POST", "/api/v1/sync/pull", int(h["X-Motcua-Time"]), "NTEST", sent["body"])
    with pytest.raises(SignatureInvalid):
        keys.verify(node_key.public_b64, other, h["X-Motcua-Signature"])


def test_the_query_string_is_not_part_of_the_signed_path():
    transport = ScriptedTransport(Reply(200, {"Content-Type": "application/json"}, b'{"size": 4}'))
    node_key = keys.NodeKey.generate()
    client, _ = make_client(transport, key=node_key)
    assert client.put_chunk("ab" * 32, 0, b"data") == 4
    sent = transport.sent[-1]
    assert sent["path"] == f"/api/v1/files/{'ab' * 32}?offset=0" and sent["body"] == b"data"
    message = protocol.request_message("PUT", f"/api/v1/files/{'ab' * 32}", int(sent["headers"]["X-Motcua-Time"]),
                                       "NTEST", b"data")
    keys.verify(node_key.public_b64, message, sent["headers"]["X-Motcua-Signature"])


def test_a_garbled_answer_is_a_clear_refusal():
    transport = ScriptedTransport(Reply(200, {"Content-Type": protocol.MEDIA_TYPE}, b"\x28\xb5\x2f\xfdgarbage"))
    client, _ = make_client(transport)
    with pytest.raises(HubRefused, match="cannot be read"):
        client.status()


# ---------------------------------------------------------------- errors

@pytest.mark.parametrize("status, code", [(403, "unknown_node"), (403, "node_revoked"), (403, "node_quarantined"),
                                          (413, "body_too_large"), (400, "bad_cursor")])
def test_error_answers_become_hub_refused_with_the_hubs_code(status, code):
    client, _ = make_client(ScriptedTransport(error(status, code, "the hub says no")))
    with pytest.raises(HubRefused) as info:
        client.status()
    assert (info.value.code, info.value.status, info.value.message) == (code, status, "the hub says no")


def test_a_fork_answer_is_node_forked():
    client, _ = make_client(ScriptedTransport(error(409, "fork", "fork at seq 3")))
    with pytest.raises(NodeForked) as info:
        client.push([])
    assert info.value.code == "fork" and info.value.status == 409


def test_a_time_refusal_relearns_the_hub_clock_once_then_gives_up():
    transport = ScriptedTransport(error(403, "clock_outside_window"), ok({"acked_seq": 2}))
    client, _ = make_client(transport)
    assert client.status()["acked_seq"] == 2
    assert [s["path"] for s in transport.sent].count(API + "/time") == 2
    transport = ScriptedTransport(error(403, "clock_outside_window"), error(403, "clock_outside_window"))
    client, _ = make_client(transport)
    with pytest.raises(ClockSkewError):
        client.status()


def test_a_hub_with_another_key_is_refused_and_not_repinned():
    class Impostor(ScriptedTransport):
        def send(self, method, path, **kw):
            if path == API + "/time":
                return time_reply(key=keys.NodeKey.generate().public_b64)
            return super().send(method, path, **kw)

    client, _ = make_client(Impostor(ok({})))
    with pytest.raises(HubKeyMismatch):
        client.status()
    assert client.hub_public_key == HUB_KEY.public_b64


def test_hub_time_learns_the_offset():
    client, _ = make_client(ScriptedTransport(), wall_ms=lambda: 700_000)
    client.hub_time()
    assert client.offset_ms == 300_000 and client.hub_now_ms() == 1_000_000


# ---------------------------------------------------------------- the real HTTP transport

@pytest.mark.parametrize("url, expected", [("http://127.0.0.1:9000/", "http://127.0.0.1:9000"),
                                           ("https://hub.example/api/v1", "https://hub.example"),
                                           ("http://h:1/api/v1/", "http://h:1")])
def test_hub_urls_are_normalised(url, expected):
    assert normalise_hub_url(url) == expected


def test_a_hub_url_needs_a_scheme():
    with pytest.raises(ValueError):
        normalise_hub_url("hub.example:9000")


@pytest.fixture
def http_hub():
    seen = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append((self.path, dict(self.headers)))
            body = orjson.dumps({"hub_time_ms": 5, "hub_node_id": "HUB1", "hub_public_key": HUB_KEY.public_b64})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()


def test_requests_transport_talks_http(http_hub):
    url, seen = http_hub
    transport = RequestsTransport(url + "/")
    client, _ = make_client(transport)
    assert client.hub_time()["hub_time_ms"] == 5
    assert seen[0][0] == "/api/v1/time" and seen[0][1]["X-Motcua-Version"] == "9.9"
    transport.close()


def test_requests_transport_raises_unreachable_when_nothing_listens():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client, sleeps = make_client(RequestsTransport(f"http://127.0.0.1:{port}"), retries=1)
    with pytest.raises(HubUnreachable):
        client.hub_time()
    assert len(sleeps) == 1
