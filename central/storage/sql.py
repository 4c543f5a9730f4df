"""The storage contract implemented once with peewee; backends add the connection and the lock.

Every query is built with peewee (parameters bound by the driver), so the same code runs on SQLite and
PostgreSQL. The synced models and `merge.apply` are the node's own: the hub is a replica like any other.
"""

from __future__ import annotations

from contextlib import contextmanager
from datetime import datetime
from typing import Any
from collections.abc import Callable, Iterator

import orjson
import peewee as pw

from node.sync import encoding, hlc, ingest, log, merge, protocol
from node.sync.errors import ChangeNotApplicable
from node.sync.log import Change
from node.sync.state import (SYNCED_MODELS, Attachment, Dossier, DuplicateFlag, NodeRecord, Tombstone,
                             database, upgrade_schema)
from node.timeutil import to_text

from ..errors import AlreadyEnrolled, NotFound, OutOfScope, RegistryWriteRefused, RequestRefused, TokenRefused
from ..models import HUB_MODELS, ChangeScope, EnrollmentToken, ForkRecord, HubUser, NodeStatus
from ..scoping import scopes_for
from . import DEFAULT_MAX_PULL, HubSigner, HubStorage, PullPage, PushResult



class ScopeDigest(log.RunningDigest):
    """The running state digest of the changes of one scope (a unit code or "*"), added to where ChangeScope
    rows are written (`SQLStorage._scope`), in the same transaction. `digest(scopes)` then reads one row per
    scope instead of summing the scopes' changes."""

    scope = pw.CharField(primary_key=True)


DIGEST_TABLES = [log.LogDigest, ScopeDigest]  # running digests: summed once when a hub first has them
ALL_MODELS = SYNCED_MODELS + [Change] + HUB_MODELS + DIGEST_TABLES
RECORD_FIELDS = ("node_id", "public_key", "kind", "unit_code", "unit_name", "scope", "status", "enrolled_at",
                 "revoked_at")
STATUS_FIELDS = ("last_seen", "acked_seq", "last_hash", "clock_skew_ms", "software_version", "backlog_reported")
OBSERVE_AHEAD_MS = 5 * 60 * 1000  # a pushed HLC further ahead of our wall clock does not drag our clock


