"""The hub's Flask app: `create_app(config=None)`, served by waitress (`motcua hub serve`).

Config layers: DEFAULTS -> MOTCUA_HUB_* environment variables -> the mapping passed in (tests).
Errors are translated only here: JSON `{"error": {"code", "message", "change"?}}` under /api/, a readable
page elsewhere; bad input is never a 500.
"""

from __future__ import annotations

import logging
import os
import traceback
from pathlib import Path
from typing import Any

from flask import Flask, jsonify, make_response, render_template, request
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import HTTPException

from node.indicators import shared_templates
from node.sync import protocol
from node.sync.errors import SyncError

from . import i18n
from .errors import HubError, Overloaded
from .instance import Hub

DATA_ENV = "MOTCUA_HUB_DATA"
DEFAULTS: dict[str, Any] = {
    "DATA_DIR": None,  # the hub's data folder (else $MOTCUA_HUB_DATA, else ./hub)
    "DATABASE_URL": None,  # overrides hub.json and $MOTCUA_HUB_DATABASE_URL
    "MAX_PUSHES_IN_FLIGHT": 8,  # more concurrent pushes than this are shed with 503 + Retry-After
    "RETRY_AFTER_SECONDS": 2,
    "MAX_CONTENT_LENGTH": protocol.MAX_BODY,  # compressed sync bodies and file chunks
    "NOW": None,  # a callable returning local time (tests)
    "NOW_MS": None,  # a callable returning the hub's clock in ms (tests)
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
    "WTF_CSRF_TIME_LIMIT": None,
    "PUBLIC_MAX_FILE_BYTES": 10 * 1024 * 1024,  # online submission (central/public_views.py)
    "PUBLIC_MAX_TOTAL_BYTES": 30 * 1024 * 1024,
    "PUBLIC_MAX_FILES": 10,
    "PUBLIC_PER_HOUR": 5,
    "PUBLIC_PER_DAY": 20,
    "PUBLIC_CHALLENGE_SECONDS": 1800,
    "TRUSTED_PROXIES": 0,  # reverse proxies in front of the hub whose X-Forwarded-For is believed (ProxyFix)
}
HELP = {
    "DATA_DIR": "Data folder of the hub (key, hub.json, database, files).",
    "DATABASE_URL": "Database URL: sqlite:///PATH or postgresql://USER@HOST/DB.",
    "MAX_PUSHES_IN_FLIGHT": "Concurrent pushes accepted before the hub answers 503 with Retry-After.",
    "RETRY_AFTER_SECONDS": "Seconds a shed client is told to wait.",
    "MAX_CONTENT_LENGTH": "Largest request body in bytes (sync bodies are compressed).",
    "PUBLIC_MAX_FILE_BYTES": "Online submission: largest scan in bytes (PDF, JPEG or PNG).",
    "PUBLIC_MAX_TOTAL_BYTES": "Online submission: largest total of the scans of one dossier, in bytes.",
    "PUBLIC_MAX_FILES": "Online submission: most scans attached to one dossier.",
    "PUBLIC_PER_HOUR": "Online submissions accepted from one client address per hour (then 429).",
    "PUBLIC_PER_DAY": "Online submissions accepted from one client address per day (then 429).",
    "PUBLIC_CHALLENGE_SECONDS": "Online submission: seconds the anti-robot question stays valid.",
    "TRUSTED_PROXIES": "Reverse proxies in front of the hub (0-5): with N > 0 the client address (the online "
                       "submission rate limit's) is the N-th from the right of X-Forwarded-For; with 0, the "
                       "default, that header is ignored.",
}
MAX_TRUSTED_PROXIES = 5
csrf = CSRFProtect()
log = logging.getLogger("motcua.hub")


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the hub app on the hub folder named by DATA_DIR (or $MOTCUA_HUB_DATA, or ./hub)."""
    app = Flask(__name__)
    app.config.from_mapping(DEFAULTS)
    for key, default in DEFAULTS.items():
        env = os.environ.get(f"MOTCUA_HUB_{key}")
        if env is not None and key not in ("NOW", "NOW_MS"):
            app.config[key] = int(env) if isinstance(default, int) and env.isdigit() else env
    app.config.from_mapping(config or {})
    _trust_proxies(app)
    path = Path(app.config["DATA_DIR"] or os.environ.get(DATA_ENV) or "hub")
    hub = Hub(path, database_url=app.config["DATABASE_URL"], now=app.config["NOW"], now_ms=app.config["NOW_MS"])
    app.extensions["motcua_hub"] = hub
    from .api import PushGate, bp as api_bp

    app.extensions["motcua_push_gate"] = PushGate(int(app.config["MAX_PUSHES_IN_FLIGHT"]),
                                                  int(app.config["RETRY_AFTER_SECONDS"]))
    app.secret_key = hub.secret
    csrf.init_app(app)
    app.before_request(i18n.pick_language)
    app.jinja_env.globals.update(_=i18n.gettext, lang=i18n.lang, hub_identity=hub.identity)

    from . import indicator_views, public_views, review_views, views

    app.register_blueprint(api_bp)
    csrf.exempt(api_bp)
    app.register_blueprint(views.bp)
    app.register_blueprint(indicator_views.bp)
    shared_templates(app)  # the indicator charts, one copy for hub and node
    app.register_blueprint(review_views.bp)
    from . import catalogue_views; app.register_blueprint(catalogue_views.bp)  # noqa: E702
    public_views.register(app)  # /nop-ho-so, /tra-cuu-ho-so: online submission and status, no login
    from . import admin_views, transfer_views

    app.register_blueprint(admin_views.bp)
    app.register_blueprint(transfer_views.bp)
    _errors(app)
    return app


def _trust_proxies(app: Flask) -> None:
    """Behind N reverse proxies (TRUSTED_PROXIES), take the client address from the N-th value from the
    right of X-Forwarded-For, which those proxies set (werkzeug's ProxyFix); never trust it by default, as a
    client may send any header."""
    value = app.config["TRUSTED_PROXIES"]
    text = str(value).strip()
    if isinstance(value, bool) or not text.isdigit() or int(text) > MAX_TRUSTED_PROXIES:
        raise HubError(f"MOTCUA_HUB_TRUSTED_PROXIES must be a whole number from 0 to {MAX_TRUSTED_PROXIES} "
                       f"(the reverse proxies in front of the hub), not {text!r}", code="bad_config")
    count = int(text)
    app.config["TRUSTED_PROXIES"] = count
    if count:
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=count, x_proto=0, x_host=0,  # type: ignore[method-assign]
                                x_port=0, x_prefix=0)


def _render(status: int, code: str, message: str, change: dict | None = None, headers: dict | None = None):
    if request.path.startswith("/api/"):
        body: dict[str, Any] = {"error": {"code": code, "message": message}}
        if change:
            body["error"]["change"] = change
        resp = make_response(jsonify(body), status)
    else:
        try:
            page = render_template("error.html", status=status, message=message)
        except Exception:  # the error page itself must never fail
            page = f"{status}: {message}"
        resp = make_response(page, status)
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp


def _errors(app: Flask) -> None:
    @app.errorhandler(HubError)
    def hub_error(exc: HubError):
        headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, Overloaded) else None
        return _render(exc.http_status, exc.code, exc.message, headers=headers)

    @app.errorhandler(SyncError)
    def sync_error(exc: SyncError):
        return _render(exc.http_status, exc.code, exc.message, getattr(exc, "change", None))

    @app.errorhandler(CSRFError)
    def csrf_error(exc: CSRFError):
        return _render(400, "csrf", i18n.gettext("Phiên làm việc đã hết hạn, vui lòng thử lại."))

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        status = exc.code or 400
        code = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}.get(status, "bad_request")
        message = {413: f"the request body is over the {protocol.MAX_BODY} byte limit",
                   404: i18n.gettext("Không tìm thấy trang.")}.get(status, exc.description or exc.name)
        headers = {}
        if status == 405 and getattr(exc, "valid_methods", None):
            headers["Allow"] = ", ".join(exc.valid_methods)  # type: ignore[attr-defined]
        return _render(status, code, message, headers=headers)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        # The type and place only: bodies may hold citizens' ID numbers.
        frames = "".join(traceback.format_tb(exc.__traceback__))
        log.error("unexpected %s at %s %s\n%s", type(exc).__name__, request.method, request.path, frames)
        return _render(500, "internal", i18n.gettext("Đã có lỗi, vui lòng thử lại."))
