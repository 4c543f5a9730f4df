"""The district administrator's pages: login, nodes (with revoke and fork alerts), forks, tokens."""

from __future__ import annotations

import functools
import json
from datetime import timedelta

from flask import Blueprint, current_app, flash, g, redirect, render_template, request, session, url_for

from node.timeutil import display

from .auth import signed_duration
from .errors import HubError, NotFound
from .hubauth import RoleRefused, is_active, roles_of
from .i18n import gettext as _
from .instance import check_password
from .tokens import KINDS, create_token, parse_scope

bp = Blueprint("views", __name__)
SKEW_WARN_MS = 5 * 60 * 1000


def hub():
    return current_app.extensions["motcua_hub"]


@bp.before_app_request
def load_user() -> None:
    username = session.get("hub_user")
    user = hub().storage.user(username) if username else None
    g.hub_user = user if is_active(user) else None  # a locked user's session ends at once
    g.hub_roles = roles_of(g.hub_user)


def login_required(view):
    """Any logged-in hub user (admin, specialist or leader)."""
    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        if g.hub_user is None:
            flash(_("Vui lòng đăng nhập."), "warning")
            return redirect(url_for("views.login", next=request.path))
        return view(*args, **kwargs)
    return wrapped


def roles_required(*roles: str):
    """A logged-in hub user holding one of `roles`; others get 403 (nothing done)."""
    def decorate(view):
        @functools.wraps(view)
        def wrapped(*args, **kwargs):
            if g.hub_user is not None and not g.hub_roles.intersection(roles):
                raise RoleRefused(_("Vai trò của bạn không được dùng trang này."))
            return view(*args, **kwargs)
        return login_required(wrapped)
    return decorate


admin_required = roles_required("admin")


@bp.route("/login", methods=["GET", "POST"])
def login():
    error = None
    if request.method == "POST":
        username = request.form.get("username", "").strip().lower()
        user = hub().storage.user(username) if username else None
        if user and is_active(user) and check_password(user["password_hash"], request.form.get("password", "")):
            session.clear()
            session["hub_user"] = username
            target = request.args.get("next", "")
            return redirect(target if target.startswith("/") and not target.startswith("//") else
                            url_for("views.home"))
        error = _("Sai tên đăng nhập hoặc mật khẩu.")
    return render_template("login.html", error=error), (401 if error else 200)


@bp.post("/logout")
def logout():
    lang = session.get("lang")
    session.clear()
    if lang:
        session["lang"] = lang
    return redirect(url_for("views.login"))


@bp.get("/")
@login_required
def home():
    if "admin" in g.hub_roles or "transfers.worklist" not in current_app.view_functions:
        return redirect(url_for("views.nodes"))
    return redirect(url_for("transfers.worklist"))


def _row(n: dict) -> dict:
    skew = n.get("clock_skew_ms")
    backlog = n.get("backlog_reported")
    return dict(n, last_seen_text=display(n["last_seen"]) if n.get("last_seen") else _("Chưa bao giờ"),
                skew_text="—" if skew is None else signed_duration(skew),
                skew_warn=skew is not None and abs(skew) > SKEW_WARN_MS,
                backlog_text="—" if backlog is None else str(backlog),
                acked=n.get("acked_seq") or 0)


@bp.get("/nodes")
@admin_required
def nodes():
    rows = [_row(n) for n in hub().storage.nodes() if n["kind"] != "hub"]
    return render_template("nodes.html", rows=rows, forks=hub().storage.forks())


@bp.post("/nodes/<node_id>/revoke")
@admin_required
def revoke(node_id: str):
    h = hub()
    if h.storage.node_record(node_id) is None or node_id == h.node_id:
        raise NotFound(f"no node {node_id}")
    h.storage.set_node_status(node_id, "revoked", now=h.now())
    flash(_("Đã thu hồi nút {node}.", node=node_id), "success")
    return redirect(url_for("views.nodes"))


@bp.get("/forks/<int:fork_id>")
@admin_required
def fork(fork_id: int):
    record = hub().storage.fork(fork_id)
    if record is None:
        raise NotFound(f"no fork #{fork_id}")
    pretty = {k: json.dumps(record[k], ensure_ascii=False, indent=2, sort_keys=True) for k in ("held", "incoming")}
    return render_template("fork.html", fork=record, pretty=pretty, detected=display(record["detected_at"]))


@bp.route("/tokens", methods=["GET", "POST"])
@admin_required
def tokens():
    h = hub()
    token, errors, form = None, {}, {"scope": "", "kind": "commune", "hours": "24"}
    if request.method == "POST":
        form = {k: request.form.get(k, form[k]).strip() for k in form}
        try:
            scope = parse_scope(form["scope"], form["kind"] if form["kind"] in KINDS else "commune")
        except HubError:
            errors["scope"] = (_("Mã cho một xã chỉ được có một đơn vị.") if "," in form["scope"]
                               else _("Cần ít nhất một mã đơn vị hợp lệ."))
        hours = int(form["hours"]) if form["hours"].isdigit() else 0
        if not 1 <= hours <= 720:
            errors["hours"] = _("Thời hạn từ 1 đến 720 giờ.")
        if not errors:
            token = create_token(h, scope, form["kind"] if form["kind"] in KINDS else "commune",
                                 timedelta(hours=hours))
    rows = [dict(t, short=t["token_hash"][:10]) for t in h.storage.tokens()]
    return render_template("tokens.html", token=token, errors=errors, form=form, rows=rows, kinds=KINDS,
                           hub_url=request.host_url.rstrip("/"), dt=display), (422 if errors else 200)