class SQLStorage(HubStorage):
    """Shared implementation; subclasses define `make_database()` and may override `serialise()`."""

    def __init__(self, url: str, signer: HubSigner | None = None):
        self.url = url
        self.signer = signer
        self.db = self.make_database()

    # ------------------------------------------------------------ backend hooks
    def make_database(self) -> pw.Database:
        raise NotImplementedError

    def serialise(self) -> None:
        """Called first inside every write transaction: take the cross-process write lock."""

    # ------------------------------------------------------------ lifecycle
    def connect(self) -> None:
        database.initialize(self.db)
        self.db.connect(reuse_if_open=True)

    def close(self) -> None:
        if not self.db.is_closed():
            self.db.close()

    def create_schema(self) -> None:
        from node.indicators import index_sql

        with self.db.atomic():  # a hub made by an older version gets the newer tables and columns too
            missing = [m for m in DIGEST_TABLES if not self.db.table_exists(m._meta.table_name)]
            added = upgrade_schema(self.db, ALL_MODELS)
            log.create_stale_triggers(self.db, "log_digest", ("change",))
            log.create_stale_triggers(self.db, "scope_digest", ("change", "change_scope"))
            if missing:  # running digests new to this hub: sum once what it holds
                self.recount_digests()
            if "dossier.doc_total" in added:  # counters new to this hub: count the dossiers it holds
                from node.sync.dossier_merge import recount_all

                recount_all()
            for sql in index_sql():  # the indicator pages' covering indexes: the hub's read side only
                self.db.execute_sql(sql)

    def drop_schema(self) -> None:
        self.db.drop_tables(ALL_MODELS, safe=True)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        if self.db.in_transaction():
            yield
            return
        with self.db.atomic():
            self.serialise()
            yield

    def _signer(self) -> HubSigner:
        if self.signer is None:
            raise RuntimeError("this storage was opened without the hub's key; it cannot write hub changes")
        return self.signer

    # ------------------------------------------------------------ the change log
    def ingest_push(self, node_id: str, changes: list[dict[str, Any]], *, now: datetime) -> PushResult:
        pusher = self.node_record(node_id)
        units = {u for u in (pusher or {}).get("scope", "").split(",") if u}
        allowed: dict[str, set[str]] = {node_id: units}
        for change in changes:
            if not isinstance(change, dict):
                continue  # the shape check in ingest names it
            origin = change.get("node_id")
            if change.get("entity") == "node":
                raise RegistryWriteRefused(f"{origin}#{change.get('seq')} writes the key registry, which only "
                                           f"the hub may write", change_ref=change.get("hash"))
            if origin not in allowed:
                allowed[origin] = self._relay_units(pusher or {"node_id": node_id}, origin, change)
        applier = _ScopedApply(changes, self.signer.node_id if self.signer else "", allowed)
        relayed = [o for o in allowed if o != node_id]
        try:
            with self._ingest_transaction(_ingest_locks(changes, allowed)):
                outcome = ingest.ingest(changes, key_for=self.key_for, apply=applier, sign_check="last",
                                        gaps_allowed=False)
                self._scope(outcome.stored_changes, applier.scopes)
                self._announce_duplicates(outcome.stored_changes)
                seq, last_hash = log.last_of(node_id)
                self._upsert_status(node_id, {"acked_seq": seq, "last_hash": last_hash, "last_seen": to_text(now)})
                origins: dict[str, int] = {}
                for origin in relayed:
                    origins[origin], origin_hash = log.last_of(origin)
                    self._upsert_status(origin, {"acked_seq": origins[origin], "last_hash": origin_hash})
        except ingest.ForkDetected as fork:
            fork.fork_id = self._record_fork(fork, now)  # type: ignore[attr-defined]
            raise
        self._observe(outcome.stored_changes)
        return PushResult(seq, last_hash, outcome.stored, outcome.skipped, origins)

    @contextmanager
    def _ingest_transaction(self, locks: list[str] | None) -> Iterator[None]:
        """The transaction of one push. `locks` None: serialised like every write (`transaction`). Else the
        backend may let pushes that share none of `locks` run side by side (`_serialise_ingest`), as long as
        Change rows still get their ids in commit order (`_log_guard`, run before rows are inserted)."""
        if locks is None or self.db.in_transaction():
            with self.transaction():
                yield
            return
        with self.db.atomic():
            self._serialise_ingest(locks)
            token = merge.BEFORE_ROWS.set(self._log_guard())
            try:
                yield
            finally:
                merge.BEFORE_ROWS.reset(token)

    def _serialise_ingest(self, locks: list[str]) -> None:
        """Backend hook: called first in a push's transaction. Default: the one write lock (`serialise`)."""
        self.serialise()

    def _log_guard(self) -> Callable[[type[pw.Model]], None] | None:
        """Backend hook: for one push's transaction, what to call before rows of a model are inserted."""
        return None

    def _relay_units(self, pusher: dict[str, Any], origin: Any, change: dict[str, Any]) -> set[str]:
        """The units `pusher` may carry changes of `origin` for (a commune node relaying a field laptop's
        changes): the units both serve. Refused: an unknown, revoked or quarantined origin, or one whose
        scope does not include the pusher's unit."""
        who = f"node {pusher['node_id']}"
        ref = change.get("hash") if isinstance(change.get("hash"), str) else None
        record = self.node_record(origin) if isinstance(origin, str) else None
        if record is None or record.get("kind") == "hub":
            raise ingest.UnknownNode(f"{who} relays changes of node {origin!r}, which is not enrolled at this hub; "
                                     f"nothing of the batch was stored", change_ref=ref)
        if record["status"] == "revoked":
            raise ingest.NodeRevoked(f"{who} relays changes of node {origin}, which was revoked on "
                                     f"{record.get('revoked_at') or 'an earlier date'}; they are refused",
                                     change_ref=ref)
        if record["status"] == "quarantined":
            raise ingest.NodeQuarantined(f"{who} relays changes of node {origin}, which is quarantined after a "
                                         f"fork; an administrator must review it first", change_ref=ref)
        mine = {u for u in (pusher.get("scope") or "").split(",") if u}
        theirs = {u for u in (record.get("scope") or "").split(",") if u}
        if pusher.get("unit_code") not in theirs or not mine & theirs:
            raise RequestRefused(f"{who} ({pusher.get('unit_code') or '?'}) may not relay changes of node {origin}: "
                                 f"its scope ({', '.join(sorted(theirs)) or 'none'}) does not include "
                                 f"{pusher.get('unit_code') or 'the relaying unit'}", code="relay_not_allowed")
        return mine & theirs

    def _announce_duplicates(self, changes: list[dict[str, Any]]) -> None:
        """Possible duplicates between two communes, found as this push's dossiers merged: neither commune
        holds the other's dossier, so the hub tells each of them with a signed `duplicate.flag`."""
        created = [c["entity_id"] for c in changes if c["entity"] == "dossier" and c["op"] == "create"]
        if not created or self.signer is None:
            return
        flags = []
        for i in range(0, len(created), 500):
            part = created[i:i + 500]
            flags += list(DuplicateFlag.select().where(
                (DuplicateFlag.unit_code.contains(",")) & (DuplicateFlag.dossier_a.in_(part)
                                                           | DuplicateFlag.dossier_b.in_(part))))
        guard = merge.BEFORE_ROWS.get()
        if flags and guard is not None:  # the hub's own log is read next: hold the commit-order lock first
            guard(Change)
        for flag in {f.id: f for f in flags}.values():
            for unit in flag.unit_code.split(","):
                self.write_change("duplicate", flag.id, "flag", {
                    "dossier_a": flag.dossier_a, "dossier_b": flag.dossier_b, "unit_code": flag.unit_code,
                    "procedure_code": flag.procedure_code, "unit": unit}, author="hub")

    def _observe(self, changes: list[dict[str, Any]]) -> None:
        if not changes or self.signer is None:
            return
        top = max(hlc.Timestamp.parse(c["hlc"]) for c in changes)
        if top.ms <= hlc.wall_ms() + OBSERVE_AHEAD_MS:
            self.signer.clock.observe(top)

    def _record_fork(self, fork: ingest.ForkDetected, now: datetime) -> int:
        incoming, held = fork.incoming, fork.held
        public, _ = self.key_for(incoming["node_id"])
        # A change that does not verify on its own is tampering, not a fork: refuse it, quarantine nobody.
        log.verify_change(incoming, public)
        with self.transaction():
            fork_id = ForkRecord.insert(
                node_id=incoming["node_id"], seq=incoming["seq"], detected_at=to_text(now),
                held=orjson.dumps(held, option=orjson.OPT_SORT_KEYS).decode(),
                incoming=orjson.dumps(incoming, option=orjson.OPT_SORT_KEYS).decode(),
            ).execute()
            self.set_node_status(incoming["node_id"], "quarantined", now=now)
        return int(fork_id)

    def _scope(self, changes: list[dict[str, Any]], known: dict[str, str] | None = None) -> None:
        """Write each change's ChangeScope (`known`: scopes already computed, by change hash)."""
        if not changes:
            return
        if known and all(c["hash"] in known for c in changes):
            scopes = [known[c["hash"]] for c in changes]
        else:
            scopes = scopes_for(changes, self.signer.node_id if self.signer else "")
        by_key = {(c["node_id"], c["seq"]): (s, c["hash"]) for c, s in zip(changes, scopes, strict=True)}
        rows = []
        hashes: dict[str, list[str]] = {}  # scope -> hashes of the changes scoped now: its running digest
        for node_id in {c["node_id"] for c in changes}:
            seqs = [c["seq"] for c in changes if c["node_id"] == node_id]
            query = (Change.select(Change.id, Change.seq)
                     .where((Change.node_id == node_id) & (Change.seq >= min(seqs)) & (Change.seq <= max(seqs)))
                     .tuples())
            for cid, seq in query:
                if (node_id, seq) in by_key:
                    scope, change_hash = by_key[(node_id, seq)]
                    rows.append((cid, scope))
                    hashes.setdefault(scope, []).append(change_hash)
        # One executemany of a statement built once (building 500-row inserts with peewee cost ~20% of ingest).
        merge.insert_rows(ChangeScope, ("change_id", "scope"), rows, copy=True)
        for scope, part in hashes.items():  # same transaction: the digest moves with the rows
            log.add_to_digest(ScopeDigest, scope, part)

    def write_change(self, entity: str, entity_id: str, op: str, payload: dict[str, Any],
                     author: str = "") -> dict[str, Any]:
        signer = self._signer()
        with self.transaction():
            last = (Change.select(Change.hlc).where(Change.node_id == signer.node_id)
                    .order_by(Change.seq.desc()).limit(1).scalar())
            if last:  # another hub process may have written since: stay ahead of it
                signer.clock.observe(hlc.Timestamp.parse(last))
            change = log.append(key=signer.key, node_id=signer.node_id, clock=signer.clock, entity=entity,
                                entity_id=entity_id, op=op, payload=payload, author=author)
            if not merge.apply(change):
                Change.update(applied=0).where(Change.hash == change["hash"]).execute()
            self._scope([change])
        return change

    def pull(self, node_id: str, scopes: list[str], after: int, limit: int = DEFAULT_MAX_PULL, *,
             acknowledge: bool = True) -> PullPage:
        # The top is read first: rows above it are left for the next pull, so the cursor never passes a
        # row this query could not see.
        top = ChangeScope.select(pw.fn.MAX(ChangeScope.change_id)).where(ChangeScope.scope.in_(scopes)).scalar()
        top = max(top or 0, after)
        query = (Change.select().join(ChangeScope, on=(ChangeScope.change_id == Change.id))
                 .where(ChangeScope.scope.in_(scopes) & (Change.id > after) & (Change.id <= top)
                        & (Change.node_id != node_id))
                 .order_by(Change.id).limit(limit + 1))
        rows = list(query)
        more = len(rows) > limit
        rows = rows[:limit]
        position = rows[-1].id if more else top
        if after > 0 and acknowledge:
            self.acknowledge(node_id, after)
        return PullPage([log.row_to_change(r) for r in rows], position, more)

    def acknowledge(self, node_id: str, position: int) -> None:
        """A node pulling after `position` has merged everything of its scope up to it (its cursor moves only
        when the merge committed): record it, and purge the tombstones every enrolled node has now seen.
        Nothing is written (no transaction, no disk sync) when the hub already has it at or past `position`:
        a re-sync's pull of nothing new, or a repeated cursor; pulled_to only grows. (A purge left waiting,
        say for a create not here yet, then runs at the next acknowledgement that moves: tombstones only
        stay a little longer.)"""
        held = NodeStatus.select(NodeStatus.pulled_to).where(NodeStatus.node_id == node_id).scalar()
        if held is not None and held >= position:
            return
        # Without waiting for the disk (`_bookkeeping`): a power cut can only lose this commit whole, leaving
        # pulled_to lower than the truth and the tombstones it purged in place; both are safe (a purge waits).
        with self._bookkeeping(), self.transaction():
            self.serialise()  # the write lock, as ever (a no-op again when transaction() just took it)
            NodeStatus.insert(node_id=node_id, pulled_to=position).on_conflict(
                conflict_target=[NodeStatus.node_id],
                update={NodeStatus.pulled_to: pw.Case(None, [(NodeStatus.pulled_to < position, position)],
                                                      NodeStatus.pulled_to)}).execute()
            self.purge_tombstones()

    def purge_tombstones(self) -> int:
        """Delete tombstones that every active enrolled node whose scope holds them has pulled past (and
        whose deleted row's create the hub holds); returns how many. Nodes keep theirs: they are small, and
        a node cannot know that every other node has seen them."""
        if not Tombstone.select().exists():
            return 0
        nodes = [(r.node_id, set((r.scope or "").split(","))) for r in NodeRecord.select().where(
            (NodeRecord.status == "active") & (NodeRecord.kind != "hub"))]
        seen = dict(NodeStatus.select(NodeStatus.node_id, NodeStatus.pulled_to).tuples())
        # One query reads every tombstone with its change's id and scope (not two queries per tombstone: a
        # pull acknowledges, so this runs at every pull); a tombstone whose change the hub lacks is left.
        # No change or scope row is deleted here, so the running digests (ScopeDigest, LogDigest) stay right.
        stones = (Tombstone.select(Tombstone.id, Tombstone.entity, Tombstone.entity_id, Change.id, ChangeScope.scope)
                  .join(Change, on=((Change.node_id == Tombstone.node_id) & (Change.seq == Tombstone.seq)))
                  .join(ChangeScope, on=(ChangeScope.change_id == Change.id)).tuples())
        gone = 0
        for stone_id, entity, entity_id, change_id, scope in list(stones):
            holders = [n for n, units in nodes if scope == protocol.GLOBAL_SCOPE or scope in units]
            if not all(seen.get(n, 0) >= change_id for n in holders):
                continue
            # The create must be here too: else it may still come (a laptop's, relayed late) and come back.
            created = Change.select().where((Change.entity == entity) & (Change.entity_id == entity_id)
                                            & (Change.op == "create")).exists()
            if created:
                gone += Tombstone.delete().where(Tombstone.id == stone_id).execute()
        return gone

    def digest(self, scopes: list[str]) -> dict[str, Any]:
        rows, stale = log.digest_row(ScopeDigest, sorted(set(scopes)))
        if stale:  # a change or scope row was deleted or rewritten by hand: sum again (rare; slow on a big hub)
            self.recount_digests()
            rows, _ = log.digest_row(ScopeDigest, sorted(set(scopes)))
        return log.digest_of_rows(rows)

    def recount_digests(self) -> None:
        """Sum the running digests (whole log, and per scope) again from the rows held: once when a hub first
        has them (create_schema), or to repair them. Joins an open transaction."""
        with self.transaction():
            log.recount_digest()
            sums: dict[str, list[int]] = {}
            after = 0
            while True:  # by Change.id in batches: memory stays small on a large hub
                rows = list(Change.select(Change.id, Change.hash, ChangeScope.scope)
                            .join(ChangeScope, on=(ChangeScope.change_id == Change.id))
                            .where(Change.id > after).order_by(Change.id).limit(10_000).tuples())
                if not rows:
                    break
                by_scope: dict[str, list[str]] = {}
                for _, h, scope in rows:
                    by_scope.setdefault(scope, []).append(h)
                for scope, part in by_scope.items():
                    sums[scope] = [a + b for a, b in zip(sums.get(scope, [0] * len(log.DIGEST_COLUMNS)),
                                                         log.digest_parts(part), strict=True)]
                after = rows[-1][0]
            ScopeDigest.delete().execute()
            for scope, parts in sums.items():
                ScopeDigest.insert({ScopeDigest.scope: scope, ScopeDigest.stale: 0,
                                    **dict(zip(log.DIGEST_COLUMNS, parts, strict=True))}).execute()

    def held(self, node_id: str) -> tuple[int, str]:
        return log.last_of(node_id)

    def change_count(self) -> int:
        return Change.select().count()

    # ------------------------------------------------------------ attachments
    def file_size(self, sha256: str) -> int | None:
        return Attachment.select(Attachment.size).where(Attachment.sha256 == sha256).limit(1).scalar()

    def file_in_scope(self, sha256: str, units: list[str]) -> bool:
        return (Attachment.select(Attachment.id).join(Dossier, on=(Dossier.id == Attachment.dossier_id))
                .where((Attachment.sha256 == sha256) & Dossier.unit_code.in_(units)).exists())

    # ------------------------------------------------------------ the key registry
    def key_for(self, node_id: str) -> tuple[str, str]:
        row = (NodeRecord.select(NodeRecord.public_key, NodeRecord.status)
               .where(NodeRecord.node_id == node_id).tuples().first())
        if row is None:
            raise ingest.UnknownNode(f"node {node_id} is not enrolled at this hub")
        return row[0], row[1]

    def node_record(self, node_id: str) -> dict[str, Any] | None:
        row = NodeRecord.select().where(NodeRecord.node_id == node_id).dicts().first()
        return dict(row) if row else None

    def nodes(self) -> list[dict[str, Any]]:
        status_cols = [getattr(NodeStatus, f) for f in STATUS_FIELDS]
        query = (NodeRecord.select(NodeRecord, *status_cols)
                 .join(NodeStatus, pw.JOIN.LEFT_OUTER, on=(NodeStatus.node_id == NodeRecord.node_id))
                 .order_by(NodeRecord.unit_code, NodeRecord.enrolled_at).dicts())
        return [dict(r) for r in query]

    def units_served(self) -> set[str]:
        units: set[str] = set()
        for (scope,) in NodeRecord.select(NodeRecord.scope).where(
                (NodeRecord.status == "active") & (NodeRecord.kind != "hub")).tuples():
            units.update(u for u in scope.split(",") if u)
        return units

    def set_node_status(self, node_id: str, status: str, *, now: datetime) -> dict[str, Any]:
        if status not in ("active", "revoked", "quarantined"):
            raise ValueError(status)
        with self.transaction():
            record = self.node_record(node_id)
            if record is None:
                raise NotFound(f"no node {node_id} is enrolled at this hub")
            record = {k: record.get(k) or "" for k in RECORD_FIELDS}
            record["status"] = status
            if status == "revoked":
                record["revoked_at"] = to_text(now)
            self.write_change("node", node_id, "put", {"fields": record}, author="hub-admin")
        return record

    # ------------------------------------------------------------ enrollment tokens
    def add_token(self, token_hash: str, scope: list[str], kind: str, *, now: datetime,
                  expires_at: datetime) -> None:
        with self.transaction():
            EnrollmentToken.insert(token_hash=token_hash, scope=",".join(scope), kind=kind,
                                   created_at=to_text(now), expires_at=to_text(expires_at)).execute()

    def tokens(self) -> list[dict[str, Any]]:
        query = EnrollmentToken.select().order_by(EnrollmentToken.created_at.desc()).dicts()
        return [dict(r) for r in query]

    def enroll(self, token_hash: str, record: dict[str, Any], *, now: datetime) -> dict[str, Any]:
        with self.transaction():
            token = EnrollmentToken.select().where(EnrollmentToken.token_hash == token_hash).first()
            if token is None:
                raise TokenRefused("this enrollment token is unknown at this hub", code="token_unknown")
            if token.used_at:
                held = self.node_record(record["node_id"]) if token.used_by == record["node_id"] else None
                if held is not None and held["public_key"] == record["public_key"]:
                    # The same node and key again: a retry whose first answer was lost on the way. Answer
                    # the record held, or the node could never pin the hub (its id is enrolled already).
                    return {k: held.get(k) or "" for k in RECORD_FIELDS}
                raise TokenRefused(f"this enrollment token was already used on {token.used_at}; "
                                   f"ask the district administrator for a new one", code="token_used")
            if token.expires_at <= to_text(now):
                raise TokenRefused(f"this enrollment token expired on {token.expires_at}; "
                                   f"ask the district administrator for a new one", code="token_expired")
            scope = [u for u in token.scope.split(",") if u]
            if record["unit_code"] not in scope:
                raise TokenRefused(f"this token enrolls a node for {', '.join(scope)}, not for "
                                   f"{record['unit_code']}", code="token_scope")
            if self.node_record(record["node_id"]) is not None:
                raise AlreadyEnrolled(f"node {record['node_id']} is already enrolled; a new installation "
                                      f"needs a new node id")
            fields = {k: record.get(k, "") for k in ("node_id", "public_key", "unit_code", "unit_name")}
            fields.update(kind=token.kind, scope=token.scope, status="active", enrolled_at=to_text(now),
                          revoked_at="")
            self.write_change("node", record["node_id"], "put", {"fields": fields}, author="enroll")
            EnrollmentToken.update(used_at=to_text(now), used_by=record["node_id"]).where(
                EnrollmentToken.token_hash == token_hash).execute()
        return fields

    # ------------------------------------------------------------ observations
    def _upsert_status(self, node_id: str, values: dict[str, Any]) -> None:
        values = {k: v for k, v in values.items() if k in STATUS_FIELDS}
        if not values:
            return
        NodeStatus.insert(node_id=node_id, **values).on_conflict(
            conflict_target=[NodeStatus.node_id], update=values).execute()

    def touch_node(self, node_id: str, **observed: Any) -> None:
        """Record what a node's request showed (last seen, clock skew, version, backlog): bookkeeping for the
        nodes page, committed without waiting for the disk (`_bookkeeping`)."""
        with self._bookkeeping(), self.db.atomic():
            self._upsert_status(node_id, observed)

    @contextmanager
    def _bookkeeping(self) -> Iterator[None]:
        """Commits inside skip the disk sync: SQLite (WAL) synchronous=NORMAL on this thread's connection for
        that commit, PostgreSQL synchronous_commit=off for it. For records whose loss on a power cut is harmless
        (node status: what the nodes page shows, how far each node pulled). The commit is atomic and seen at
        once; the next durable commit makes it durable too; a cut before that loses it whole, never the
        database's consistency. Inside an open transaction, nothing changes (the outer one decides)."""
        if self.db.in_transaction():
            yield
            return
        if isinstance(self.db, pw.PostgresqlDatabase):
            with self.db.atomic():
                self.db.execute_sql("SET LOCAL synchronous_commit TO OFF")
                yield
            return
        if not isinstance(self.db, pw.SqliteDatabase):
            yield
            return
        (level,) = self.db.execute_sql("PRAGMA synchronous").fetchone()
        if level < 2:  # NORMAL or OFF already
            yield
            return
        self.db.execute_sql("PRAGMA synchronous=NORMAL")
        try:
            yield
        finally:
            self.db.execute_sql(f"PRAGMA synchronous={int(level)}")

    def node_status(self, node_id: str) -> dict[str, Any] | None:
        row = NodeStatus.select().where(NodeStatus.node_id == node_id).dicts().first()
        return dict(row) if row else None

    # ------------------------------------------------------------ forks
    def forks(self, open_only: bool = True) -> list[dict[str, Any]]:
        query = ForkRecord.select().order_by(ForkRecord.id.desc())
        if open_only:
            query = query.where(ForkRecord.resolved == 0)
        return [_fork_dict(r) for r in query.dicts()]

    def fork(self, fork_id: int) -> dict[str, Any] | None:
        row = ForkRecord.select().where(ForkRecord.id == fork_id).dicts().first()
        return _fork_dict(row) if row else None

    # ------------------------------------------------------------ administrators
    def add_user(self, username: str, full_name: str, password_hash: str, roles: str = "admin") -> None:
        with self.transaction():
            HubUser.insert(username=username, full_name=full_name, password_hash=password_hash,
                           roles=roles).on_conflict(conflict_target=[HubUser.username],
                                                    update={"full_name": full_name, "password_hash": password_hash,
                                                            "roles": roles}).execute()

    def user(self, username: str) -> dict[str, Any] | None:
        row = HubUser.select().where(HubUser.username == username).dicts().first()
        return dict(row) if row else None


