"""`motcua hub ...`: the district hub's commands. Wired into node/cli.py by `register(main)`.

Errors are one line on stderr (`motcua: ...`) and a non-zero exit status.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

DATA_ENV = "MOTCUA_HUB_DATA"


def _fail(message: str) -> None:
    click.echo(f"motcua: {message}", err=True)
    sys.exit(1)


def _path(data: str | None) -> Path:
    return Path(data or os.environ.get(DATA_ENV) or "hub")


def _open(data: str | None):
    from .errors import HubError
    from .instance import Hub

    try:
        return Hub(_path(data))
    except HubError as exc:
        _fail(exc.message)
    except Exception as exc:  # a database that cannot be reached, a damaged key file
        first = str(exc).splitlines()[0] if str(exc) else ""
        _fail(f"cannot open the hub in {_path(data)}: {type(exc).__name__}: {first}")


DATA_OPTION = click.option("--data", "data", type=click.Path(file_okay=False), default=None,
                           help=f"Data folder of the hub (default: ${DATA_ENV} or ./hub).")


@click.group("hub")
def hub_group() -> None:
    """Commands for the district hub: enrollment, revocation, sync server."""


@hub_group.command("init")
@DATA_OPTION
@click.option("--name", default="Trung tâm huyện", show_default=True, help="Name of the district hub.")
@click.option("--admin-user", default="admin", show_default=True, help="Username of the first hub administrator.")
@click.option("--admin-password", default=None, help="Password of the first administrator (asked if not given).")
@click.option("--database-url", default=None,
              help="postgresql://USER@HOST/DB to use PostgreSQL (default: $MOTCUA_HUB_DATABASE_URL or "
                   "sqlite:///DATA/hub.db).")
def hub_init(data, name, admin_user, admin_password, database_url) -> None:
    """Create a hub: Ed25519 key, database, its own registry record, first administrator."""
    from .errors import HubError
    from .instance import DATABASE_ENV, init_hub

    path = _path(data)
    if (path / "hub.json").exists():
        _fail(f"{path} already holds a hub")
    password = admin_password or click.prompt("Administrator password", hide_input=True, confirmation_prompt=True)
    try:
        identity = init_hub(path, name, admin_user, password, database_url or os.environ.get(DATABASE_ENV))
    except (HubError, FileExistsError) as exc:
        _fail(getattr(exc, "message", str(exc)))
    click.echo(f"Hub {identity.node_id} ({name}) created in {path}")


@hub_group.command("serve")
@DATA_OPTION
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8090, show_default=True, type=int, help="Port to listen on.")
@click.option("--threads", default=8, show_default=True, type=int, help="Waitress worker threads.")
def hub_serve(data, host, port, threads) -> None:
    """Serve the sync API and the administrator's pages with waitress."""
    from waitress import serve

    from .app import create_app
    from .errors import HubError

    try:
        app = create_app({"DATA_DIR": str(_path(data))})
    except HubError as exc:
        _fail(exc.message)
    except Exception as exc:  # a database that cannot be reached
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        _fail(f"cannot open the hub in {_path(data)}: {type(exc).__name__}: {first}")
    click.echo(f"motcua hub on http://{host}:{port}/")
    serve(app, host=host, port=port, threads=threads, ident="motcua-hub")


@hub_group.command("token")
@DATA_OPTION
@click.option("--scope", required=True, help="Unit code the node serves; several, comma-separated, for a laptop.")
@click.option("--kind", default="commune", show_default=True, type=click.Choice(["commune", "laptop"]),
              help="A commune node (one unit) or a field laptop (several units).")
@click.option("--expires", default="24h", show_default=True, help="Validity: 30m, 24h, 7d (at most 30 days).")
def hub_token(data, scope, kind, expires) -> None:
    """Make a one-time enrollment token; prints only the token."""
    from .errors import HubError
    from .tokens import create_token, parse_expiry, parse_scope

    try:
        units, valid_for = parse_scope(scope, kind), parse_expiry(expires)
    except HubError as exc:
        _fail(exc.message)
    hub = _open(data)
    try:
        click.echo(create_token(hub, units, kind, valid_for))
    finally:
        hub.close()


@hub_group.command("revoke")
@DATA_OPTION
@click.argument("node_id")
def hub_revoke(data, node_id) -> None:
    """Revoke NODE_ID: the hub refuses its requests and changes from now on."""
    from .errors import HubError

    hub = _open(data)
    try:
        if node_id == hub.node_id:
            _fail("the hub cannot revoke itself")
        record = hub.storage.set_node_status(node_id, "revoked", now=hub.now())
    except HubError as exc:
        _fail(exc.message)
    finally:
        hub.close()
    click.echo(f"node {node_id} ({record['unit_code']}) revoked on {record['revoked_at']}")


