# ruff: noqa: F811  (pytest fixtures imported from tests/sync/test_relay_views.py are parameters here)
"""Protocol 2 pulls (node/sync/pullwire.py): compact pages whose runs carry one signature each, checked by
ingest's "runs" check before anything is applied, and framed answers applied frame by frame, so that a cut
link loses at most the frame under way. Then the hub's endpoint (v1 and v2 shapes) and the LAN relay."""

from __future__ import annotations

import io
from typing import Any

import orjson
import pytest

from central.storage.testing import NodeWriter
from node import store, syncer
from node.sync import ingest, protocol, pullwire
from node.sync.client import HubClient, HubUnreachable, Reply, StreamReply, Transport
from node.sync.errors import ChainBroken, HashMismatch, SignatureInvalid
from node.sync.log import Change
from node.sync.session import SyncSession
from node.sync.state import CalendarDay
from tests.conftest import UNIT_CODE
from tests.sync.test_relay_views import commune, hub, laptop  # noqa: F401  (fixtures, by name)
from tests.sync.test_relay_views import unpack as relay_unpack


def calendar(writer: NodeWriter, count: int, start: int = 0) -> list[dict[str, Any]]:
    return [writer.change("calendar_day", f"2027-{1 + (start + i) // 28:02d}-{1 + (start + i) % 28:02d}", "put",
                          {"fields": {"kind": "day_off", "note": f"ngày nghỉ {start + i}"}}) for i in range(count)]


