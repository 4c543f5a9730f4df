"""Fixed costs per sync and per cut (issue 5): what a sync pays besides its bytes.

- the pull is written right behind the last pipelined push, on the same connection (no round trip of its
  own), and its answer is read as a framed/streamed reply like any other;
- a cut pull is retried at once (a little jitter), not after a backoff; a hub that never answered still
  backs off;
- RequestsTransport reads the environment (proxies, CA bundle) once, not at every request;
- the hub writes a node's status (last seen, skew, backlog, version) only when the nodes page would show
  something new, and records a pull position only when it moves.
"""

# ruff: noqa: F811  (fixtures imported from test_push_pipeline are parameters here)
from __future__ import annotations

import socket
from datetime import datetime, timedelta

import pytest
import requests

from node import syncer
from node.sync import client as client_module
from node.sync.client import HubClient, HubUnreachable, RequestsTransport, StreamReply
from node.sync.log import Change
from tests.test_push_pipeline import fake, offline_changes, proxy, pusher, served  # noqa: F401
from tests.conftest import UNIT_CODE
from tests.sync.fakehub import FakeHub

from central.auth import SEEN_REFRESH_S, _shows_something_new


# ---------------------------------------------------------------- the pull behind the last push

def test_the_pull_is_written_behind_the_last_push_and_read_without_a_request_of_its_own(node, fake, served, proxy,
                                                                                        monkeypatch):
    syncer.enroll(node, "http://hub.test:9000", fake.token(UNIT_CODE), transport=fake)
    top = Change.select().where(Change.node_id == node.node_id).count()
    calls: list[str] = []
    real = HubClient._stream_call

    def counted(self, path, obj):
        calls.append(path)
        return real(self, path, obj)

    monkeypatch.setattr(HubClient, "_stream_call", counted)
    transport = RequestsTransport(f"http://127.0.0.1:{proxy.port}")
    report = syncer.sync_once(node, transport=transport, push_batch=5, pull_limit=7)
    assert report.ok, report.error
    assert report.pushed == top and report.digest_ok
    assert calls == [], "the pull went behind the last push: no request of its own"
    assert proxy.connections == 1, "push and pull on one connection"
    # nothing to push: the pull goes right behind /sync/status, on the kept-alive connection
    again = syncer.sync_once(node, transport=transport, push_batch=5, pull_limit=7)
    assert again.ok and again.pushed == 0 and again.digest_ok
    assert calls == [] and proxy.connections == 2, "one connection per sync (sync_once closes its transport)"


