"""The sync page, the "Sync now" button and the header badge; the background sync thread is started here.

Errors are shown in plain words: each error code of the sync (node/sync/client.py, node/sync/session.py,
node/syncer.py) maps to a Vietnamese sentence below (English twins in i18n.EN).
"""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for

from .. import syncer
from . import current_node
from .auth import login_required
from .i18n import gettext as _

bp = Blueprint("sync_views", __name__)

MESSAGES = {
    "hub_unreachable": "Không kết nối được máy chủ huyện. Mọi thay đổi vẫn được lưu trên máy này và sẽ tự gửi đi "
                       "khi có mạng trở lại.",
    "unknown_node": "Máy chủ huyện không nhận ra máy này (chưa đăng ký hoặc đăng ký đã bị xoá). Cần đăng ký lại "
                    "bằng mã đăng ký mới.",
    "node_revoked": "Máy chủ huyện đã thu hồi quyền đồng bộ của máy này. Hãy liên hệ quản trị viên cấp huyện.",
    "node_quarantined": "Máy chủ huyện đang cách ly máy này sau khi phát hiện hai phiên bản khác nhau của cùng một "
                        "thay đổi. Hãy liên hệ quản trị viên cấp huyện.",
    "fork": "Máy chủ huyện đã cách ly máy này: nhật ký thay đổi trên máy khác với bản máy chủ đang giữ (thường do "
            "khôi phục từ bản sao lưu cũ). Đừng nhập thêm hồ sơ trên máy này; hãy liên hệ quản trị viên cấp huyện "
            "và đăng ký lại máy như một máy mới.",
    "clock_skew": "Đồng hồ của máy này lệch quá nhiều so với máy chủ huyện nên yêu cầu bị từ chối. Hãy chỉnh lại "
                  "ngày giờ của máy.",
    "hub_key_mismatch": "Máy chủ trả lời bằng một khoá khác với khoá đã ghi nhận khi đăng ký. Đã dừng đồng bộ để "
                        "bảo vệ dữ liệu; hãy liên hệ quản trị viên cấp huyện.",
    "digest_mismatch": "Dữ liệu trên máy này vẫn không khớp với máy chủ huyện sau khi đã tải lại toàn bộ. Hãy báo "
                       "quản trị viên cấp huyện.",
    "busy": "Đang có một lượt đồng bộ khác chạy; hãy thử lại sau ít phút.",
    "not_enrolled": "Máy này chưa đăng ký với máy chủ huyện.",
    "bad_signature": "Máy chủ huyện không xác thực được chữ ký của máy này.",
    "internal_error": "Có lỗi trên máy này khi đồng bộ; hãy báo quản trị viên.",
}
REFUSED = "Máy chủ huyện từ chối đồng bộ ({code}): {message}"
STATES = {
    "online": ("Đã đồng bộ", "badge t-on_time"),
    "offline": ("Mất kết nối", "badge t-due_soon"),
    "error": ("Lỗi đồng bộ", "badge t-overdue"),
    "never": ("Chưa đồng bộ", "badge"),
    "not_enrolled": ("Chưa đăng ký máy chủ", "badge"),
}


def explain(error: dict | None) -> str:
    """Plain words (in the officer's language) for a recorded sync error {code, message, ...}."""
    if not error:
        return ""
    code = str(error.get("code") or "")
    if code in MESSAGES:
        return _(MESSAGES[code])
    return _(REFUSED, code=code, message=error.get("message") or "")


def _skew_text(ms: int | None) -> str:
    if ms is None:
        return ""
    minutes, seconds = divmod(abs(ms) // 1000, 60)
    ahead = _("nhanh hơn") if ms > 0 else _("chậm hơn")  # skew = ours minus the hub's: positive = ahead
    return _("{m} phút {s} giây {dir} máy chủ huyện", m=minutes, s=seconds, dir=ahead)


@bp.app_context_processor
def _badge():
    def sync_badge():
        from flask import g

        if g.get("officer") is None:
            return None
        node = current_node()
        if not (node.path / syncer.HUB_FILE).exists():
            return None
        info = syncer.status(node, brief=True)
        if not info["enrolled"]:
            return None
        label, css = STATES[info["state"]]
        return {"label": _(label), "css": css, "waiting": info["changes_waiting"]}

    return {"sync_badge": sync_badge}


@bp.route("/sync")
@login_required()
def page():
    info = syncer.status(current_node())
    label, css = STATES[info["state"]]
    return render_template("sync.html", s=info, state_label=_(label), state_css=css,
                           error_text=explain(info["last_error"]), skew_text=_skew_text(info["clock_skew_ms"]))


@bp.route("/sync/now", methods=["POST"])
@login_required()
def sync_now():
    report = syncer.sync_once(current_node(), retries=1)
    if report.ok:
        text = _("Đã đồng bộ: gửi {p} thay đổi, nhận {q} thay đổi, {u} tệp gửi lên, {d} tệp tải về.",
                 p=report.pushed, q=report.pulled, u=report.files_up, d=report.files_down)
        if report.repaired:
            text += " " + _("Phát hiện dữ liệu không khớp và đã tự sửa bằng cách tải lại toàn bộ.")
        flash(text, "success")
    else:
        flash(explain({"code": report.error_code, "message": report.error}), "error")
    target = request.form.get("next", "")
    if not target.startswith("/") or target.startswith("//"):
        target = url_for("sync_views.page")
    return redirect(target)


def _truthy(value) -> bool:
    return str(value).strip().lower() not in ("0", "false", "no", "off", "")


@bp.record_once
def _start_background(state) -> None:
    """Start the background sync with the app, only for an enrolled node and when SYNC_BACKGROUND is on."""
    app = state.app
    if not _truthy(app.config.get("SYNC_BACKGROUND", True)):
        return
    node = app.extensions["motcua_node"]
    interval = float(app.config.get("SYNC_INTERVAL") or syncer.DEFAULT_INTERVAL)
    thread = syncer.start_background(node, interval=interval)
    if thread is not None:
        app.extensions["motcua_sync_thread"] = thread

