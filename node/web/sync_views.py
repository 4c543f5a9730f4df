"""The sync page, the "Sync now" button and the header badge; the background sync thread is started here.

Errors are shown in plain words: each error code of the sync (node/sync/client.py, node/sync/session.py,
node/syncer.py) maps to a Vietnamese sentence below (English twins in i18n.EN).
"""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for

from .. import syncer
from . import current_node
from .auth import login_required
from .i18n import EN, gettext as _

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
    "relay_key_mismatch": "Máy ở địa chỉ mạng nội bộ đã cấu hình không chứng minh được nó là máy của xã; chưa gửi gì "
                          "cho nó. Hãy kiểm tra lại địa chỉ (motcua node lan --url ...).",
    "relay_unknown": "Máy của xã trên mạng nội bộ chưa có trong danh sách máy của huyện mà máy này biết. Hãy đồng bộ "
                     "với máy chủ huyện một lần trước.",
    "relay_other_hub": "Máy của xã trên mạng nội bộ đăng ký với một máy chủ huyện khác; đã dừng đồng bộ.",
    "relay_out_of_scope": "Máy của xã trên mạng nội bộ phục vụ một xã nằm ngoài phạm vi của máy này.",
    "not_a_relay": "Địa chỉ mạng nội bộ đã cấu hình không phải là máy của xã.",
}
LAN_REFUSED = ("Không kết nối được máy chủ huyện, và đồng bộ với máy của xã qua mạng nội bộ không thành công "
               "({code}): {message}")
EN.update({  # the LAN relay's sentences (kept with the page that shows them)
    MESSAGES["relay_key_mismatch"]: "The machine at the configured LAN address cannot prove it is the commune's node; "
                                    "nothing was sent to it. Check the address (motcua node lan --url ...).",
    MESSAGES["relay_unknown"]: "The commune node on the LAN is not in the key registry this laptop knows yet. Sync "
                               "with the district hub once first.",
    MESSAGES["relay_other_hub"]: "The commune node on the LAN is enrolled with another district hub; sync stopped.",
    MESSAGES["relay_out_of_scope"]: "The commune node on the LAN serves a commune outside this laptop's scope.",
    MESSAGES["not_a_relay"]: "The configured LAN address is not a commune node.",
    LAN_REFUSED: "The district hub cannot be reached, and the sync with the commune node on the LAN failed "
                 "({code}): {message}",
    "Đã đồng bộ qua mạng xã": "Synced over the commune LAN",
    "Đường đồng bộ lần cuối": "Last sync path",
    "Máy chủ huyện (trực tiếp)": "District hub (direct)",
    "Máy của xã qua mạng nội bộ: {url}": "Commune node over the LAN: {url}",
    "Máy của xã trên mạng nội bộ": "Commune node on the LAN",
    "Lỗi đồng bộ qua mạng nội bộ": "LAN sync error",
    "Máy tính xách tay đã đồng bộ qua máy này": "Field laptops that synced through this node",
    "Lần cuối": "Last time",
    "Máy chủ huyện từ chối": "Refused by the hub",
    "Đã đồng bộ qua mạng xã: gửi {p} thay đổi, nhận {q} thay đổi (không kết nối được máy chủ huyện).":
        "Synced over the commune LAN: sent {p} changes, received {q} (the district hub is out of reach).",
    "{n} thay đổi liên quan đến xã khác sẽ được gửi khi kết nối được máy chủ huyện.":
        "{n} changes concerning another commune will be sent once the district hub can be reached.",
})
REFUSED = "Máy chủ huyện từ chối đồng bộ ({code}): {message}"
STATES = {
    "online": ("Đã đồng bộ", "badge t-on_time"),
    "offline": ("Mất kết nối", "badge t-due_soon"),
    "error": ("Lỗi đồng bộ", "badge t-overdue"),
    "never": ("Chưa đồng bộ", "badge"),
    "not_enrolled": ("Chưa đăng ký máy chủ", "badge"),
    "lan": ("Đã đồng bộ qua mạng xã", "badge t-due_soon"),
}


def explain(error: dict | None) -> str:
    """Plain words (in the officer's language) for a recorded sync error {code, message, ...}."""
    if not error:
        return ""
    code = str(error.get("code") or "")
    if code in MESSAGES:
        return _(MESSAGES[code])
    return _(REFUSED, code=code, message=error.get("message") or "")


def explain_lan(error: dict | None) -> str:
    """Plain words for a failed sync with the commune node's LAN relay {code, message, ...}."""
    if not error:
        return ""
    code = str(error.get("code") or "")
    if code in MESSAGES and code != "hub_unreachable":
        return _(MESSAGES[code])
    return _(LAN_REFUSED, code=code, message=error.get("message") or "")


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
    refused = {laptop: _(REFUSED, code=(e or {}).get("code", ""), message=(e or {}).get("message", ""))
               for laptop, e in info["relay_errors"].items()}
    return render_template("sync.html", s=info, state_label=_(label), state_css=css,
                           error_text=explain(info["last_error"]), skew_text=_skew_text(info["clock_skew_ms"]),
                           lan_error_text=explain_lan(info["lan_last_error"]),
                           relay_errors=refused)


@bp.route("/sync/now", methods=["POST"])
@login_required()
def sync_now():
    report = syncer.sync_once(current_node(), retries=1)
    if report.ok and report.path == "lan":
        text = _("Đã đồng bộ qua mạng xã: gửi {p} thay đổi, nhận {q} thay đổi (không kết nối được máy chủ huyện).",
                 p=report.pushed, q=report.pulled)
        if report.held_back:
            text += " " + _("{n} thay đổi liên quan đến xã khác sẽ được gửi khi kết nối được máy chủ huyện.",
                            n=report.held_back)
        flash(text, "success")
    elif report.ok:
        text = _("Đã đồng bộ: gửi {p} thay đổi, nhận {q} thay đổi, {u} tệp gửi lên, {d} tệp tải về.",
                 p=report.pushed, q=report.pulled, u=report.files_up, d=report.files_down)
        if report.repaired:
            text += " " + _("Phát hiện dữ liệu không khớp và đã tự sửa bằng cách tải lại toàn bộ.")
        flash(text, "success")
    elif report.path == "lan":
        flash(explain_lan({"code": report.error_code, "message": report.error}), "error")
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