def test_a_cut_after_the_last_push_answer_asks_the_pull_again(node, fake, served, proxy):
    syncer.enroll(node, "http://hub.test:9000", fake.token(UNIT_CODE), transport=fake)
    top = Change.select().where(Change.node_id == node.node_id).count()
    pushes = -(-top // 5)
    app, _ = served
    app.on_push = lambda n, reply: proxy.cut_all() if n == pushes else None  # the last push: its answer is lost
    transport = RequestsTransport(f"http://127.0.0.1:{proxy.port}")
    report = syncer.sync_once(node, transport=transport, push_batch=5, pull_limit=7)
    assert report.ok, report.error
    assert report.pushed == top and report.digest_ok


def test_a_pending_pull_that_nobody_reads_is_dropped(node, fake, served, proxy):
    other, changes = offline_changes(fake, 12)
    client, _ = pusher(f"http://127.0.0.1:{proxy.port}", other)
    request = client.pull_request(None, limit=7)
    seqs = {c["seq"]: c for c in changes}
    answers = list(client.push_stream(lambda after, limit: [seqs[s] for s in range(after + 1, min(after + limit,
                                                                                                  12) + 1)],
                                      0, limit=5, then_pull=request))
    assert [b[-1]["seq"] for b, _ in answers] == [5, 10, 12]
    assert client.pending_pull is not None
    client.drop_pending_pull()
    assert client.pending_pull is None
    # a pull for another cursor does not take a pending answer that is not its own
    list(client.push_stream(lambda after, limit: [], 12, limit=5, then_pull=request))
    assert client.pending_pull is None, "nothing pushed: nothing written ahead"


# ---------------------------------------------------------------- a cut pull retries at once

class CutOnce:
    """A transport whose first streamed answer is cut after its first page; then answers whole."""

    def __init__(self, hub: FakeHub):
        self.hub, self.streams = hub, 0

    def send(self, method, path, *, headers, body, timeout):
        return self.hub.send(method, path, headers=headers, body=body, timeout=timeout)

    def stream(self, method, path, *, headers, body, timeout):
        reply = self.hub.send(method, path, headers=headers, body=body, timeout=timeout)
        self.streams += 1
        data, sent = reply.body, [0]
        limit = len(data) // 2 if self.streams == 1 else len(data)

        def read(size):
            if sent[0] >= limit:
                if limit < len(data):
                    raise HubUnreachable("cut")
                return b""
            part = data[sent[0]:min(limit, sent[0] + size)]
            sent[0] += len(part)
            return part

        return StreamReply(reply.status, reply.headers, read)

    def close(self):
        pass


def test_a_cut_pull_is_retried_at_once_and_a_hub_that_never_answered_backs_off():
    fake = FakeHub()
    other, changes = offline_changes(fake, 600)
    writer = HubClient(fake, node_id=other.node_id, key=other.key)
    for i in range(0, len(changes), 200):
        writer.push(changes[i:i + 200])
    reader = fake.add_node(UNIT_CODE)
    sleeps: list[float] = []
    client = HubClient(CutOnce(fake), node_id=reader.node_id, key=reader.key, retries=3, sleep=sleeps.append,
                       rand=lambda: 0.5)
    client.hub_time()
    pages = list(client.pull_pages(None, limit=50))
    assert pages and not pages[-1]["more"]
    assert sleeps == [0.5 * client_module.CUT_JITTER], "one cut, retried at once (jitter only)"

    class Down:
        def send(self, *a, **k):
            raise HubUnreachable("refused")

        def stream(self, *a, **k):
            raise HubUnreachable("refused")

    waits: list[float] = []
    down = HubClient(Down(), node_id=reader.node_id, key=reader.key, retries=2, sleep=waits.append,
                     rand=lambda: 0.5)
    down.offset_ms = 0
    with pytest.raises(HubUnreachable):
        list(down.pull_pages(None))
    assert waits == [0.25, 0.5], "never answered: the usual backoff"


# ---------------------------------------------------------------- the environment, read once

def test_a_transport_reads_the_environment_once(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "")
    transport = RequestsTransport("https://hub.example")
    assert transport.session.trust_env is False
    assert transport.session.proxies.get("https") == "http://proxy.example:3128"
    client = HubClient(transport, node_id="N", key=None)
    assert client_module.PushPipe.open_for(client) is None, "through a proxy: pushes one at a time, as before"
    monkeypatch.setenv("NO_PROXY", "hub.example")
    direct = RequestsTransport("https://hub.example")
    assert not direct.session.proxies.get("https")
    own = requests.Session()
    assert RequestsTransport("https://hub.example", own).session is own and own.trust_env is True


def test_connections_have_tcp_keepalive():
    transport = RequestsTransport("http://127.0.0.1:9")
    options = transport.session.get_adapter("http://127.0.0.1:9/").poolmanager.connection_pool_kw["socket_options"]
    assert (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1) in options
    assert (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1) in options, "urllib3's defaults kept"


# ---------------------------------------------------------------- the hub's bookkeeping writes

def test_the_hub_writes_a_node_status_only_when_the_nodes_page_would_change():
    now = datetime(2026, 3, 2, 9, 0, 0)
    shown = {"last_seen": "2026-03-02 09:00:00", "clock_skew_ms": 400, "software_version": "0.1.0",
             "backlog_reported": 3}
    same = {"last_seen": "2026-03-02 09:00:30", "clock_skew_ms": 900, "software_version": "0.1.0",
            "backlog_reported": 3}
    assert not _shows_something_new(shown, same, now + timedelta(seconds=30))
    assert _shows_something_new(shown, same, now + timedelta(seconds=SEEN_REFRESH_S))
    assert _shows_something_new(shown, dict(same, clock_skew_ms=1400), now)
    assert _shows_something_new(shown, dict(same, backlog_reported=0), now)
    assert _shows_something_new(shown, dict(same, software_version="0.2.0"), now)
    assert _shows_something_new(None, same, now)
    assert _shows_something_new(dict(shown, last_seen=""), same, now)


def test_acknowledge_writes_only_when_the_position_moves(tmp_path, monkeypatch):
    from central.storage import open_storage

    storage = open_storage(f"sqlite:///{tmp_path / 'hub.db'}")
    try:
        storage.create_schema() if hasattr(storage, "create_schema") else None
        purges: list[int] = []
        monkeypatch.setattr(storage, "purge_tombstones", lambda: purges.append(1) or 0)
        storage.acknowledge("N1", 5)
        storage.acknowledge("N1", 5)
        storage.acknowledge("N1", 3)
        assert len(purges) == 1 and storage.node_status("N1")["pulled_to"] == 5
        storage.acknowledge("N1", 8)
        assert len(purges) == 2 and storage.node_status("N1")["pulled_to"] == 8
        storage.touch_node("N1", last_seen="2026-03-02 09:00:00", backlog_reported=4)
        assert storage.node_status("N1")["backlog_reported"] == 4
        (level,) = storage.db.execute_sql("PRAGMA synchronous").fetchone()
        assert level == 2, "the connection is durable again after the bookkeeping commit"
    finally:
        storage.close()
