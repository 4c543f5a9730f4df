"""The node's web UI and JSON API: `create_app(config=None)`.

Config layers: defaults -> MOTCUA_* environment variables -> the mapping passed in (tests).
"""

from __future__ import annotations

import os
from typing import Any

from flask import Flask
from flask_wtf.csrf import CSRFProtect

from .. import timeutil, workflow
from ..instance import Node, data_dir
from . import i18n

DEFAULTS: dict[str, Any] = {
    "DATA_DIR": None,  # the node's data folder (else $MOTCUA_DATA, else ./instance)
    "MAX_UPLOAD_MB": 10,  # largest single scan accepted
    "MAX_CONTENT_LENGTH": 64 * 1024 * 1024,  # whole request, several scans
    "PAGE_SIZE": 50,  # rows per worklist page
    "API_TOKEN_HOURS": 12,  # lifetime of an API bearer token
    "PUBLIC_URL": "",  # base URL printed in receipts' QR codes (default: the URL the officer uses)
    "NOW": None,  # a callable returning local time, for tests and demos
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
    "WTF_CSRF_TIME_LIMIT": None,
    "SYNC_BACKGROUND": True,  # sync with the hub in a background thread (when enrolled)
    "SYNC_INTERVAL": 30,  # seconds between background syncs (also ~2 s after a local write)
}
HELP = {
    "DATA_DIR": "Data folder of the node (key, database, files).",
    "MAX_UPLOAD_MB": "Largest single uploaded scan, in megabytes.",
    "MAX_CONTENT_LENGTH": "Largest request body, in bytes.",
    "PAGE_SIZE": "Rows per page in worklists and search results.",
    "API_TOKEN_HOURS": "Hours an API bearer token stays valid.",
    "PUBLIC_URL": "Base URL printed in the QR code of receipts.",
    "SYNC_BACKGROUND": "Sync with the hub in the background when the node is enrolled (0 to turn off).",
    "SYNC_INTERVAL": "Seconds between background syncs with the hub.",
}
csrf = CSRFProtect()


def create_app(config: dict[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    app.config.from_mapping(DEFAULTS)
    for key in DEFAULTS:
        env = os.environ.get(f"MOTCUA_{key}")
        if env is not None and key not in ("NOW",):
            app.config[key] = int(env) if isinstance(DEFAULTS[key], int) and env.isdigit() else env
    app.config.from_mapping(config or {})
    node = Node(data_dir(app.config["DATA_DIR"]), now=app.config["NOW"])
    app.extensions["motcua_node"] = node
    app.secret_key = node.secret
    csrf.init_app(app)

    app.before_request(i18n.pick_language)
    app.jinja_env.globals.update(
        _=i18n.gettext, lang=i18n.lang, status_label=workflow.status_label, STATUSES=workflow.STATUSES,
        has_endpoint=lambda name: name in app.view_functions, dt=timeutil.display, d=timeutil.display_date,
        wf=workflow, identity=node.identity,
    )
    app.jinja_env.filters["money"] = lambda v: f"{int(v or 0):,}".replace(",", ".") + " đ"

    from ..indicators import shared_templates
    from . import auth, errors, views

    auth.init_app(app)
    errors.init_app(app)
    app.register_blueprint(views.bp)
    shared_templates(app)  # the indicator charts, one copy for hub and node
    for name in ("printing", "admin", "api", "sync_views", "review_views", "relay_views", "indicator_views"):
        try:
            module = __import__(f"node.web.{name}", fromlist=["bp"])
        except ModuleNotFoundError as exc:
            if exc.name != f"node.web.{name}":
                raise
            continue
        app.register_blueprint(module.bp)
        if name == "api":
            csrf.exempt(module.bp)
    return app


def current_node() -> Node:
    from flask import current_app

    return current_app.extensions["motcua_node"]
