"""One sync with the hub as named, ordered stages with saved progress (after Morango's transfer stages).

    time -> push -> files_up -> pull -> files_down -> verify_digest

- time: /sync/status (what the hub holds of this node: its acknowledged seq, which also resumes a node whose
  local setting was lost, and a fork check: a node restored from an old backup is stopped before it pushes
  a reused seq); its answer also names the hub (checked against the pinned key every sync) and gives the
  hub's clock. GET /time only on the first sync (no saved sync.clock_skew_ms), when the hub refuses the
  request's time (the clock is learned again), or with a hub too old to name itself in /sync/status.
- push: own changes after the acknowledged seq, in batches of PUSH_BATCH read by bounded queries; the new
  acknowledged seq is committed after each batch. Then, on a commune node that serves field laptops on
  its LAN (node/relay.py), the laptops' changes it took and the hub lacks: the hub says what it holds of each
  (/sync/status "origins"), and each laptop's run after that is pushed in batches with its original
  signatures. A refusal of one laptop's changes (revoked, quarantined...) is kept in relay.errors and does
  not fail the sync.
- files_up: own attachments whose change the hub acknowledged and whose file it lacks, in 256 KiB chunks,
  resumed from the size the hub reports (HEAD).
- pull: pages after the saved cursor until `more` is false; each page is verified and applied in ONE
  transaction together with the new cursor, so the cursor moves only when the merge committed. Protocol 2:
  the hub streams the pages as frames of one answer (node/sync/pullwire.py), each committed as it arrives,
  so a cut loses at most the frame under way.
- files_down: files of received attachments that are not here yet; a missing file never blocks a dossier
  (it stays "waiting" and is fetched on a later sync).
- verify_digest: the digest of every change held here (less own changes not yet acknowledged, and less the
  changes of `sync.lan_origins` (nodes whose changes came over the LAN) above what the hub holds of each)
  against the hub's digest of this node's scope; on a mismatch the cursor is reset and the whole scope pulled again
  (ingest skips what is held), then compared again: "repaired", or `DigestMismatch`.

Each stage commits what it finished, so an interrupted sync loses at most the batch in flight and the next
run completes from the saved progress. Settings whose loss only repeats work (stage markers, scan marks, the
clock offset, the hub's digest, the last result) are committed without waiting for the disk (`unsynced`);
a pushed batch's acknowledged seq and a pulled page's cursor are durable. Settings (through
`Replica.setting`/`Replica.save`):

    sync.stage          the stage under way ('' once a run ended)     sync.acked_seq   hub-acknowledged seq
    sync.cursor         hub cursor after the last committed page      sync.repull      '1' during a re-pull
    sync.files_up_mark  Change.id of the last own attachment handled  sync.hub_digest  the hub's digest (JSON)
    sync.files_seen     Change.id of the last received attachment checked
    sync.files_pending  JSON list of sha256 of received files not here yet
    sync.last_attempt / sync.last_success (local time text), sync.last_error (JSON {code, message, stage, at}),
    sync.clock_skew_ms (ours minus the hub's), sync.files_waiting, sync.last_result ('ok' or the error's code)
    sync.last_path      'hub' or 'lan' (node/relay.py's LanSession)
    sync.lan_origins    JSON list of node ids whose changes came over the LAN and the hub may lack
    relay.errors        JSON {laptop id: {code, message, at}}: the hub's last refusal of a relayed run

No Flask here: the local side is a `Replica`, the hub a `HubClient` (both passed in).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import peewee as pw

from . import encoding, hlc, ingest, keys, log, merge, protocol
from .client import HubClient, HubRefused, NodeForked
from .errors import SyncError
from .log import Change
from .state import NodeRecord

STAGES = ("time", "push", "files_up", "pull", "files_down", "verify_digest")
LAN_ORIGINS = "sync.lan_origins"
CHUNK = 256 * 1024
SCAN_BATCH = 500
logger = logging.getLogger("motcua.sync")


class DigestMismatch(SyncError):
    """The state digests of node and hub still differ after a full re-pull of the scope."""

    http_status = 409
    code = "digest_mismatch"


class Replica:
    """What a sync session needs from the local replica; `node.syncer.NodeReplica` is the node's.

    Settings are small text values; `save` commits them (joining a transaction already open).
    """

    node_id: str
    key: keys.NodeKey
    clock: hlc.Clock

    def transaction(self) -> AbstractContextManager[None]:
        raise NotImplementedError

    def apply(self, change: dict[str, Any]) -> bool:
        """Apply a verified change received from elsewhere to the state."""
        raise NotImplementedError

    def setting(self, name: str, default: str = "") -> str:
        raise NotImplementedError

    def save(self, values: dict[str, Any]) -> None:
        raise NotImplementedError

    def file_path(self, sha256: str) -> Path:
        """Where the attachment file with this hash lives (whether or not it is there)."""
        raise NotImplementedError

    def now_text(self) -> str:
        """Local time as `YYYY-MM-DD HH:MM:SS`."""
        raise NotImplementedError


@dataclass
class SyncReport:
    """What one sync moved and how it ended (`error` is None when it completed)."""

    pushed: int = 0
    pulled: int = 0
    files_up: int = 0
    files_down: int = 0
    files_waiting: int = 0
    changes_waiting: int = 0
    digest_ok: bool | None = None
    repaired: bool = False
    clock_skew_ms: int | None = None
    path: str = "hub"  # "hub", or "lan": synced with the commune node's relay (node/relay.py)
    peer: str = ""  # the URL synced with, when not the hub
    relayed: int = 0  # field laptops' changes carried to the hub (a commune node)
    relay_errors: dict[str, Any] = field(default_factory=dict)  # laptop id -> the hub's refusal of its run
    held_back: int = 0  # own changes a LAN sync could not send (they concern another commune)
    duration: float = 0.0
    stage: str = ""
    error: str | None = None
    error_code: str | None = None
    exception: BaseException | None = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return self.error is None

    def summary(self) -> str:
        """One English line saying what moved."""
        if self.path == "lan":
            text = (f"hub unreachable; synced with the commune node at {self.peer} over the LAN: pushed "
                    f"{self.pushed} changes, pulled {self.pulled}")
            if self.held_back:
                text += f"; {self.held_back} changes wait for the hub (they concern another commune)"
            return text
        text = (f"pushed {self.pushed} changes, pulled {self.pulled}, uploaded {self.files_up} files, "
                f"downloaded {self.files_down}")
        if self.relayed or self.relay_errors:
            text += f"; relayed {self.relayed} changes of field laptops"
            if self.relay_errors:
                text += f" ({len(self.relay_errors)} laptops refused by the hub)"
        if self.digest_ok:
            text += "; state digest agrees with the hub" + (" (repaired by a full re-pull)" if self.repaired else "")
        if self.files_waiting:
            text += f"; {self.files_waiting} files still waiting"
        return text


def own_top(node_id: str) -> int:
    return log.last_of(node_id)[0]


def int_setting(replica: Replica, name: str) -> int:
    value = replica.setting(name)
    return int(value) if value.lstrip("-").isdigit() else 0


def changes_waiting(replica: Replica) -> int:
    """Own changes the hub has not acknowledged yet."""
    return max(0, own_top(replica.node_id) - int_setting(replica, "sync.acked_seq"))


def files_waiting(replica: Replica) -> int:
    """Own attachment files not yet handed to the hub, plus received ones whose file is not here yet."""
    up = (Change.select().where((Change.node_id == replica.node_id) & (Change.entity == "attachment")
                                & (Change.id > int_setting(replica, "sync.files_up_mark"))).count())
    return up + len(json.loads(replica.setting("sync.files_pending") or "[]"))


class SyncSession:
    """Run the stages against one hub; `run()` never raises for a failed sync: the report says why."""

    def __init__(self, client: HubClient, replica: Replica, *, hub_node_id: str, hub_public_key: str,
                 push_batch: int = protocol.PUSH_BATCH, pull_limit: int = protocol.PULL_LIMIT, chunk: int = CHUNK,
                 on_stage: Callable[[str], None] | None = None, monotonic: Callable[[], float] = time.monotonic):
        self.client, self.replica = client, replica
        self.me = replica.node_id
        self.hub_node_id, self.hub_public_key = hub_node_id, hub_public_key
        self.push_batch, self.pull_limit, self.chunk = push_batch, pull_limit, chunk
        self.on_stage = on_stage
        self.monotonic = monotonic
        self.report = SyncReport()
        self.hub_digest: dict[str, Any] | None = None

    def run(self) -> SyncReport:
        """Every stage in order; progress saved as it goes; failures recorded in sync.last_error."""
        started = self.monotonic()
        self.report = report = SyncReport()
        stage = ""
        try:
            for stage in STAGES:
                marker = {"sync.stage": stage}
                if stage == STAGES[0]:
                    marker["sync.last_attempt"] = self.replica.now_text()
                self._note(marker)
                if self.on_stage:
                    self.on_stage(stage)
                getattr(self, f"stage_{stage}")()
        except SyncError as exc:
            report.stage, report.exception = stage, exc
            report.error, report.error_code = exc.message, exc.code
            logger.info("sync failed at stage %s: %s (%s)", stage, exc.message, exc.code)  # kept in sync.last_error
        except Exception as exc:  # a local fault (disk full, a bug): reported like the others, never hidden
            report.stage, report.exception = stage, exc
            report.error, report.error_code = f"{type(exc).__name__}: {exc}", "internal_error"
            logger.exception("sync failed at stage %s", stage)
        finally:
            self.client.drop_pending_pull()  # a pull written ahead that the sync did not read (it failed first)
            report.duration = self.monotonic() - started
            report.changes_waiting = changes_waiting(self.replica)
            report.files_waiting = files_waiting(self.replica)
            done = {"sync.stage": "", "sync.files_waiting": report.files_waiting,
                    "sync.last_result": report.error_code or "ok"}
            if report.error is None:
                done["sync.last_success"] = self.replica.now_text()
            else:
                done["sync.last_error"] = json.dumps({"code": report.error_code, "message": report.error,
                                                      "stage": report.stage, "at": self.replica.now_text()},
                                                     ensure_ascii=False)
            self._note(done)
        return report

    # ------------------------------------------------------------ stages

    def stage_time(self) -> None:
        saved = self.replica.setting("sync.clock_skew_ms")
        if self.client.offset_ms is None and saved.lstrip("-").isdigit():
            # The offset an earlier sync learned stands in for GET /time: one round trip less. Should the hub
            # refuse the request's time, the client learns its clock again (HubClient.call).
            self.client.offset_ms = -int(saved)
        elif self.client.offset_ms is None:
            self.client.hub_time()  # the first sync: learn the hub's clock (and check its key)
        skew = -(self.client.offset_ms or 0)  # this node's clock minus the hub's: positive = ahead
        backlog = changes_waiting(self.replica)
        self.client.telemetry = {"X-Motcua-Backlog": str(backlog), "X-Motcua-Clock-Skew": str(skew)}
        held = None
        if not backlog and not self._lan_origins() and not self._uploads_waiting():
            # Nothing to push or upload, as far as this node knows: the pull goes right behind /sync/status on
            # the same connection (no round trip of its own). It is read only after the checks below passed
            # and the push stage found nothing to send; else it is dropped unread and asked again later.
            held = self.client.status_then_pull(self._pull_ahead(), backlog=backlog, clock_skew_ms=skew)
        if held is None:
            held = self.client.status(backlog=backlog, clock_skew_ms=skew)
        if "hub_public_key" not in held:
            self.client.hub_time()  # an older hub does not name itself in /sync/status: its key is checked here
        skew = -(self.client.offset_ms or 0)  # refreshed by the status answer's hub_time_ms
        self.report.clock_skew_ms = skew
        self.client.telemetry["X-Motcua-Clock-Skew"] = str(skew)
        hub_acked = int(held.get("acked_seq") or 0)
        top = own_top(self.me)
        if hub_acked > top:
            raise NodeForked(f"the hub holds this node's changes up to seq {hub_acked} but this node only up to "
                             f"{top}: it was restored from an older backup. Do not write on it; enroll it again "
                             "as a new node.")
        if hub_acked:
            row = Change.get_or_none((Change.node_id == self.me) & (Change.seq == hub_acked))
            if row is None or (held.get("last_hash") and row.hash != held["last_hash"]):
                raise NodeForked(f"the hub holds another change at seq {hub_acked} of this node (a fork); "
                                 "enroll this node again as a new node.")
        if hub_acked < top:
            self.client.drop_pending_pull()  # the hub lacks changes of this node: they go first, the pull after
        self._note({"sync.clock_skew_ms": skew, "sync.acked_seq": hub_acked})  # both read again from the hub

    def stage_push(self) -> None:
        """Own changes after the acknowledged seq, pipelined (HubClient.push_stream); each answer commits."""
        acked = self._int("sync.acked_seq")

        def batch_after(seq: int, limit: int) -> list[dict[str, Any]]:  # one bounded read of the log
            rows = (Change.select().where((Change.node_id == self.me) & (Change.seq > seq))
                    .order_by(Change.seq).limit(limit))
            return [log.row_to_change(r) for r in rows]

        # The pull this sync makes next, written right behind the last push on the same connection (its answer
        # follows the last push answer: no round trip of its own). Not when the stages between would talk
        # to the hub first (a commune node relaying its laptops' changes, files to upload): they would need a
        # second connection.
        then_pull = None if self._lan_origins() or self._uploads_waiting() else self._pull_ahead()
        with closing(self.client.push_stream(batch_after, acked, limit=self.push_batch,
                                             then_pull=then_pull)) as answers:
            for batch, answer in answers:
                self._commit_push(batch, answer, acked)
                acked = batch[-1]["seq"]
        self.relay_laptops()

    def _commit_push(self, batch: list[dict[str, Any]], answer: dict[str, Any], acked: int) -> None:
        """Save the acknowledged seq after one pushed batch (part of stage_push)."""
        new = int(answer.get("acked_seq") or 0)
        if new < batch[-1]["seq"]:
            raise HubRefused("not_acknowledged", f"the hub acknowledged seq {new} after a batch ending at "
                             f"{batch[-1]['seq']}", 200)
        new = batch[-1]["seq"]
        self.replica.save({"sync.acked_seq": new})
        self.report.pushed += new - acked
        self.client.telemetry["X-Motcua-Backlog"] = str(changes_waiting(self.replica))

    def relay_laptops(self) -> None:
        """Push the changes of field laptops this node took over the LAN that the hub does not hold yet."""
        own = NodeRecord.get_or_none(NodeRecord.node_id == self.me)
        if own is None or own.kind != "commune":
            return  # only a commune node carries others' changes (a laptop keeps what it got over the LAN)
        origins = [o for o in self._lan_origins() if o != self.me and o != self.hub_node_id]
        laptops = {r.node_id for r in NodeRecord.select(NodeRecord.node_id)
                   .where(NodeRecord.node_id.in_(origins) & (NodeRecord.kind == "laptop"))} if origins else set()
        origins = [o for o in origins if o in laptops]
        if not origins:
            return
        held = self._held_at_hub(origins)
        errors: dict[str, Any] = {}
        for origin in origins:
            after = held.get(origin, 0)
            for _ in range(1_000_000):  # bounded: each round moves `after` or ends the loop
                rows = list(Change.select().where((Change.node_id == origin) & (Change.seq > after))
                            .order_by(Change.seq).limit(self.push_batch))
                run = [log.row_to_change(r) for i, r in enumerate(rows) if r.seq == after + 1 + i]
                if not run:
                    break  # nothing more, or a gap the laptop itself must fill (sent once the hub holds it)
                try:
                    answer = self.client.push(run)
                except HubRefused as exc:
                    errors[origin] = {"code": exc.code, "message": exc.message, "at": self.replica.now_text()}
                    logger.warning("the hub refused the changes of laptop %s: %s (%s)", origin, exc.message, exc.code)
                    break
                new = int((answer.get("origins") or {}).get(origin) or 0)
                if new < run[-1]["seq"]:
                    errors[origin] = {"code": "not_acknowledged", "at": self.replica.now_text(),
                                      "message": f"the hub holds seq {new} of {origin} after a batch ending at "
                                                 f"{run[-1]['seq']}"}
                    break
                self.report.relayed += new - after
                after = new
        self.report.relay_errors = errors
        self.replica.save({"relay.errors": json.dumps(errors, ensure_ascii=False, sort_keys=True)})

    def _lan_origins(self) -> list[str]:
        try:
            value = json.loads(self.replica.setting(LAN_ORIGINS) or "[]")
        except ValueError:
            return []
        return [o for o in value if isinstance(o, str)] if isinstance(value, list) else []

    def _held_at_hub(self, origins: list[str]) -> dict[str, int]:
        """The hub's highest seq of each of `origins` (0 for those it does not know)."""
        held: dict[str, int] = {}
        for i in range(0, len(origins), protocol.MAX_STATUS_ORIGINS):
            answer = self.client.status(origins=origins[i:i + protocol.MAX_STATUS_ORIGINS]).get("origins") or {}
            held.update({o: int(s) for o, s in answer.items() if isinstance(s, int) and not isinstance(s, bool)})
        return held

    def stage_files_up(self) -> None:
        mark, acked = self._int("sync.files_up_mark"), self._int("sync.acked_seq")
        top = _top_id()  # read first: every row up to it is visible to the scan below
        saved = mark
        try:
            for row in self._attachment_changes(mark, own=True, upto=top):
                if row.seq > acked:
                    return  # its change is not on the hub yet: files travel after the changes that mention them
                sha = encoding.decode(row.payload).get("fields", {}).get("sha256", "")
                path = self.replica.file_path(sha)
                if path.exists() and _sha256_file(path) == sha:
                    sent = self._upload(sha, path)
                    self.report.files_up += sent
                else:
                    sent = 0
                    logger.warning("attachment file %s is missing or damaged here; it cannot be uploaded", sha)
                mark = row.id
                if sent or mark - saved >= SCAN_BATCH:  # one commit per file sent, or per batch of checks
                    self._note({"sync.files_up_mark": mark})  # lost on a power cut: the hub is asked again
                    saved = mark
            mark = max(mark, top)  # scanned to the top: the next sync starts there, not at the last attachment
        finally:
            if mark != saved:
                self._note({"sync.files_up_mark": mark})

    def stage_pull(self) -> None:
        """Pages (frames of a framed answer, protocol 2) after the saved cursor, each verified ("runs" for
        compact pages, "each" for v1 ones) and applied in one transaction with the cursor after it."""
        cursor = self.replica.setting("sync.cursor") or None
        with closing(self.client.pull_pages(cursor, limit=self._pull_frame())) as pages:
            for page in pages:
                changes = page["changes"]
                with self.replica.transaction():
                    outcome = ingest.ingest(changes, key_for=self._key_lookup(changes), apply=self.replica.apply,
                                            sign_check=page["sign_check"], gaps_allowed=True)
                    self.replica.save({"sync.cursor": page["cursor"] or cursor})
                cursor = page["cursor"] or cursor
                for change in outcome.stored_changes:
                    try:
                        self.replica.clock.observe(hlc.Timestamp.parse(change["hlc"]))
                    except ValueError:  # a malformed clock on a signed change: kept, just not observed
                        logger.warning("change %s#%s has a malformed hlc", change["node_id"], change["seq"])
                self.report.pulled += outcome.stored
                if not page["more"]:
                    self.hub_digest = page["digest"]
                    return

    def stage_files_down(self) -> None:
        seen = self._int("sync.files_seen")
        pending_text = self.replica.setting("sync.files_pending") or "[]"
        pending: list[str] = json.loads(pending_text)
        top = _top_id()  # read first: every row up to it is visible to the scan below
        first, scanned = seen, 0
        for row in self._attachment_changes(seen, own=False, upto=top):
            sha = encoding.decode(row.payload).get("fields", {}).get("sha256", "")
            if sha and sha not in pending and not self.replica.file_path(sha).exists():
                pending.append(sha)
            seen, scanned = row.id, scanned + 1
            if scanned % SCAN_BATCH == 0:
                self._note({"sync.files_seen": seen, "sync.files_pending": json.dumps(pending)})
        seen = max(seen, top)  # scanned to the top: the next sync starts there, not at the last attachment
        if seen != first or json.dumps(pending) != pending_text:  # lost on a power cut: scanned again
            self._note({"sync.files_seen": seen, "sync.files_pending": json.dumps(pending)})
        for sha in list(pending):
            if not self.replica.file_path(sha).exists():
                try:
                    data = self.client.get_file(sha)
                except HubRefused as exc:
                    if exc.status in (403, 404, 410):
                        continue  # not on the hub yet (its node has not uploaded it): a later sync fetches it
                    raise
                if hashlib.sha256(data).hexdigest() != sha:
                    logger.warning("file %s from the hub does not match its hash; asked again next sync", sha)
                    continue
                _write_durably(self.replica.file_path(sha), data)
                self.report.files_down += 1
            pending.remove(sha)
            self.replica.save({"sync.files_pending": json.dumps(pending)})

    def stage_verify_digest(self) -> None:
        lan = self._lan_origins()
        hub, held = self._hub_view(lan, self.hub_digest)
        repulling = self.replica.setting("sync.repull") == "1"
        if hub == self.local_digest(held):
            self._note({"sync.hub_digest": json.dumps(hub), "sync.repull": ""})  # durable with the next commit
            self._prune_lan_origins(lan, held)
            self.report.digest_ok, self.report.repaired = True, repulling
            return
        logger.warning("state digest differs from the hub's (%s here, %s there): pulling the whole scope again",
                       self.local_digest(held), hub)
        self.replica.save({"sync.cursor": "", "sync.repull": "1"})
        self.hub_digest = None
        self.stage_pull()
        lan = self._lan_origins()  # a laptop may have pushed through this node's relay meanwhile
        hub, held = self._hub_view(lan, self.hub_digest)
        local = self.local_digest(held)
        self.replica.save({"sync.hub_digest": json.dumps(hub)})
        if hub != local:
            self.report.digest_ok = False
            raise DigestMismatch(f"this node's changes ({local.get('count')}) still differ from the hub's "
                                 f"({(hub or {}).get('count')}) after a full re-pull of the scope; "
                                 "ask the district administrator to compare the two")
        self.replica.save({"sync.repull": ""})
        self._prune_lan_origins(lan, held)
        self.report.digest_ok, self.report.repaired = True, True

    def _hub_view(self, lan: list[str], digest: dict[str, Any] | None) -> tuple[Any, dict[str, int] | None]:
        """The hub's digest, and when changes came over the LAN, what it holds of their nodes (one answer)."""
        if not lan:
            return digest or self.client.status().get("digest"), None
        answer = self.client.status(origins=lan[:protocol.MAX_STATUS_ORIGINS])
        origins = answer.get("origins") if isinstance(answer.get("origins"), dict) else {}
        held = {o: s for o, s in origins.items() if isinstance(s, int) and not isinstance(s, bool)}
        return answer.get("digest"), {o: held.get(o, 0) for o in lan}

    def _prune_lan_origins(self, lan: list[str], held: dict[str, int] | None) -> None:
        """Forget LAN origins the hub has caught up with (it holds all we hold of them)."""
        if not lan or held is None:
            return
        with self.replica.transaction():  # read and write together: a laptop may push through the relay meanwhile
            current = self._lan_origins()
            keep = [o for o in current if o not in held or log.last_of(o)[0] > held[o]]
            if keep != current:
                self.replica.save({LAN_ORIGINS: json.dumps(keep)})

    # ------------------------------------------------------------ helpers

    def local_digest(self, held: dict[str, int] | None = None) -> dict[str, Any]:
        """Digest of every change held here, less own changes the hub has not acknowledged yet, and less the
        changes of nodes in `held` (node id -> highest seq the hub holds of it) above that seq."""
        acked = self._int("sync.acked_seq")
        ahead = [(self.me, acked)] + [(o, s) for o, s in (held or {}).items() if o != self.me]
        # The running digest of the whole log (log.LogDigest) less these few rows (the backlog), read in
        # one transaction so that a change stored meanwhile is in both or in neither.
        with self.replica.transaction():
            whole = log.held_digest()
            count, total = whole["count"], int(whole["sum"], 16)
            for origin, seq in ahead:  # one indexed range per node: (node_id, seq) is unique
                query = Change.select(Change.hash).where((Change.node_id == origin) & (Change.seq > seq)).tuples()
                for (h,) in query.iterator():
                    count, total = count - 1, total - int(h, 16)
        return {"count": count, "sum": f"{total % (1 << 256):064x}"}

    def _pull_frame(self) -> int:
        return max(1, min(self.pull_limit, protocol.PULL_FRAME))

    def _uploads_waiting(self) -> bool:
        """Own attachments after the files_up scan mark: files_up may talk to the hub before the pull."""
        return (Change.select().where((Change.node_id == self.me) & (Change.entity == "attachment")
                                      & (Change.id > self._int("sync.files_up_mark"))).exists())

    def _pull_ahead(self) -> dict[str, Any]:
        """The pull request stage_pull will make (from the saved cursor), to be written ahead of time."""
        return self.client.pull_request(self.replica.setting("sync.cursor") or None, limit=self._pull_frame())

    def _note(self, values: dict[str, Any]) -> None:
        """Save settings whose loss on a power cut only repeats work (stage markers, scan marks, the clock
        offset, the last result) without waiting for the disk: see `unsynced`."""
        with unsynced():
            self.replica.save(values)

    def _int(self, name: str) -> int:
        return int_setting(self.replica, name)

    def _attachment_changes(self, after: int, *, own: bool, upto: int | None = None) -> Iterator[Change]:
        """Attachment changes (own or received) after Change.id `after` (up to `upto`), in bounded batches."""
        mine = (Change.node_id == self.me) if own else (Change.node_id != self.me)
        if upto is not None:
            mine = mine & (Change.id <= upto)
        while True:
            rows = list(Change.select(Change.id, Change.seq, Change.payload)
                        .where(mine & (Change.entity == "attachment") & (Change.id > after))
                        .order_by(Change.id).limit(SCAN_BATCH))
            if not rows:
                return
            yield from rows
            after = rows[-1].id

    def _upload(self, sha: str, path: Path) -> int:
        """Send the part of the file the hub lacks; 1 if bytes were sent, 0 when the hub had it all."""
        size = path.stat().st_size
        offset = self.client.file_size(sha)
        if offset >= size:
            return 0
        realigned = 0
        with open(path, "rb") as fh:
            while offset < size:
                fh.seek(offset)
                chunk = fh.read(self.chunk)
                try:
                    held = self.client.put_chunk(sha, offset, chunk, total=size)
                except HubRefused as exc:
                    if exc.code != "offset_mismatch" or realigned >= 3:
                        raise
                    realigned += 1  # another upload of the same file moved on: continue from what the hub holds
                    offset = self.client.file_size(sha)
                    continue
                if held <= offset:
                    raise HubRefused("upload_stalled", f"the hub holds {held} bytes of {sha} after a chunk at "
                                     f"{offset}", 200)
                offset = held
        return 1

    def _key_lookup(self, changes: list[Any]) -> ingest.KeyLookup:
        """key_for on the pull path: the pinned hub key, the key registry, or a hub-signed record in this page.

        A record arriving in the same page as the first changes of its node is usable because ingest verifies
        every change of the page (the record's hub signature included) before it applies any of them.
        Revoked and quarantined nodes count as active here: the hub vetted their changes when they came in.
        """
        incoming: dict[str, str] = {}
        for c in changes:
            if isinstance(c, dict) and c.get("node_id") == self.hub_node_id and c.get("entity") == "node":
                fields = (c.get("payload") or {}).get("fields") if isinstance(c.get("payload"), dict) else None
                if isinstance(fields, dict) and isinstance(fields.get("public_key"), str):
                    incoming[str(c.get("entity_id"))] = fields["public_key"]

        def key_for(node_id: str) -> tuple[str, str]:
            if node_id == self.hub_node_id:
                return self.hub_public_key, "active"
            if node_id in incoming:
                return incoming[node_id], "active"
            row = NodeRecord.get_or_none(NodeRecord.node_id == node_id)
            if row is None:
                raise ingest.UnknownNode(f"a pulled change is signed by node {node_id}, unknown to this node's "
                                         "key registry")
            return row.public_key, "active"

        return key_for


