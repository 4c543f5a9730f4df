"""Pipelined pushes over real HTTP (issue 5): node/sync/client.py `HubClient.push_stream` / `PushPipe`.

A FakeHub (tests/sync/fakehub.py) answers behind a real waitress server on 127.0.0.1, so pipelined requests
meet the same server as in the field; a small asyncio proxy in front of it can cut every connection at a
chosen moment (after the hub applied a batch, before its answer left), terminate TLS with a self-signed
certificate, and counts connections. Checked: every change reaches the hub once and in order, the
acknowledged seq is exact after each answer, a cut resends only the batches not acknowledged, a refused
batch stops the pipeline with its error, 429 and Retry-After are obeyed, the pull reuses the push's
connection, and https works (and refuses an unknown certificate).
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
import threading
import time
from pathlib import Path

import orjson
import pytest
import requests
from waitress.server import create_server

from node import syncer
from node.sync import client as client_module
from node.sync.client import HubClient, HubRefused, HubUnreachable, Reply, RequestsTransport
from node.sync.log import Change
from tests.conftest import UNIT_CODE
from tests.sync.fakehub import FakeHub

N = 95  # changes pushed in the client-level tests: 10 batches of 10, the last one short


# ---------------------------------------------------------------- a FakeHub behind waitress

class WsgiHub:
    """WSGI face of a FakeHub; `on_push(n, reply)` may replace the answer to the n-th push (1-based)."""

    def __init__(self, hub: FakeHub):
        self.hub = hub
        self.lock = threading.Lock()
        self.pushes = 0
        self.on_push = None  # (n, reply) -> Reply | None; called after the hub handled the push
        self.before_push = None  # (n) -> Reply | None; an answer instead of the hub's (the hub never sees it)
        self.delay = 0.0  # seconds each push takes, so pipelined requests queue up at the server

    def __call__(self, environ, start_response):
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        headers = {k[5:].replace("_", "-").title(): v for k, v in environ.items() if k.startswith("HTTP_")}
        if environ.get("CONTENT_TYPE"):
            headers["Content-Type"] = environ["CONTENT_TYPE"]
        path = environ["PATH_INFO"] + (f"?{environ['QUERY_STRING']}" if environ.get("QUERY_STRING") else "")
        with self.lock:
            reply = None
            is_push = environ["PATH_INFO"].endswith("/sync/push")
            if is_push:
                self.pushes += 1
                n = self.pushes
                time.sleep(self.delay)
                reply = self.before_push(n) if self.before_push else None
            if reply is None:
                try:
                    reply = self.hub.send(environ["REQUEST_METHOD"], path, headers=headers, body=body, timeout=(1, 1))
                except HubUnreachable:
                    reply = Reply(503, {"Content-Type": "application/json"}, b"{}")
                if is_push and self.on_push:
                    reply = self.on_push(n, reply) or reply
        out = [(k, v) for k, v in dict(reply.headers).items() if k.lower() not in ("content-length", "connection")]
        start_response(f"{reply.status} X", out + [("Content-Length", str(len(reply.body)))])
        return [reply.body]


class Proxy:
    """TCP (or TLS-terminating) proxy on 127.0.0.1 in its own thread: counts connections, cuts them all."""

    def __init__(self, target_port: int, tls: ssl.SSLContext | None = None):
        self.target_port, self.tls = target_port, tls
        self.port = 0
        self.connections = 0
        self.cuts = 0
        self.first_answer_after: int | None = None  # requests seen going up before the first answer came down
        self.requests_up = 0
        self._writers: set[asyncio.StreamWriter] = set()
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None

    def __enter__(self) -> Proxy:
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def cut_all(self) -> None:
        """Abort every connection now (from any thread); what is in flight is lost."""
        done = threading.Event()

        def cut():
            self.cuts += 1
            for w in list(self._writers):
                w.transport.abort()
            done.set()

        self._loop.call_soon_threadsafe(cut)
        assert done.wait(5)

    async def _main(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=self.tls)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        await self._stop.wait()
        for w in list(self._writers):
            w.transport.abort()
        server.close()

    async def _handle(self, reader, writer) -> None:
        self.connections += 1
        self._writers.add(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self._writers.add(up_writer)
        try:
            await asyncio.gather(self._pipe(reader, up_writer, True), self._pipe(up_reader, writer, False),
                                 return_exceptions=True)
        except asyncio.CancelledError:
            pass
        finally:
            for w in (writer, up_writer):
                self._writers.discard(w)
                w.transport.abort()

    async def _pipe(self, reader, writer, up: bool) -> None:
        try:
            while data := await reader.read(65536):
                if up:
                    self.requests_up += data.count(b" HTTP/1.1\r\n")
                elif self.first_answer_after is None:
                    self.first_answer_after = self.requests_up
                writer.write(data)
                await writer.drain()
        except (OSError, ConnectionError):
            pass
        finally:
            if not writer.is_closing():
                writer.transport.abort()


@pytest.fixture
def fake():
    return FakeHub()


@pytest.fixture
def served(fake):
    app = WsgiHub(fake)
    server = create_server(app, host="127.0.0.1", port=0, threads=2)
    stopping = threading.Event()

    def run():
        try:
            server.run()
        except (OSError, ValueError):  # its sockets closed under it at teardown
            if not stopping.is_set():
                raise

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    yield app, server.effective_port
    stopping.set()
    server.close()
    for channel in list(server._map.values()):
        channel.close()
    server.task_dispatcher.shutdown(timeout=5)
    thread.join(5)


@pytest.fixture
def proxy(served):
    with Proxy(served[1]) as p:
        yield p


def offline_changes(fake: FakeHub, count: int = N):
    """A node enrolled at the fake hub, and `count` of its changes the hub does not hold yet."""
    other = fake.add_node(UNIT_CODE)
    return other, [other.offline("dossier", f"D{i:04d}", "create", {"fields": {"n": i}}) for i in range(count)]


def pusher(url: str, other, *, session: requests.Session | None = None, retries: int = 3):
    sleeps: list[float] = []
    client = HubClient(RequestsTransport(url, session), node_id=other.node_id, key=other.key, retries=retries,
                       sleep=sleeps.append, timeout=(5.0, 10.0))
    return client, sleeps


def push_all(client: HubClient, changes: list[dict], after: int = 0, limit: int = 10) -> list[int]:
    """Every change after seq `after`, pipelined; the acknowledged seq after each answer."""
    acked: list[int] = []
    for batch, answer in client.push_stream(lambda seq, n: changes[seq:seq + n], after, limit=limit):
        assert answer["acked_seq"] >= batch[-1]["seq"]
        acked.append(batch[-1]["seq"])
    return acked


def held_seqs(fake: FakeHub, node_id: str) -> list[int]:
    return [c["seq"] for c in fake.held_of(node_id)]


# ---------------------------------------------------------------- the client's pipeline

def test_pushes_are_pipelined_on_one_connection_in_order(fake, served, proxy):
    app, _ = served
    app.delay = 0.05  # each push takes a while: the next one is already written meanwhile
    other, changes = offline_changes(fake)
    client, sleeps = pusher(f"http://127.0.0.1:{proxy.port}", other)
    acked = push_all(client, changes)
    assert acked == [*range(10, N, 10), N]
    assert held_seqs(fake, other.node_id) == list(range(1, N + 1))
    assert [p[0][1] for p in fake.pushes] == list(range(1, N + 1, 10)), "each batch once, in order"
    assert proxy.connections == 1 and sleeps == []
    # GET /time, then two pushes written before the first push's answer came back
    assert proxy.first_answer_after == 1
    assert proxy.requests_up == 1 + 10


def test_a_cut_resends_only_the_batches_not_acknowledged(fake, served, proxy):
    app, _ = served
    other, changes = offline_changes(fake)
    app.on_push = lambda n, reply: proxy.cut_all() if n == 4 else None  # batch 4 applied, its answer lost
    client, sleeps = pusher(f"http://127.0.0.1:{proxy.port}", other)
    acked = push_all(client, changes)
    assert acked == [*range(10, N, 10), N], "every acknowledged seq exact, each once"
    assert held_seqs(fake, other.node_id) == list(range(1, N + 1)), "nothing lost, nothing stored twice"
    firsts = [p[0][1] for p in fake.pushes]
    resent = sorted(s for s in set(firsts) if firsts.count(s) > 1)
    # In flight at the cut: batch 4 (seq 31) and one neighbour: batch 5 when batch 3's answer was already
    # read, batch 3 when its answer was still on the way (a loaded machine); never more than the window.
    assert 31 in resent and set(resent) <= {21, 31, 41} and len(resent) <= client_module.PIPELINE_WINDOW, \
        f"only the batches in flight at the cut went again: {firsts}"
    assert proxy.cuts == 1 and proxy.connections == 2
    assert len(sleeps) == 1 and sleeps[0] <= client_module.CUT_JITTER, "a cut: reconnect at once"


def test_a_link_that_stays_down_backs_off_and_gives_up(fake, served, proxy):
    app, _ = served
    other, changes = offline_changes(fake, 30)
    app.on_push = lambda n, reply: proxy.cut_all()  # every answer lost
    client, sleeps = pusher(f"http://127.0.0.1:{proxy.port}", other, retries=3)
    client.rand = lambda: 1.0
    with pytest.raises(HubUnreachable):
        push_all(client, changes)
    assert sleeps == [client_module.CUT_JITTER, 1.0, 2.0], "first at once, then the usual backoff"
    window = client_module.PIPELINE_WINDOW
    assert held_seqs(fake, other.node_id) == list(range(1, 10 * window + 1)), \
        "only the batches of the window went out, and each is held once however often it was resent"


def test_a_refused_batch_stops_the_pipeline_with_its_error(fake, served, proxy):
    app, _ = served
    app.delay = 0.05
    other, changes = offline_changes(fake)
    refusal = Reply(400, {"Content-Type": "application/json"},
                    orjson.dumps({"error": {"code": "bad_body", "message": "batch 3 is refused"}}))
    app.before_push = lambda n: refusal if n == 3 else None
    client, _ = pusher(f"http://127.0.0.1:{proxy.port}", other)
    acked: list[int] = []
    with pytest.raises(HubRefused) as refused:
        for batch, _answer in client.push_stream(lambda seq, n: changes[seq:seq + n], 0, limit=10):
            acked.append(batch[-1]["seq"])
    assert refused.value.code == "bad_body" and refused.value.status == 400
    assert acked == [10, 20], "the batches before the refused one are acknowledged, none after it"
    assert held_seqs(fake, other.node_id) == list(range(1, 21)), "batch 4 (sent behind it) was not applied"


def test_429_with_retry_after_is_obeyed_and_the_batch_sent_again(fake, served, proxy):
    app, _ = served
    other, changes = offline_changes(fake)
    busy = Reply(429, {"Content-Type": "application/json", "Retry-After": "7"},
                 orjson.dumps({"error": {"code": "slow_down", "message": "busy"}}))
    app.before_push = lambda n: busy if n in (5, 6) else None
    client, sleeps = pusher(f"http://127.0.0.1:{proxy.port}", other)
    acked = push_all(client, changes)
    assert acked == [*range(10, N, 10), N]
    assert 7.0 in sleeps and len(sleeps) <= 2
    assert held_seqs(fake, other.node_id) == list(range(1, N + 1))


def test_resuming_after_an_acknowledged_seq_sends_only_the_rest(fake, served, proxy):
    other, changes = offline_changes(fake)
    client, _ = pusher(f"http://127.0.0.1:{proxy.port}", other)
    assert push_all(client, changes[:40]) == [10, 20, 30, 40]
    assert push_all(client, changes, after=40) == [*range(50, N, 10), N]
    assert [p[0][1] for p in fake.pushes] == list(range(1, N + 1, 10))


# ---------------------------------------------------------------- https

def self_signed(folder: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "motcua test hub")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "hub.crt", folder / "hub.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_https_pipelines_with_a_verified_certificate_and_refuses_an_unknown_one(fake, served, tmp_path, monkeypatch):
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):  # requests lets these override Session.verify
        monkeypatch.delenv(name, raising=False)
    cert, key = self_signed(tmp_path)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    with Proxy(served[1], tls=tls) as proxy:
        url = f"https://127.0.0.1:{proxy.port}"
        other, changes = offline_changes(fake)
        stranger, _ = pusher(url, other, retries=0)  # the system's CAs only: the self-signed hub is refused
        stranger.offset_ms = 0  # no GET /time first: the pipe's own connection meets the certificate
        with pytest.raises(HubUnreachable, match="SSL"):
            push_all(stranger, changes)
        assert fake.calls == [], "refused in the TLS handshake: nothing reached the hub"
        session = requests.Session()
        session.verify = str(cert)
        client, _ = pusher(url, other, session=session)
        served[0].on_push = lambda n, reply: proxy.cut_all() if n == 3 else None
        assert push_all(client, changes) == [*range(10, N, 10), N]
        assert held_seqs(fake, other.node_id) == list(range(1, N + 1))


# ---------------------------------------------------------------- the session: stage_push over HTTP

def test_a_sync_over_http_pipelines_its_pushes_and_pulls_on_the_same_connection(node, fake, served, proxy):
    app, _ = served
    syncer.enroll(node, "http://hub.test:9000", fake.token(UNIT_CODE), transport=fake)
    top = Change.select().where(Change.node_id == node.node_id).count()
    assert top > 25
    app.on_push = lambda n, reply: proxy.cut_all() if n == 2 else None
    transport = RequestsTransport(f"http://127.0.0.1:{proxy.port}")
    report = syncer.sync_once(node, transport=transport, push_batch=5, pull_limit=7)
    assert report.ok, report.error
    assert report.pushed == top and report.digest_ok
    assert held_seqs(fake, node.node_id) == list(range(1, top + 1))
    from node.models import NodeSetting

    assert NodeSetting.get(NodeSetting.key == "sync.acked_seq").value == str(top)
    assert proxy.connections == 2, "one connection before the cut and one after, shared by push and pull"
    # a second sync has nothing to push and leaves everything as it was
    before = len(fake.pushes)
    again = syncer.sync_once(node, transport=transport, push_batch=5, pull_limit=7)
    assert again.ok and again.pushed == 0 and len(fake.pushes) == before
