"""Errors become a JSON body under /api and a readable page in the UI; never a bare 500."""

from __future__ import annotations

import logging
import traceback

from flask import Flask, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from ..errors import NodeError, field_messages
from ..sync.errors import SyncError
from .i18n import gettext as _, lang

log = logging.getLogger("motcua.web")


def _wants_json() -> bool:
    return request.path.startswith("/api/")


def render_error(status: int, code: str, message: str, fields: dict | None = None, headers=None):
    if _wants_json():
        body = {"error": {"code": code, "message": message}}
        if fields:
            body["error"]["fields"] = fields
        resp = jsonify(body)
    else:
        try:
            resp = render_template("error.html", status=status, message=message, fields=fields or {})
        except Exception:  # the error page itself must never fail
            resp = f"{status}: {message}"
    from flask import make_response

    resp = make_response(resp, status)
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp


def init_app(app: Flask) -> None:
    @app.errorhandler(NodeError)
    def node_error(exc: NodeError):
        return render_error(exc.http_status, exc.code, exc.message(lang()), field_messages(exc.fields, lang()))

    @app.errorhandler(SyncError)
    def sync_error(exc: SyncError):
        return render_error(exc.http_status, exc.code, exc.message)

    @app.errorhandler(CSRFError)
    def csrf_error(exc: CSRFError):
        return render_error(400, "csrf", _("Phiên làm việc đã hết hạn, vui lòng thử lại."))

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        messages = {404: _("Không tìm thấy trang."), 403: _("Bạn không có quyền làm việc này."),
                    413: _("Tệp quá lớn."), 400: _("Yêu cầu không hợp lệ."),
                    405: _("Phương thức không được hỗ trợ cho địa chỉ này."), 401: _("Vui lòng đăng nhập."),
                    429: _("Quá nhiều yêu cầu, vui lòng thử lại sau.")}
        headers = {}
        if exc.code == 405 and exc.valid_methods:  # type: ignore[attr-defined]
            headers["Allow"] = ", ".join(exc.valid_methods)  # type: ignore[attr-defined]
        code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(exc.code or 400,
                                                                                           "bad_request")
        return render_error(exc.code or 400, code, messages.get(exc.code or 400, exc.description or ""),
                            headers=headers)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        # Log the type and place only: request bodies may hold citizens' ID numbers.
        frames = "".join(traceback.format_tb(exc.__traceback__))
        log.error("unexpected %s at %s %s\n%s", type(exc).__name__, request.method, request.path, frames)
        return render_error(500, "internal", _("Đã có lỗi, vui lòng thử lại."))
