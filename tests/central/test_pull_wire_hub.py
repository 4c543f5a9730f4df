# ruff: noqa: F811  (pytest fixtures imported from hubtest are parameters here)
"""The hub's /sync/pull in protocol 2 (node/sync/pullwire.py): a v1 node still gets v1 pages; "compact"
gives runs with one signature each; "stream" a framed answer of many pages, each with its cursor, of which
only the request's own cursor is acknowledged. Both backends (hubtest.BACKENDS)."""

from __future__ import annotations

import io

from hubtest import (  # noqa: F401  (fixtures are imported by name; see hubtest.py)
    NodeSession, api, error_of, hub, hub_app, hub_db_url, hub_dir, prepared, session, unpack,
)

from central.models import NodeStatus
from node.sync import protocol, pullwire


def calendar(hub, count: int) -> list[dict]:
    return [hub.storage.write_change("calendar_day", f"2027-{1 + i // 28:02d}-{1 + i % 28:02d}", "put",
                                     {"fields": {"kind": "day_off"}}) for i in range(count)]


def pull(session: NodeSession, **body):
    raw = protocol.encode_body({"node_id": session.node_id, **body})
    return session.call("POST", "/api/v1/sync/pull", raw)


def frames_of(resp) -> list[dict]:
    assert resp.status_code == 200 and resp.mimetype == pullwire.FRAMES_TYPE, (resp.status_code, resp.data[:300])
    data = io.BytesIO(resp.get_data())
    return list(pullwire.read_frames(data.read))


def test_a_v1_node_gets_v1_pages(session, hub):
    written = calendar(hub, 5)
    page = unpack(pull(session, cursor=None, limit=1000))
    assert "runs" not in page and {c["hash"]: c["sig"] for c in page["changes"]}.items() >= {
        c["hash"]: c["sig"] for c in written}.items()


def test_a_compact_page_holds_the_same_changes_with_one_signature_per_run(session, hub):
    calendar(hub, 5)
    v1 = unpack(pull(session, cursor=None, limit=1000))
    raw = unpack(pull(session, cursor=None, limit=1000, compact=True))
    assert "changes" not in raw and raw["cursor"] == v1["cursor"] and raw["digest"] == v1["digest"]
    page = pullwire.read_page(raw)
    assert page["sign_check"] == "runs"
    assert sorted(c["hash"] for c in page["changes"]) == sorted(c["hash"] for c in v1["changes"])
    assert sum(1 for c in page["changes"] if c["sig"]) == len(raw["runs"])
    assert len(pull(session, cursor=None, limit=1000, compact=True).data) < len(
        pull(session, cursor=None, limit=1000).data)


def test_a_framed_pull_streams_pages_of_limit_with_their_cursors(session, hub):
    calendar(hub, 23)
    everything = [c["hash"] for c in unpack(pull(session, cursor=None, limit=1000))["changes"]]
    frames = frames_of(pull(session, cursor=None, limit=5, compact=True, stream=1000))
    assert all(len(f["changes"]) == 5 for f in frames[:-1]) and len(frames) == -(-len(everything) // 5)
    assert [f["more"] for f in frames] == [True] * (len(frames) - 1) + [False]
    assert frames[-1]["digest"] == unpack(pull(session, cursor=None, limit=1000))["digest"]
    assert sorted(c["hash"] for f in frames for c in f["changes"]) == sorted(everything)
    after = unpack(pull(session, cursor=frames[1]["cursor"], limit=1000))  # a frame's cursor is a cursor
    assert sorted(c["hash"] for f in frames[2:] for c in f["changes"]) == sorted(c["hash"] for c in after["changes"])


def test_a_framed_pull_stops_at_its_limit_and_acknowledges_only_its_own_cursor(session, hub):
    calendar(hub, 23)
    first = frames_of(pull(session, cursor=None, limit=5, compact=True, stream=10))
    assert len(first) == 2 and first[-1]["more"] is True
    frames_of(pull(session, cursor=first[-1]["cursor"], limit=5, compact=True, stream=10))
    held = NodeStatus.get(NodeStatus.node_id == session.node_id).pulled_to
    assert str(held) == first[-1]["cursor"].split(".")[0], "the frames after the cursor are not acknowledged"


def test_stream_without_compact_or_not_a_count_is_bad_body(session, hub):
    for body in ({"stream": 10}, {"compact": True, "stream": 0}, {"compact": True, "stream": "10"}):
        resp = pull(session, cursor=None, **body)
        assert resp.status_code == 400 and error_of(resp)["code"] == "bad_body", body
