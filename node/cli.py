"""The `motcua` command line: `motcua node ...` and `motcua demo`.

Errors become one line on stderr and a non-zero exit status.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .errors import NodeError
from .instance import DATA_ENV, data_dir


def _fail(message: str) -> None:
    click.echo(f"motcua: {message}", err=True)
    sys.exit(1)


def _open_node(data):
    """The node in the data folder, or a one-line error when the folder holds none."""
    from .instance import Node

    try:
        return Node(data_dir(data))
    except NodeError as exc:
        _fail(exc.message("en"))


@click.group()
def main() -> None:
    """motcua: one-stop-shop dossiers for Vietnamese communes, offline first."""


@main.group()
def node() -> None:
    """Commands for a commune node (or a field laptop)."""


DATA_OPTION = click.option("--data", "data", type=click.Path(file_okay=False), default=None,
                           help=f"Data folder of the node (default: ${DATA_ENV} or ./instance).")


@node.command("init")
@DATA_OPTION
@click.option("--unit-code", default="000.00.01.H01", show_default=True, help="Unit code used in dossier codes.")
@click.option("--unit-name", default="UBND xã Mẫu", show_default=True, help="Name of the commune People's Committee.")
@click.option("--province", default="", help="Province name printed on forms.")
@click.option("--admin-user", default="admin", show_default=True, help="Username of the first administrator.")
@click.option("--admin-password", default=None, help="Password of the first administrator (asked if not given).")
@click.option("--sample", is_flag=True, help="Also create the sample commune: officers and about 300 dossiers.")
def node_init(data, unit_code, unit_name, province, admin_user, admin_password, sample) -> None:
    """Create a node: Ed25519 key, database, seed catalogue and calendar, first administrator."""
    from . import catalogue, sample as sample_mod, users
    from .instance import Node, init_data_dir

    path = data_dir(data)
    if (path / "node.json").exists():
        _fail(f"{path} already holds a node")
    if not sample:
        # Checked before anything is created, so a refused password leaves no half-made node behind.
        password = admin_password or click.prompt("Administrator password", hide_input=True,
                                                  confirmation_prompt=True)
        errors = users._check_fields(admin_user.strip().lower(), "Quản trị viên", ["admin"], password)
        if errors:
            _fail("The administrator is not valid: " + "; ".join(errors.values()))
    try:
        init_data_dir(path, unit_code=unit_code, unit_name=unit_name, province_name=province)
    except FileExistsError as exc:
        _fail(str(exc))
    node_ = Node(path)
    catalogue.seed(node_)
    if sample:
        creds = sample_mod.create_sample(node_)
        for username, password, role in creds:
            click.echo(f"  {role:<12} {username} / {password}")
    else:
        try:
            users.create_user(node_, admin_user, "Quản trị viên", ["admin"], password, author="system")
        except NodeError as exc:
            _fail(exc.message("en") + " " + "; ".join(exc.fields.values()))
    click.echo(f"Node {node_.node_id} ({unit_code}) created in {path}")
    node_.close()


@node.command("serve")
@DATA_OPTION
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=int, help="Port to listen on.")
@click.option("--threads", default=8, show_default=True, type=int, help="Waitress worker threads.")
def node_serve(data, host, port, threads) -> None:
    """Serve the officers' web UI and the JSON API with waitress."""
    from waitress import serve

    from .web import create_app

    try:
        app = create_app({"DATA_DIR": str(data_dir(data))})
    except NodeError as exc:
        _fail(exc.message("en"))
    click.echo(f"motcua node on http://{host}:{port}/")
    serve(app, host=host, port=port, threads=threads, ident="motcua")


