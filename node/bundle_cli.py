"""`motcua node export` / `motcua node import`: a node's side of bundles (node.sync.bundle) for a USB stick.

    export   the changes the hub has not acknowledged (NodeSetting "sync.acked_seq") and, with --with-files,
             the attachment files they mention, in one bundle encrypted to the pinned hub's key
    import   a bundle the hub made for this node: applied exactly like a pull (ingest with gaps allowed,
             every signature checked, the session's key lookup), one transaction per batch, files after

Wired into node/cli.py by `register(node_group)`. Errors are one line on stderr and a non-zero exit status.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from .instance import DATA_ENV


def _fail(message: str) -> None:
    click.echo(f"motcua: {message}", err=True)
    sys.exit(1)


def size_text(n: int) -> str:
    """`512 B`, `600 KB`, `1.2 MB`."""
    if n < 1024:
        return f"{n} B"
    if n < 1024 * 1024:
        return f"{n // 1024} KB"
    return f"{n / (1024 * 1024):.1f} MB"


def _pin(node) -> dict[str, Any]:
    from .syncer import NotEnrolled, read_pin

    pin = read_pin(node)
    if pin is None:
        raise NotEnrolled("this node is not enrolled with a hub; run `motcua node enroll` first (a bundle is "
                          "encrypted to the hub's key pinned at enrollment)")
    return pin


def export_bundle(node, target: Path, *, with_files: bool = False) -> dict[str, Any]:
    """Write the changes the hub has not acknowledged (and their files) into one bundle for the pinned hub."""
    from . import __version__, attachments, timeutil
    from .syncer import NodeReplica
    from .sync import bundle, encoding, log, protocol
    from .sync.log import Change
    from .sync.session import int_setting

    pin = _pin(node)
    me = node.node_id
    acked = int_setting(NodeReplica(node), "sync.acked_seq")
    top = log.last_of(me)[0]
    mine = (Change.node_id == me) & (Change.seq > acked) & (Change.seq <= top)
    files: dict[str, bundle.FileEntry] = {}
    if with_files:
        query = Change.select(Change.payload).where(mine & (Change.entity == "attachment")).order_by(Change.seq)
        for (payload,) in query.tuples().iterator():
            fields = encoding.decode(payload).get("fields") or {}
            sha, size = fields.get("sha256"), fields.get("size")
            path = attachments.path_for(node, sha) if isinstance(sha, str) and len(sha) == 64 else None
            if path is not None and isinstance(size, int) and path.exists() and path.stat().st_size == size:
                files.setdefault(sha, bundle.FileEntry(sha, size, path))

    def batches():
        after = acked
        while True:
            rows = list(Change.select().where(mine & (Change.seq > after)).order_by(Change.seq)
                        .limit(protocol.PUSH_BATCH))
            if not rows:
                return
            yield [log.row_to_change(r) for r in rows]
            after = rows[-1].seq

    written = bundle.write_bundle(
        Path(target), direction=bundle.TO_HUB, sender=me, sender_key=node.key, recipient=pin["hub_node_id"],
        recipient_public=pin["hub_public_key"], created=timeutil.to_text(node.now()), change_count=top - acked,
        batches=batches(), files=list(files.values()), file_count=len(files),
        file_bytes=sum(f.size for f in files.values()), meta={"acked_seq": acked, "top_seq": top},
        software_version=__version__)
    return dict(written, hub=pin["hub_node_id"], first_seq=acked + 1, last_seq=top)


def import_bundle(node, source: Path) -> dict[str, Any]:
    """Check a bundle from the pinned hub for this node, then apply it like a pull; returns the counts."""
    from . import attachments
    from .syncer import NodeReplica, sync_lock
    from .sync import bundle, hlc, ingest
    from .sync.errors import SyncError
    from .sync.log import Change
    from .sync.session import SyncSession, int_setting
    from .sync.state import Attachment

    pin = _pin(node)
    hub_id = pin["hub_node_id"]

    def sender_key(sender: str) -> str:
        if sender != hub_id:
            raise bundle.BundleRefused(f"this bundle was made by {sender}, not by this node's hub {hub_id}")
        return pin["hub_public_key"]

    opened = bundle.open_bundle(Path(source), direction=bundle.TO_NODE, recipient_id=node.node_id,
                                recipient_key=node.key, sender_key=sender_key)
    replica = NodeReplica(node)
    # The pull path's key lookup (pinned hub key, registry, hub-signed records in the same batch).
    session = SyncSession(None, replica, hub_node_id=hub_id, hub_public_key=pin["hub_public_key"])  # type: ignore[arg-type]
    sink = bundle.FileSink(lambda sha: attachments.path_for(node, sha),
                           lambda sha: Attachment.select().where(Attachment.sha256 == sha).exists())
    out = {"hub": hub_id, "created": opened.header["created"], "stored": 0, "skipped": 0, "not_applied": 0}
    with sync_lock(node):
        try:
            for kind, value in opened.records():
                if kind == "changes":
                    try:
                        with replica.transaction():
                            outcome = ingest.ingest(value, key_for=session._key_lookup(value),
                                                    apply=replica.apply, sign_check="each", gaps_allowed=True)
                    except SyncError as exc:
                        raise bundle.stopped(exc, out["stored"]) from exc
                    for change in outcome.stored_changes:
                        try:
                            replica.clock.observe(hlc.Timestamp.parse(change["hlc"]))
                        except ValueError:
                            pass  # a malformed clock on a signed change: kept, just not observed
                    out["stored"] += outcome.stored
                    out["skipped"] += outcome.skipped
                    out["not_applied"] += outcome.not_applied
                elif kind == "chunk":
                    sink.add(value)
        finally:
            sink.close()
        out.update(files_stored=sink.stored, files_skipped=sink.skipped, file_bytes=sink.bytes)
        acked, acked_hash = opened.meta.get("acked_seq"), opened.meta.get("acked_hash")
        current = int_setting(replica, "sync.acked_seq")
        out["acked_seq"], out["warning"] = current, ""
        if isinstance(acked, int) and acked > current:
            row = Change.get_or_none((Change.node_id == node.node_id) & (Change.seq == acked))
            if row is not None and row.hash == acked_hash:
                replica.save({"sync.acked_seq": acked})
                out["acked_seq"] = acked
            else:
                out["warning"] = (f"the hub holds this node's changes up to seq {acked}, which this node does not "
                                  "hold as the hub does (restored from an old backup?); ask the district "
                                  "administrator before writing more")
    return out


DATA_OPTION = click.option("--data", "data", type=click.Path(file_okay=False), default=None,
                           help=f"Data folder of the node (default: ${DATA_ENV} or ./instance).")


def _open(data):
    from .errors import NodeError
    from .instance import Node, data_dir

    try:
        return Node(data_dir(data))
    except NodeError as exc:
        _fail(exc.message("en"))


@click.command("export")
@DATA_OPTION
@click.option("--to", "target", required=True, type=click.Path(dir_okay=False),
              help="Bundle file to write, e.g. on a USB stick.")
@click.option("--with-files", is_flag=True, help="Also carry the attachment files the changes mention.")
def node_export(data, target, with_files) -> None:
    """Write the changes the hub has not acknowledged into one bundle encrypted to the hub's key."""
    from .sync.errors import SyncError

    node = _open(data)
    try:
        done = export_bundle(node, Path(target), with_files=with_files)
    except SyncError as exc:
        _fail(f"export failed: {exc.message}")
    except OSError as exc:
        _fail(f"export failed: cannot write {target}: {exc.strerror or exc}")
    finally:
        node.close()
    span = f" (seq {done['first_seq']}–{done['last_seq']})" if done["changes"] else ""
    click.echo(f"bundle for hub {done['hub']} written to {target}: {done['changes']} changes{span}, "
               f"{done['files']} files ({size_text(done['file_bytes'])}); {size_text(done['bytes'])} in all")