def _top_id() -> int:
    """The highest Change.id held (0 for an empty log)."""
    return Change.select(pw.fn.MAX(Change.id)).scalar() or 0


@contextmanager
def unsynced() -> Iterator[None]:
    """Commits made inside skip the fsync (SQLite in WAL mode, synchronous=NORMAL on this thread's connection):
    for settings whose loss on a power cut only repeats work. They are committed and seen at once; the next
    durable commit (a pushed batch's acknowledged seq, a pulled page with its cursor) syncs them to disk too,
    and a cut before that loses them, never the database's consistency. Inside an open transaction, or on
    another database, nothing changes."""
    db = merge.database_of(Change)
    if not isinstance(db, pw.SqliteDatabase) or db.in_transaction():
        yield
        return
    (level,) = db.execute_sql("PRAGMA synchronous").fetchone()
    if level < 2:  # NORMAL or OFF already
        yield
        return
    db.execute_sql("PRAGMA synchronous=NORMAL")
    try:
        yield
    finally:
        db.execute_sql(f"PRAGMA synchronous={int(level)}")


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_durably(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f"{target.name}.{os.getpid()}.part")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, target)


__all__ = ["STAGES", "CHUNK", "DigestMismatch", "Replica", "SyncReport", "SyncSession", "changes_waiting",
           "files_waiting"]