@node.command("due")
@DATA_OPTION
@click.option("--procedure", "code", required=True, help="National procedure code, e.g. 1.001193.")
@click.option("--received", required=True, help='Time received, "YYYY-MM-DD HH:MM".')
def node_due(data, code, received) -> None:
    """Print the appointment (YYYY-MM-DD HH:MM) for a dossier of PROCEDURE received at RECEIVED."""
    from . import catalogue
    from .deadlines import WorkCalendar, appointment, seed_overrides
    from .instance import Node
    from .timeutil import parse_user_datetime

    try:
        when = parse_user_datetime(received)
    except ValueError:
        _fail(f'--received must look like "YYYY-MM-DD HH:MM", not {received!r}')
    path = data_dir(data)
    if (path / "node.json").exists():
        node_ = Node(path)
        try:
            proc = catalogue.procedure(code, on=when.date())
        except NodeError as exc:
            _fail(exc.message("en"))
        rule = (proc.time_kind, proc.time_value, bool(proc.cutoff_15h))
        cal = catalogue.work_calendar()
        node_.close()
    else:
        seed = {p["code"]: p for p in catalogue.SEED_PROCEDURES}
        if code not in seed:
            _fail(f"no procedure with code {code}")
        p = seed[code]
        rule = (p["time_kind"], p["time_value"], bool(p["cutoff_15h"]))
        cal = WorkCalendar({d: k for d, (k, _) in seed_overrides().items()})
    click.echo(appointment(when, *rule, cal).strftime("%Y-%m-%d %H:%M"))


@node.command("verify-log")
@DATA_OPTION
def node_verify_log(data) -> None:
    """Verify the hash chain and every signature of this node's change log."""
    from .sync import log
    from .sync.errors import SyncError

    node_ = _open_node(data)
    try:
        count = log.verify_log(node_.node_id, node_.identity.public_key)
    except SyncError as exc:
        _fail(f"change log does NOT verify: {exc.message}")
    click.echo(f"{count} changes verified: chain intact, every signature valid")


@node.command("backup")
@DATA_OPTION
@click.option("--to", "target", required=True, type=click.Path(dir_okay=False), help="File to write the copy to.")
def node_backup(data, target) -> None:
    """Copy the database with SQLite's online backup API (safe while the node runs)."""
    import apsw

    if not (data_dir(data) / "node.json").exists():
        _fail(f"{data_dir(data)} holds no node; run `motcua node init` first.")
    src = apsw.Connection(str(data_dir(data) / "motcua.db"))
    dest = apsw.Connection(target)
    with dest.backup("main", src, "main") as backup:
        while not backup.done:
            backup.step(1000)
    click.echo(f"backup written to {target}")


@node.command("add-user")
@DATA_OPTION
@click.option("--username", required=True, help="Login name.")
@click.option("--full-name", required=True, help="Full name as printed on forms.")
@click.option("--role", "roles", multiple=True, required=True,
              type=click.Choice(["reception", "specialist", "leader", "admin"]), help="Role (repeatable).")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True, help="Password (8+ chars).")
def node_add_user(data, username, full_name, roles, password) -> None:
    """Add an officer account."""
    from . import users

    node_ = _open_node(data)
    try:
        users.create_user(node_, username, full_name, list(roles), password, author="cli")
    except NodeError as exc:
        _fail(exc.message("en") + " " + "; ".join(exc.fields.values()))
    click.echo(f"user {username} added")


HINTS = {
    "fork": "The hub has quarantined this node. Do not write on it; ask the district administrator, then enroll "
            "it again as a new node (a restored backup must never reuse sequence numbers).",
    "node_quarantined": "The hub has quarantined this node; ask the district administrator.",
    "node_revoked": "The hub has revoked this node; ask the district administrator.",
    "unknown_node": "The hub does not know this node; enroll it again with a new token.",
    "hub_key_mismatch": "The hub's key differs from the one pinned at enrollment; sync refused.",
    "clock_skew": "Set this computer's date and time right.",
}


@node.command("enroll")
@DATA_OPTION
@click.option("--hub", "hub_url", required=True, help="URL of the district hub, e.g. http://10.0.0.5:9000.")
@click.option("--token", required=True, help="One-time enrollment token made by `motcua hub token`.")
def node_enroll(data, hub_url, token) -> None:
    """Register this node's public key with the hub and pin the hub's key."""
    from . import syncer
    from .sync.errors import SyncError

    node_ = _open_node(data)
    try:
        record = syncer.enroll(node_, hub_url, token)
    except (SyncError, ValueError) as exc:
        _fail(f"enrollment failed: {exc}")
    click.echo(f"Node {node_.node_id} ({record.get('unit_code', '')}) enrolled with {hub_url}; "
               f"scope {record.get('scope', '')}; hub key pinned in {node_.path / syncer.HUB_FILE}")