def wire(changes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What a node makes of a compact page of these changes: the page through JSON, decoded."""
    obj = orjson.loads(orjson.dumps(pullwire.page(changes, "c", False)))
    return pullwire.read_page(obj)["changes"]


def pulled(node, changes, writer, sign_check="runs"):
    with store.transaction(node):
        return ingest.ingest(changes, key_for=lambda _: (writer.key.public_b64, "active"), apply=store.apply_change,
                             sign_check=sign_check, gaps_allowed=True)


def held(writer) -> list[tuple[int, str, str]]:
    query = Change.select().where(Change.node_id == writer.node_id).order_by(Change.seq)
    return [(r.seq, r.hash, r.sig) for r in query]


@pytest.fixture
def writer():
    return NodeWriter(UNIT_CODE)


# ---------------------------------------------------------------- the compact page


def test_a_compact_page_rebuilds_every_change_and_carries_one_signature_per_run(node, writer):
    changes = calendar(writer, 6)
    decoded = wire(changes)
    assert [(c["seq"], c["prev"], c["hash"]) for c in decoded] == [(c["seq"], c["prev"], c["hash"]) for c in changes]
    assert [c["sig"] for c in decoded] == [""] * 5 + [changes[-1]["sig"]]
    page = orjson.dumps(pullwire.page(changes, "c", False))
    assert b'"hash"' not in page and changes[2]["prev"].encode() not in page and changes[2]["sig"].encode() not in page
    assert pulled(node, decoded, writer).stored == 6
    assert held(writer) == [(c["seq"], c["hash"], "" if i < 5 else c["sig"]) for i, c in enumerate(changes)]
    assert CalendarDay.select().count() >= 6


@pytest.mark.parametrize("where", ["payload", "hlc", "first_prev", "sig", "seq"])
def test_a_bit_flip_anywhere_in_a_run_refuses_the_page_and_applies_nothing(node, writer, where):
    changes = calendar(writer, 5)
    obj = orjson.loads(orjson.dumps(pullwire.page(changes, "c", False)))
    run = obj["runs"][0]
    if where == "payload":
        run[4][2][4]["fields"]["note"] = "ngày nghỉ 3"  # one character of the middle change
    elif where == "hlc":
        run[4][1][0] = run[4][1][0][:-1] + ("1" if run[4][1][0][-1] != "1" else "2")
    elif where == "first_prev":
        run[2] = "1" + run[2][1:]
    elif where == "sig":
        run[3] = ("A" if run[3][0] != "A" else "B") + run[3][1:]
    else:
        run[1] += 1
    before = Change.select().count()
    with pytest.raises((SignatureInvalid, ChainBroken)):
        pulled(node, pullwire.read_page(obj)["changes"], writer)
    assert Change.select().count() == before and held(writer) == []


def test_a_forged_run_tail_is_refused(node, writer):
    changes = calendar(writer, 4)
    forger = NodeWriter(UNIT_CODE, node_id=writer.node_id)  # the same node id, another key
    forger.seq, forger.prev = 3, changes[2]["hash"]
    forged = changes[:3] + calendar(forger, 1, start=50)
    with pytest.raises(SignatureInvalid):
        pulled(node, wire(forged), writer)
    # the genuine signature of the run's end moved onto a forged content does not help either
    tampered = dict(forged[-1], sig=changes[-1]["sig"])
    with pytest.raises(SignatureInvalid):
        pulled(node, wire(changes[:3]) + [tampered], writer)
    assert held(writer) == []


def test_a_dropped_middle_change_is_refused(node, writer):
    changes = calendar(writer, 5)
    obj = orjson.loads(orjson.dumps(pullwire.page(changes, "c", False)))
    del obj["runs"][0][4][2]  # the rows shift: every later hash changes, the end's signature no longer verifies
    with pytest.raises(SignatureInvalid):
        pulled(node, pullwire.read_page(obj)["changes"], writer)
    decoded = wire(changes)
    del decoded[2]  # decoded, then dropped: the first part ends at a change that carries no signature
    with pytest.raises(SignatureInvalid, match="missing signature"):
        pulled(node, decoded, writer)
    assert held(writer) == []


def test_a_reordered_run_is_refused(node, writer):
    changes = calendar(writer, 5)
    obj = orjson.loads(orjson.dumps(pullwire.page(changes, "c", False)))
    rows = obj["runs"][0][4]
    rows[1], rows[2] = rows[2], rows[1]
    with pytest.raises(SignatureInvalid):
        pulled(node, pullwire.read_page(obj)["changes"], writer)
    decoded = wire(changes)
    decoded[1], decoded[2] = dict(decoded[2], seq=2), dict(decoded[1], seq=3)
    with pytest.raises((HashMismatch, ChainBroken, SignatureInvalid)):
        pulled(node, decoded, writer)
    assert held(writer) == []


def test_a_gapped_subset_carries_each_changes_own_signature(node, writer):
    changes = calendar(writer, 7)
    subset = [changes[0], changes[2], changes[3], changes[6]]  # seqs 1, 3-4, 7: three runs
    obj = pullwire.page(subset, "c", False)
    assert [(r[1], len(r[4]), r[3]) for r in obj["runs"]] == [(1, 1, changes[0]["sig"]), (3, 2, changes[3]["sig"]),
                                                              (7, 1, changes[6]["sig"])]
    assert pulled(node, wire(subset), writer).stored == 4
    assert [s for s, _, _ in held(writer)] == [1, 3, 4, 7]
    assert pulled(node, wire(changes[4:6]), writer).stored == 2, "the gap filled later, linked at both ends"


def test_a_single_without_its_signature_is_refused(node, writer):
    changes = calendar(writer, 4)
    lone = dict(changes[3], sig="")
    with pytest.raises(SignatureInvalid):
        pulled(node, [changes[0], lone], writer)
    assert held(writer) == []


def test_a_run_may_end_at_a_change_already_held_and_must_link_to_the_one_held_before(node, writer):
    changes = calendar(writer, 8)
    assert pulled(node, [changes[0], changes[5]], writer, sign_check="each").stored == 2
    page = wire(changes[1:6])  # 2..6, only 6 signed; 6 is held already
    page[-1] = dict(page[-1], sig="")  # as a relay sends a run it completes with a held change
    assert pulled(node, page, writer).stored == 4
    assert [sig == "" for _, _, sig in held(writer)] == [False, True, True, True, True, False]
    other = NodeWriter(UNIT_CODE, node_id=writer.node_id, key=writer.key)  # the same key signs another history
    other.seq, other.prev = 6, "cd" * 32
    with pytest.raises(ChainBroken):
        pulled(node, wire(calendar(other, 2)), writer)  # seq 7's prev does not name the 6 held here


def test_v1_pages_still_check_each_signature_and_refuse_a_change_without_one(node, writer):
    changes = calendar(writer, 3)
    page = pullwire.read_page({"changes": changes, "cursor": "c", "more": False})
    assert page["sign_check"] == "each"
    with pytest.raises(SignatureInvalid, match="carries no signature"):
        pulled(node, [changes[0], dict(changes[1], sig=""), changes[2]], writer, sign_check="each")
    with pytest.raises(SignatureInvalid, match="carries no signature"):
        pulled(node, [changes[0], dict(changes[1], sig=""), changes[2]], writer, sign_check="last")
    assert pulled(node, page["changes"], writer, sign_check="each").stored == 3


@pytest.mark.parametrize("bad", [
    {"runs": [["N", 1, "00" * 32, "sig", [["h", "e", "i", "op", {}, 1]]]]},
    {"runs": [["N", 0, "00" * 32, "sig", [["h", "e", "i", "op", {}, ""]]]]},
    {"runs": [["N", 1, "zz" * 32, "sig", [["h", "e", "i", "op", {}, ""]]]]},
    {"runs": [["N", 1, "00" * 32, "", [["h", "e", "i", "op", {}, ""]]]]},
    {"runs": [["N", 1, "00" * 32, "sig", []]]},
    {"runs": [["N", 1, "00" * 32, "sig", [["h", "e", "i", "op", {"x": 1.5}, ""]]]]},
    {"runs": "nope"},
])
def test_a_page_out_of_shape_is_bad_body(bad):
    with pytest.raises(protocol.BadBody):
        pullwire.read_page(dict(bad, cursor="c", more=False))


# ---------------------------------------------------------------- frames


def framed(pages: list[dict[str, Any]]) -> bytes:
    writer = pullwire.FrameWriter()
    return b"".join(writer.frame(p) for p in pages) + writer.end()


def reader_of(data: bytes, step: int = 7):
    stream = io.BytesIO(data)
    return lambda n: stream.read(min(n, step))


def test_frames_decode_one_by_one_and_a_truncated_stream_keeps_what_came_whole(writer):
    changes = calendar(writer, 9)
    pages = [pullwire.page(changes[i:i + 3], f"c{i}", i < 6) for i in range(0, 9, 3)]
    data = framed(pages)
    got = list(pullwire.read_frames(reader_of(data)))
    assert [p["cursor"] for p in got] == ["c0", "c3", "c6"] and got[-1]["more"] is False
    assert [c["hash"] for p in got for c in p["changes"]] == [c["hash"] for c in changes]
    frames = pullwire.FrameWriter()
    two = len(frames.frame(pages[0]) + frames.frame(pages[1]))  # the bytes of the first two frames
    # between frames (no end mark), inside one, inside the end mark: every frame that came whole is given
    for cut, whole in ((two, ["c0", "c3"]), (two + 5, ["c0", "c3"]), (len(data) - 3, ["c0", "c3", "c6"])):
        seen = []
        with pytest.raises(pullwire.Truncated):
            for page in pullwire.read_frames(reader_of(data[:cut])):
                seen.append(page["cursor"])
        assert seen == whole


def test_a_damaged_frame_stream_is_bad_body():
    with pytest.raises(protocol.BadBody):
        list(pullwire.read_frames(reader_of(b"\x28\xb5\x2f\xfd" + b"garbage" * 10)))


class FramedHub(Transport):
    """A hub in memory that answers framed pulls of its own hub-signed changes, and cuts the answers of the
    requests named in `cuts` (request number -> bytes sent before the cut)."""

    def __init__(self, writer: NodeWriter, changes: list[dict[str, Any]], cuts: dict[int, int] | None = None):
        self.writer, self.changes, self.cuts = writer, changes, cuts or {}
        self.requests: list[dict[str, Any]] = []

    def send(self, method, path, *, headers, body, timeout):
        assert path.endswith("/time")
        return Reply(200, {"Content-Type": "application/json"}, orjson.dumps(
            {"hub_time_ms": 0, "hub_node_id": self.writer.node_id, "hub_public_key": self.writer.key.public_b64}))

    def stream(self, method, path, *, headers, body, timeout):
        req = protocol.decode_body(body)
        self.requests.append(req)
        position = int(req["cursor"] or 0)
        out, sent = pullwire.FrameWriter(), 0
        data = b""
        while True:
            part = self.changes[position:position + min(req["limit"], req["stream"] - sent)]
            position, sent = position + len(part), sent + len(part)
            more = position < len(self.changes)
            data += out.frame(pullwire.page(part, str(position), more))
            if not more or sent >= req["stream"]:
                data += out.end()
                break
        cut = self.cuts.get(len(self.requests))
        stream = io.BytesIO(data if cut is None else data[:cut])

        def read(n: int) -> bytes:
            chunk = stream.read(min(n, 100))
            if not chunk and cut is not None:
                raise HubUnreachable("cut")
            return chunk

        return StreamReply(200, {"Content-Type": pullwire.FRAMES_TYPE}, read)


def session_for(node, hub: FramedHub, pull_limit: int = 10, stream: int = 10_000) -> SyncSession:
    client = HubClient(hub, node_id=node.node_id, key=node.key, sleep=lambda s: None, retries=3)
    session = SyncSession(client, syncer.NodeReplica(node), hub_node_id=hub.writer.node_id,
                          hub_public_key=hub.writer.key.public_b64, pull_limit=pull_limit)
    plain = client.pull_pages
    client.pull_pages = lambda cursor, **kw: plain(cursor, **dict(kw, stream=stream))  # type: ignore[method-assign]
    return session


def test_a_cut_mid_stream_resumes_from_the_last_committed_frame(node, writer):
    changes = calendar(writer, 95)
    applied: list[int] = []
    hub = FramedHub(writer, changes, cuts={1: 0})
    whole = framed([pullwire.page(changes[i:i + 10], str(i + 10), True) for i in range(0, 40, 10)])
    hub.cuts = {1: len(whole) - 20}  # the first answer is cut inside its fourth frame
    session = session_for(node, hub)
    plain_apply = session.replica.apply
    session.replica.apply = lambda c: applied.append(c["seq"]) or plain_apply(c)  # type: ignore[method-assign]
    session.client.hub_time()
    session.stage_pull()
    assert [r["cursor"] for r in hub.requests] == [None, "30"], "resumed after the third frame, the last committed"
    assert applied == list(range(1, 96)), "nothing lost, nothing applied twice"
    assert [s for s, _, _ in held(writer)] == list(range(1, 96))
    assert session.replica.setting("sync.cursor") == "95" and session.report.pulled == 95


def test_one_request_carries_many_frames_and_a_stream_at_its_limit_is_continued(node, writer):
    changes = calendar(writer, 45)
    hub = FramedHub(writer, changes)
    session = session_for(node, hub, pull_limit=10, stream=20)
    session.client.hub_time()
    session.stage_pull()
    assert [r["cursor"] for r in hub.requests] == [None, "20", "40"]
    assert all(r["compact"] is True and r["limit"] == 10 for r in hub.requests)
    assert len(held(writer)) == 45


def test_a_cut_every_time_gives_up_after_the_retries(node, writer):
    hub = FramedHub(writer, calendar(writer, 30), cuts={n: 0 for n in range(1, 10)})
    session = session_for(node, hub)
    session.client.hub_time()
    with pytest.raises(HubUnreachable):
        session.stage_pull()
    assert held(writer) == [] and len(hub.requests) == 4


# ---------------------------------------------------------------- the LAN relay serving what it pulled compactly


def relay_pull(laptop, cursor=None, limit=None, **extra):
    return relay_unpack(laptop.call("/sync/pull", {"node_id": laptop.writer.node_id, "cursor": cursor,
                                                   "limit": limit, **extra}))


@pytest.fixture
def compactly_pulled(commune, hub):
    """The commune node holds 30 hub changes pulled in compact pages of 10: sig "" but at each page's end."""
    changes = calendar(hub.writer, 30)
    for i in range(0, 30, 10):
        assert pulled(commune, wire(changes[i:i + 10]), hub.writer).stored == 10
    return changes


def test_the_relay_gives_a_v1_laptop_only_changes_that_carry_their_own_signature(laptop, compactly_pulled):
    from node.sync import keys

    served = relay_pull(laptop, limit=1000)["changes"]
    mine = [c for c in served if c["node_id"] == compactly_pulled[0]["node_id"]]
    first = compactly_pulled[0]["seq"]  # the hub's registry changes came before, each with its signature
    assert [c["seq"] for c in mine] == list(range(1, first)) + [first + 9, first + 19, first + 29]
    for change in served:
        keys.verify(hubkey(laptop, change), bytes.fromhex(change["hash"]), change["sig"])


def hubkey(laptop, change):
    from node.sync.state import NodeRecord

    return NodeRecord.get(NodeRecord.node_id == change["node_id"]).public_key


@pytest.mark.parametrize("limit", [3, 7, 25, 1000])
def test_the_relay_ends_every_compact_run_at_a_signed_change(laptop, compactly_pulled, limit):
    from node.sync import keys

    cursor, seen, pages = None, {}, 0
    while pages < 100:
        raw = relay_pull(laptop, cursor, limit, compact=True)
        page, pages = pullwire.read_page(raw), pages + 1
        for run in pullwire.runs_of(page["changes"]):
            end = run[-1]
            keys.verify(hubkey(laptop, end), bytes.fromhex(end["hash"]), end["sig"])  # what the laptop checks
        seen.update({(c["node_id"], c["seq"]): c["hash"] for c in page["changes"]})
        cursor = page["cursor"]
        if not page["more"]:
            break
    held = {(r.node_id, r.seq): r.hash for r in Change.select().where(Change.node_id != laptop.writer.node_id)}
    assert seen == held, "every change the commune holds, each as it was made"
