"""Tables local to one node (never synced). The synced tables live in `node.sync.state`."""

from __future__ import annotations

import peewee as pw

from .sync.state import Base


class NodeSetting(Base):
    """Small local key/value state: sync cursors, counters, preferences of this node."""

    key = pw.CharField(primary_key=True)
    value = pw.TextField()


class LoginFailure(Base):
    """Failed logins per username, to slow down password guessing."""

    username = pw.CharField(index=True)
    at = pw.CharField()


LOCAL_MODELS = [NodeSetting, LoginFailure]
