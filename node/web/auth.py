"""Logins, sessions and roles for the UI; bearer tokens for the API."""

from __future__ import annotations

import functools
from datetime import timedelta

from flask import Blueprint, Flask, flash, g, redirect, render_template, request, session, url_for
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from .. import timeutil, users
from ..errors import PermissionDenied
from ..models import LoginFailure
from . import current_node
from .i18n import gettext as _

bp = Blueprint("auth", __name__)
MAX_FAILURES, WINDOW_MINUTES = 5, 10


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    app.before_request(_load_officer)
    app.permanent_session_lifetime = timedelta(hours=10)


def _load_officer() -> None:
    g.officer = None
    uid = session.get("uid")
    if uid:
        g.officer = users.get_officer(uid)
        if g.officer is None:
            session.pop("uid", None)


def login_required(*roles: str):
    """Require a logged-in officer (and one of `roles`, if given) for a UI view."""

    def wrap(view):
        @functools.wraps(view)
        def inner(*args, **kwargs):
            if g.officer is None:
                flash(_("Vui lòng đăng nhập."), "info")
                return redirect(url_for("auth.login", next=request.full_path))
            if roles and not g.officer.has(*roles):
                raise PermissionDenied("Bạn không có quyền làm việc này.", "You are not allowed to do this.")
            return view(*args, **kwargs)

        return inner

    return wrap


def _too_many_failures(username: str) -> bool:
    since = timeutil.to_text(timeutil.now_vn() - timedelta(minutes=WINDOW_MINUTES))
    return LoginFailure.select().where((LoginFailure.username == username) & (LoginFailure.at >= since)).count() \
        >= MAX_FAILURES


@bp.route("/login", methods=["GET", "POST"])
def login():
    error = None
    if request.method == "POST":
        username = (request.form.get("username") or "").strip().lower()[:40]
        password = request.form.get("password") or ""
        node = current_node()
        if _too_many_failures(username):
            error = _("Đăng nhập sai quá nhiều lần, hãy thử lại sau ít phút.")
        else:
            officer = users.authenticate(username, password, node.identity.unit_code)
            if officer is None:
                with node.db.atomic():
                    LoginFailure.create(username=username, at=timeutil.to_text(timeutil.now_vn()))
                error = _("Sai tên đăng nhập hoặc mật khẩu.")
            else:
                lang = session.get("lang")
                session.clear()
                session["uid"] = officer.id
                session.permanent = True
                if lang:
                    session["lang"] = lang
                target = request.args.get("next") or ""
                if not target.startswith("/") or target.startswith("//"):
                    target = url_for("views.home")
                return redirect(target)
    return render_template("login.html", error=error), (401 if error else 200)


@bp.route("/logout", methods=["POST"])
def logout():
    lang = session.get("lang")
    session.clear()
    if lang:
        session["lang"] = lang
    return redirect(url_for("auth.login"))


# ---------------------------------------------------------------- API tokens

def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_node().secret, salt="motcua-api-token")


def make_token(officer: users.Officer) -> str:
    return _serializer().dumps({"uid": officer.id})


def officer_from_token(token: str, max_age_hours: int) -> users.Officer | None:
    try:
        data = _serializer().loads(token, max_age=max_age_hours * 3600)
    except (SignatureExpired, BadSignature):
        return None
    return users.get_officer(data.get("uid", "")) if isinstance(data, dict) else None