@click.command("import")
@DATA_OPTION
@click.argument("source", type=click.Path(dir_okay=False))
def node_import(data, source) -> None:
    """Apply a bundle the hub made for this node (SOURCE: the bundle file), like a pull."""
    from .sync import bundle
    from .sync.errors import SyncError

    node = _open(data)
    try:
        done = import_bundle(node, Path(source))
    except bundle.ImportStopped as exc:
        _fail(exc.message)
    except SyncError as exc:
        _fail(f"bundle refused: {exc.message}")
    except OSError as exc:
        _fail(f"import failed: {exc.strerror or exc}")
    except Exception as exc:  # a database fault: still one line
        _fail(f"import failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    finally:
        node.close()
    click.echo(f"bundle from hub {done['hub']} made {done['created']}: {done['stored']} changes stored, "
               f"{done['skipped']} already held, {done['files_stored']} files stored "
               f"({size_text(done['file_bytes'])}), {done['files_skipped']} files skipped; "
               f"hub acknowledges this node's changes up to seq {done['acked_seq']}")
    if done["warning"]:
        click.echo(f"warning: {done['warning']}", err=True)


def register(node_group: click.Group) -> None:
    """Add `export` and `import` to `motcua node`."""
    node_group.add_command(node_export)
    node_group.add_command(node_import)
