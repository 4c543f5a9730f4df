"""Tables only the hub has. The synced tables and the change log come from `node.sync` and are bound to
the same database through `node.sync.state.database`.
"""

from __future__ import annotations

import peewee as pw

from node.sync.state import Base


class EnrollmentToken(Base):
    """A one-time enrollment token; only its SHA-256 is stored, the token itself is shown once."""

    token_hash = pw.CharField(primary_key=True)
    scope = pw.TextField()  # comma-separated unit codes
    kind = pw.CharField(default="commune")  # commune | laptop
    created_at = pw.CharField(default="")
    expires_at = pw.CharField()  # local time text, like every time in the project
    used_at = pw.CharField(default="")
    used_by = pw.CharField(default="")


class ChangeScope(Base):
    """Which nodes receive a change: a unit code, or "*" for every node."""

    change_id = pw.IntegerField(primary_key=True)  # = Change.id
    scope = pw.CharField()

    class Meta:
        indexes = ((("scope", "change_id"), False),)


class NodeStatus(Base):
    """What the hub last saw of a node (not synced: the hub's own observation)."""

    node_id = pw.CharField(primary_key=True)
    last_seen = pw.CharField(default="")
    acked_seq = pw.IntegerField(default=0)
    last_hash = pw.CharField(default="")
    clock_skew_ms = pw.BigIntegerField(null=True)
    software_version = pw.CharField(default="")
    backlog_reported = pw.IntegerField(null=True)
    pulled_to = pw.IntegerField(default=0)  # the node has merged its scope up to this hub change id


class ForkRecord(Base):
    """Two changes with the same node and seq: both versions kept for the administrator."""

    id = pw.AutoField()
    node_id = pw.CharField(index=True)
    seq = pw.IntegerField()
    held = pw.TextField()  # canonical JSON of the change the hub already held
    incoming = pw.TextField()  # canonical JSON of the change that was pushed
    detected_at = pw.CharField()
    resolved = pw.IntegerField(default=0)


class HubUser(Base):
    """A hub user who logs in to the hub's pages: the administrator, or a specialist/leader of an agency."""

    username = pw.CharField(primary_key=True)
    full_name = pw.TextField(default="")
    password_hash = pw.TextField()
    roles = pw.CharField(default="admin")
    # The agency (a code of node.workflow.AGENCIES) a specialist or leader acts for; "" for none: an
    # administrator, or a user made before agencies were tied to users (see central/hubauth.py).
    agency = pw.CharField(default="")


class SubmissionHit(Base):
    """One online submission accepted from a client address (hub-local, not synced): the rate limit's memory.

    The address is kept only as a keyed hash; the ID number and the applicant never appear here."""

    id = pw.AutoField()
    client = pw.CharField(index=True)  # HMAC-SHA256 of the client address with the hub secret, hex
    at = pw.BigIntegerField(index=True)  # seconds since the epoch, hub clock


HUB_MODELS = [EnrollmentToken, ChangeScope, NodeStatus, ForkRecord, HubUser, SubmissionHit]