class _ScopedApply:
    """The `apply` given to ingest for a push: before the first change is applied (every change of the
    batch has been verified by then), scope the whole batch and refuse it if one change writes data of a
    unit outside what its node may write (`allowed`: node id -> units; for a relayed origin, the units it
    shares with the relaying node); then apply each change."""

    def __init__(self, changes: list[dict[str, Any]], hub_node_id: str, allowed: dict[str, set[str]]):
        self.changes, self.hub_node_id, self.allowed = changes, hub_node_id, allowed
        self.scopes: dict[str, str] | None = None

    def __call__(self, change: dict[str, Any]) -> bool:
        if self.scopes is None:
            scopes = scopes_for(self.changes, self.hub_node_id)
            for c, scope in zip(self.changes, scopes, strict=True):
                units = self.allowed.get(c["node_id"], set())
                if scope not in units:
                    raise OutOfScope(f"{c['node_id']}#{c['seq']} writes data of unit {scope}, outside this "
                                     f"node's scope ({', '.join(sorted(units)) or 'none'})",
                                     change_ref=c["hash"])
            self.scopes = {c["hash"]: s for c, s in zip(self.changes, scopes, strict=True)}
        return _apply(change)


# What a push may change while pushes of other units run side by side (PostgreSQL, several hub processes):
# rows of its own units' dossiers only. Anything else (catalogue, users, conflict or duplicate decisions,
# whose rows two units share) takes the one write lock, as every other write does.
SIDE_BY_SIDE = {"dossier": ("create", "update", "action"), "document": ("create", "update"),
                "attachment": ("create", "delete")}


