"""`motcua hub import` / `motcua hub export`: bundles for communes with no link (central.bundles).

Wired into central/cli.py by `register(hub_group)`. Errors are one line on stderr and a non-zero exit status.
"""

from __future__ import annotations

from pathlib import Path

import click

# The hub CLI's own helpers: same data folder option, same one-line failures.
from .cli import DATA_OPTION, _fail, _open


@click.command("import")
@DATA_OPTION
@click.argument("source", type=click.Path(dir_okay=False))
def hub_import(data, source) -> None:
    """Check a node's bundle (SOURCE: the bundle file) whole, then store it exactly like a push."""
    from node.bundle_cli import size_text
    from node.sync import bundle
    from node.sync.errors import SyncError

    from .bundles import import_bundle
    from .errors import HubError

    hub = _open(data)
    try:
        done = import_bundle(hub, Path(source))
    except bundle.ImportStopped as exc:
        _fail(exc.message)
    except (SyncError, HubError) as exc:
        _fail(f"bundle refused: {exc.message}")
    except OSError as exc:
        _fail(f"import failed: {exc.strerror or exc}")
    except Exception as exc:  # a database fault: still one line
        _fail(f"import failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    finally:
        hub.close()
    click.echo(f"bundle from node {done['node']} ({done['unit']}) made {done['created']}: {done['stored']} changes "
               f"stored, {done['skipped']} already held, {done['files_stored']} files stored "
               f"({size_text(done['file_bytes'])}), {done['files_skipped']} files skipped; the hub holds this "
               f"node's changes up to seq {done['acked_seq']}")


@click.command("export")
@DATA_OPTION
@click.option("--for", "node_id", required=True, help="Node id of the commune node the bundle is for.")
@click.option("--to", "target", required=True, type=click.Path(dir_okay=False),
              help="Bundle file to write, e.g. on a USB stick.")
@click.option("--with-files", is_flag=True, help="Also carry the attachment files of the node's scope.")
def hub_export(data, node_id, target, with_files) -> None:
    """Write everything a pull would give NODE_ID into one bundle encrypted to its key and signed by the hub."""
    from node.bundle_cli import size_text
    from node.sync.errors import SyncError

    from .bundles import export_bundle
    from .errors import HubError

    hub = _open(data)
    try:
        done = export_bundle(hub, node_id, Path(target), with_files=with_files)
    except (SyncError, HubError) as exc:
        _fail(f"export failed: {exc.message}")
    except OSError as exc:
        _fail(f"export failed: cannot write {target}: {exc.strerror or exc}")
    finally:
        hub.close()
    click.echo(f"bundle for node {done['node']} ({done['unit']}) written to {target}: {done['changes']} changes, "
               f"{done['files']} files ({size_text(done['file_bytes'])}); {size_text(done['bytes'])} in all")


def register(hub_group: click.Group) -> None:
    """Add `import` and `export` to `motcua hub`."""
    hub_group.add_command(hub_import)
    hub_group.add_command(hub_export)
