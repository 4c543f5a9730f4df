"""Proposed fixes shown by monkeypatch, inside bench processes only (issue 5): what a change in node/ or
central/ would give, measured before anyone edits those packages.

A patch is applied only when $MOTCUA_BENCH_PATCH names it (comma-separated), and only in processes the bench
starts: the hub (`python -m bench.patches hub serve ...` instead of `motcua hub serve ...`, see
`sync.Hub`) and the sync workers (`bench.sync.worker`). Nothing in node/ or central/ changes.

No patch is proposed at present: the ones measured for issue 5 became real code (framed, compact pulls:
node/sync/pullwire.py; pipelined pushes; the running digest; no GET /time when the offset is known).
"""

from __future__ import annotations

import os
import sys

ENV = "MOTCUA_BENCH_PATCH"


def wanted() -> set[str]:
    return {p.strip() for p in os.environ.get(ENV, "").split(",") if p.strip()}


def hub_command() -> list[str]:
    """How the bench starts a hub whose process applies the patches named in $MOTCUA_BENCH_PATCH."""
    return [sys.executable, "-m", "bench.patches"]


def apply_hub() -> None:
    """Apply the hub patches named in $MOTCUA_BENCH_PATCH (none at present)."""


def apply_node() -> None:
    """Apply the node patches named in $MOTCUA_BENCH_PATCH (none at present)."""


if __name__ == "__main__":  # python -m bench.patches hub serve ...: `motcua` with the hub patches applied
    apply_hub()
    from node.cli import main

    sys.argv = ["motcua", *sys.argv[1:]]
    main()