@node.command("sync")
@DATA_OPTION
def node_sync(data) -> None:
    """Run one sync with the hub now and print what moved (exit status 1 with the reason on failure)."""
    from . import syncer

    node_ = _open_node(data)
    report = syncer.sync_once(node_)
    if not report.ok:
        hint = HINTS.get(report.error_code or "", "")
        where = f" at stage {report.stage}" if report.stage else ""
        _fail(f"sync failed{where}: {report.error} [{report.error_code}]" + (f"\n{hint}" if hint else ""))
    click.echo(report.summary() + f" ({report.duration:.1f} s)")


@node.command("lan")
@DATA_OPTION
@click.option("--url", default=None, help="URL of the commune node this field laptop syncs with on the LAN when the "
                                          "hub cannot be reached, e.g. http://192.168.1.10:8080.")
@click.option("--off", is_flag=True, help="Forget the LAN relay: sync with the hub only.")
def node_lan(data, url, off) -> None:
    """Show or set the commune node a field laptop syncs with on the LAN ($MOTCUA_LAN_URL overrides it)."""
    from . import relay, syncer

    node_ = _open_node(data)
    if url or off:
        try:
            syncer.set_lan_url(node_, None if off else url)
        except ValueError as exc:
            _fail(str(exc))
    click.echo(f"LAN relay: {relay.lan_url(node_) or 'none (hub only)'}")


@node.command("status")
@DATA_OPTION
def node_status(data) -> None:
    """Print the node id, unit, hub, last sync, what is waiting and the clock offset to the hub."""
    from . import syncer

    info = syncer.status(_open_node(data))
    skew = info["clock_skew_ms"]
    rows = [
        ("node id", info["node_id"]),
        ("unit", f"{info['unit_code']} {info['unit_name']}"),
        ("hub", f"{info['hub_url']} ({info['hub_node_id']})" if info["enrolled"] else "not enrolled"),
        ("state", info["state"]),
        ("last sync", info["last_success"] or "never"),
        ("last attempt", info["last_attempt"] or "never"),
        ("last path", {"lan": f"LAN relay {info['lan_url']}", "hub": "hub"}.get(info["last_path"], "-")),
        ("changes waiting", info["changes_waiting"]),
        ("files waiting", info["files_waiting"]),
        ("clock skew", "unknown" if skew is None else
         f"{skew / 1000:+.1f} s (this node minus the hub)" + ("  WARNING: over 5 minutes" if info["clock_warning"]
                                                          else "")),
    ]
    if info["last_error"]:
        err = info["last_error"]
        rows.append(("last error", f"{err.get('at', '')} [{err.get('code')}] {err.get('message')}"))
    for label, value in rows:
        click.echo(f"{label + ':':<17}{value}")


@main.command("demo")
@click.option("--data", default="var/sample", show_default=True, type=click.Path(file_okay=False),
              help="Folder for the sample hub and communes (created on first use).")
@click.option("--port", default=8080, show_default=True, type=int, help="Port of the first commune (the second: +1).")
@click.option("--hub-port", default=8090, show_default=True, type=int, help="Port of the hub.")
def demo(data, port, hub_port) -> None:
    """Start a hub and two sample communes on 127.0.0.1, enrolled and syncing; print URLs and logins."""
    from . import demo as demo_mod

    demo_mod.run(Path(data), port, hub_port)


from central.cli import register as register_hub  # noqa: E402  (the hub's commands: `motcua hub ...`)

register_hub(main)

from .bundle_cli import register as register_bundles  # noqa: E402  (`motcua node export/import`)

register_bundles(node)

if __name__ == "__main__":
    main()
