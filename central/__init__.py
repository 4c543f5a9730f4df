"""motcua district hub: enrollment and revocation of nodes, push/pull endpoints, verification, storage
backends (SQLite, PostgreSQL), the nodes page and online submissions.

A replica like any other: its own node id, key and change log (central.instance.Hub). It imports
`node.sync` (and node's pure helpers), never `node.web`.

    create_app(config=None)   the Flask app (central.app), served by `motcua hub serve`
"""

from __future__ import annotations

from typing import Any


def create_app(config: dict[str, Any] | None = None):
    """The hub's Flask app; see central.app.create_app."""
    from .app import create_app as _create_app

    return _create_app(config)


__all__ = ["create_app"]
