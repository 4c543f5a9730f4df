"""A commune's own Decision 766 figures, their dossiers, exports and the overdue watch (node.indicators).

Leaders, administrators and reception officers see them. The unit is this node's own (its identity's unit
code); a bad period answers 400 with the message and the period picker, nothing else changes.
"""

from __future__ import annotations

from flask import Blueprint, Response, render_template, request

from .. import indicators as ind
from ..xlsx import csv_bytes, xlsx_bytes
from . import current_node
from .auth import login_required
from .i18n import gettext as _, lang

bp = Blueprint("indicators", __name__, url_prefix="/indicators")
ROLES = ("leader", "admin", "reception")


def _units() -> list[str]:
    return [current_node().identity.unit_code]


def _names() -> dict[str, str]:
    identity = current_node().identity
    return {identity.unit_code: identity.unit_name}


def _period() -> ind.Period:
    return ind.parse_period(request.args.get("from"), request.args.get("to"), current_node().now().date())


def _page_arg() -> int:
    raw = request.args.get("page", "1")
    return int(raw) if raw.isdigit() and 0 < int(raw) < 100000 else 1


def _bad(exc: ind.BadParameter):
    form = {"from": request.args.get("from", ""), "to": request.args.get("to", "")}
    return render_template("indicators/dashboard.html", error=exc.message(lang()), form=form, report=None), 400


def _form(period: ind.Period) -> dict[str, str]:
    return {"from": period.lo, "to": period.end.isoformat()}


@bp.get("/")
@login_required(*ROLES)
def dashboard():
    try:
        period = _period()
    except ind.BadParameter as exc:
        return _bad(exc)
    report = ind.compute(period, _units(), current_node().now(), names=_names())
    return render_template("indicators/dashboard.html", report=report, form=_form(period), error=None,
                           columns=ind.COLUMNS, groups=ind.GROUPS, points=ind.POINTS,
                           notes=[vi if lang() == "vi" else en for vi, en in report.notes])


@bp.get("/dossiers")
@login_required(*ROLES)
def dossiers():
    figure = request.args.get("figure", "")
    try:
        if figure not in ind.FIGURES:
            raise ind.BadParameter(f"Không có chỉ số “{figure[:40]}”.", f"No figure “{figure[:40]}”.")
        period = _period()
    except ind.BadParameter as exc:
        return _bad(exc)
    page = ind.dossiers_behind(figure, period, _units(), current_node().now(), _page_arg())
    _anchor, _cond, vi, en = ind.FIGURES[figure]
    return render_template("indicators/dossiers.html", page=page, figure=figure, title=en if lang() == "en" else vi,
                           form=_form(period), procedures=ind.procedure_names(lang()))


def _export(kind: str):
    try:
        period = _period()
    except ind.BadParameter as exc:
        return _bad(exc)
    report = ind.compute(period, _units(), current_node().now(), names=_names())
    rows = ind.table_rows(report, lang())
    stem = f"chi-so-766_{current_node().identity.unit_code}_{period.lo}_{period.end.isoformat()}"
    if kind == "csv":
        body, mime = csv_bytes(rows), "text/csv; charset=utf-8"
    else:
        body = xlsx_bytes(rows, sheet=f"{period.lo} - {period.end.isoformat()}", title=_("Chỉ số Quyết định 766"))
        mime = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    return Response(body, mimetype=mime, headers={"Content-Disposition": f'attachment; filename="{stem}.{kind}"'})


@bp.get("/export.csv")
@login_required(*ROLES)
def export_csv():
    return _export("csv")


@bp.get("/export.xlsx")
@login_required(*ROLES)
def export_xlsx():
    return _export("xlsx")


@bp.get("/watch")
@login_required(*ROLES)
def watch():
    kind = request.args.get("kind") or "all"
    if kind not in ind.WATCH_KINDS:
        return render_template("error.html", status=400, message=_("Danh sách không hợp lệ."), fields={}), 400
    now = current_node().now()
    page = ind.watch(_units(), now, kind, _page_arg())
    counts = ind.watch_counts(_units(), now).get(current_node().identity.unit_code, {})
    return render_template("indicators/watch.html", page=page, counts=counts, kind=kind, kinds=ind.WATCH_KINDS,
                           procedures=ind.procedure_names(lang()), now_text=ind.wf.horizon(now)[0])
