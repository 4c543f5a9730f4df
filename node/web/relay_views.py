"""The commune node's LAN relay for its field laptops, under /relay/v1 (node.sync.protocol's docstring).

Machine to machine: no session, no CSRF token; every request but /time is signed by the laptop and
checked against the key registry this node pulled from the hub (node/relay.py does the work). Bodies are
zstd(orjson) like the hub's; errors are always JSON `{"error": {"code", "message", "change"?}}` with a 4xx
status, and nothing is stored when a request is refused.

Turned off with LAN_RELAY=0 in the app config or $MOTCUA_LAN_RELAY=0 (every route then answers 404).
"""

from __future__ import annotations

import logging
import traceback

from flask import Blueprint, Response, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from .. import relay
from ..sync import protocol
from ..sync.errors import SyncError
from . import current_node

bp = Blueprint("relay_views", __name__, url_prefix=protocol.RELAY_API)
log = logging.getLogger("motcua.web")


@bp.record_once
def _exempt_from_csrf(state) -> None:
    from . import csrf

    csrf.exempt(bp)  # signed requests from laptops carry no CSRF token (libraries.md: exempt the sync endpoints)


def _error(status: int, code: str, message: str, change: dict | None = None) -> Response:
    body: dict = {"code": code, "message": message}
    if change:
        body["change"] = change
    resp = jsonify({"error": body})
    resp.status_code = status
    resp.headers["X-Motcua-Protocol"] = str(protocol.PROTOCOL_VERSION)
    return resp


def _packed(obj) -> Response:
    resp = Response(protocol.encode_body(obj), status=200, mimetype=protocol.MEDIA_TYPE)
    resp.headers["X-Motcua-Protocol"] = str(protocol.PROTOCOL_VERSION)
    return resp


@bp.before_request
def _enabled():
    if not relay.relay_enabled(current_app.config.get("LAN_RELAY")):
        return _error(404, "relay_disabled", "this node does not serve field laptops (LAN_RELAY is off)")
    return None


@bp.errorhandler(SyncError)
def _sync_error(exc: SyncError):
    change = None
    if exc.change_ref:
        change = {"hash": exc.change_ref}
    return _error(exc.http_status, exc.code, exc.message, change)


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException):
    return _error(exc.code or 400, "bad_request" if (exc.code or 400) < 500 else "internal",
                  exc.description or "bad request")


@bp.errorhandler(Exception)
def _unexpected(exc: Exception):
    # The type and place only: bodies hold citizens' data.
    log.error("unexpected %s at %s %s\n%s", type(exc).__name__, request.method, request.path,
              "".join(traceback.format_tb(exc.__traceback__)))
    return _error(500, "internal", "unexpected error on the commune node")


def _laptop(*, push: bool = False):
    return relay.authenticate(current_node(), request.method, request.path, request.headers,
                              request.get_data(cache=True), push=push)


@bp.get("/time")
def time_now():
    """This node's clock and identity, and the hub it is enrolled with (not signed, like the hub's)."""
    return jsonify(relay.relay_time(current_node()))


@bp.post("/sync/push")
def push():
    """A laptop's own changes: verified, stored and applied all or nothing, then relayed to the hub."""
    laptop = _laptop(push=True)
    return _packed(relay.accept_push(current_node(), laptop, request.get_data(cache=True)))


@bp.post("/sync/pull")
def pull():
    """What this node holds after the laptop's cursor (its unit and "*"), each change as signed."""
    laptop = _laptop()
    return _packed(relay.serve_pull(current_node(), laptop, request.get_data(cache=True)))


@bp.post("/sync/status")
def status():
    """What this node holds of the laptop, and a signature over the laptop's nonce."""
    laptop = _laptop()
    return _packed(relay.relay_status(current_node(), laptop, request.get_data(cache=True)))