def _ingest_locks(changes: list[Any], allowed: dict[str, set[str]]) -> list[str] | None:
    """The names a push must hold so that pushes sharing none of them may merge side by side, or None
    when it must be serialised with every write: each origin node (its log continues in one place), each
    unit it may write (its dossiers' rows), and each ID number of a dossier it creates (possible
    duplicates are found across units: two pushes creating dossiers of one person must not both miss the
    other's). Sorted, so every process takes them in one order."""
    names = {f"node:{origin}" for origin in allowed} | {f"unit:{u}" for units in allowed.values() for u in units}
    for change in changes:
        entity = change.get("entity") if isinstance(change, dict) else None
        if not isinstance(entity, str) or change.get("op") not in SIDE_BY_SIDE.get(entity, ()):
            return None
        if change["entity"] == "dossier" and change["op"] == "create":
            payload = change.get("payload")
            fields = payload.get("fields") if isinstance(payload, dict) else None
            number = fields.get("applicant_id_number") if isinstance(fields, dict) else None
            if number:
                if not isinstance(number, str):
                    return None
                names.add(f"person:{number}")
    return sorted(names)


def _apply(change: dict[str, Any]) -> bool:
    """merge.apply, with a database refusal (a NOT NULL column missing...) named as the change's fault."""
    try:
        return merge.apply(change)
    except pw.IntegrityError as exc:
        # The transaction is rolled back whole by the caller; no savepoint needed.
        raise ChangeNotApplicable(f"{change['node_id']}#{change['seq']} cannot be applied: "
                                  f"{str(exc).splitlines()[0]}", change_ref=change.get("hash")) from exc


def _fork_dict(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    out["held"] = encoding.decode(row["held"])
    out["incoming"] = encoding.decode(row["incoming"])
    return out