@hub_group.command("nodes")
@DATA_OPTION
def hub_nodes(data) -> None:
    """List enrolled nodes: unit, status, last seen, acknowledged seq, backlog, clock skew, version."""
    from .auth import signed_duration

    hub = _open(data)
    try:
        rows = [n for n in hub.storage.nodes() if n["kind"] != "hub"]
    finally:
        hub.close()
    if not rows:
        click.echo("no node is enrolled yet")
        return
    header = ("NODE", "UNIT", "KIND", "STATUS", "LAST SEEN", "ACKED", "BACKLOG", "SKEW", "VERSION")
    table = [header]
    for n in rows:
        skew = n.get("clock_skew_ms")
        table.append((n["node_id"], n["unit_code"], n["kind"], n["status"], n.get("last_seen") or "never",
                      str(n.get("acked_seq") or 0),
                      "—" if n.get("backlog_reported") is None else str(n["backlog_reported"]),
                      "—" if skew is None else signed_duration(skew),
                      n.get("software_version") or "—"))
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    for r in table:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())


@hub_group.command("submit")
@DATA_OPTION
@click.option("--unit", required=True, help="Unit code of the commune that will process the dossier.")
@click.option("--procedure", "procedure", required=True, help="National procedure code, e.g. 1.001193.")
@click.option("--applicant-name", required=True, help="Applicant's full name.")
@click.option("--id-number", required=True, help="Applicant's personal ID number (12 digits).")
@click.option("--birth-date", default="", help="Applicant's date of birth, YYYY-MM-DD.")
@click.option("--address", default="", help="Applicant's address.")
@click.option("--phone", default="", help="Applicant's phone number.")
@click.option("--email", default="", help="Applicant's email address.")
@click.option("--matter", default="", help="What is asked (default: the procedure's name).")
def hub_submit(data, unit, procedure, applicant_name, id_number, birth_date, address, phone, email,
               matter) -> None:
    """Register an online dossier at the hub; it reaches the commune's node on its next pull."""
    from .errors import HubError
    from .submit import submit_dossier

    hub = _open(data)
    try:
        result = submit_dossier(hub, unit_code=unit, procedure_code=procedure, applicant_name=applicant_name,
                                id_number=id_number, birth_date=birth_date, address=address, phone=phone,
                                email=email, matter=matter)
    except HubError as exc:
        _fail(exc.message)
    finally:
        hub.close()
    for warning in result["warnings"]:
        click.echo(f"warning: {warning}", err=True)
    click.echo(result["code"])


@hub_group.command("add-user")
@DATA_OPTION
@click.argument("username")
@click.option("--full-name", required=True, help="The user's full name.")
@click.option("--role", "roles", multiple=True, required=True, type=click.Choice(["admin", "specialist", "leader"]),
              help="Role: admin (hub administrator), specialist or leader of a district/province agency; repeatable.")
@click.option("--agency", default="",
              help="The agency a specialist or leader acts for: district, province, police or social_insurance "
                   "(required for them unless they are also admin; an admin without one acts for every agency).")
@click.option("--password", default=None, help="Password, at least 8 characters (asked if not given).")
def hub_add_user(data, username, full_name, roles, agency, password) -> None:
    """Add a hub user with one or more roles (argon2id password) and, for an agency's user, the agency."""
    from node.workflow import AGENCIES

    from .hubauth import UserInvalid, add_user, check_agency

    bad = check_agency(list(roles), agency.strip())  # before asking for a password
    if bad:
        _fail(f"{bad['agency']} (agency: {', '.join(AGENCIES)})")
    password = password or click.prompt("Password", hide_input=True, confirmation_prompt=True)
    hub = _open(data)
    try:
        user = add_user(hub.storage, username, full_name, list(roles), password, agency)
    except UserInvalid as exc:
        _fail(exc.message + " " + " ".join(exc.fields.values()))
    finally:
        hub.close()
    click.echo(f"user {user['username']} added with roles {user['roles']}"
               + (f", agency {user['agency']}" if user.get("agency") else ""))


def register(main: click.Group) -> None:
    """Add `motcua hub ...` (with `motcua hub import/export`) to the main command group."""
    # Imported here, not at module level: central.bundle_cli builds on this module's options, and importing
    # either module first must work.
    from .bundle_cli import register as register_bundles

    if "import" not in hub_group.commands:
        register_bundles(hub_group)
    main.add_command(hub_group)


if __name__ == "__main__":
    register(click.Group())
    hub_group(prog_name="motcua hub")
