"""Which nodes receive a change: the hub's scope rules, defined once in node/sync/scope.py (a commune node
relaying its laptops applies the very same rules)."""

from node.sync.scope import CHUNK, HUB_GLOBAL_ENTITIES, scopes_for

__all__ = ["CHUNK", "HUB_GLOBAL_ENTITIES", "scopes_for"]
