"""The hub administrator's indicator pages: Decision 766 dashboard, drill-down, exports, overdue watch.

Every figure comes from `node.indicators` over the synced tables the hub holds. Parameters are checked
first: a bad period, unit, figure or sort answers 400 with a message and the period picker, never a 500.

    /indicators/                 dashboard: ?from=YYYY-MM-DD&to=YYYY-MM-DD&unit=&sort=&dir=
    /indicators/dossiers         the dossiers behind one figure: ?figure=&unit=&from=&to=&page=
    /indicators/export.csv|xlsx  the per-unit table (CSV: UTF-8 with BOM)
    /indicators/watch            overdue and due-soon dossiers across communes, with the apology (form 04)

`unit` is empty for all enrolled communes, `*` for the whole hub (every unit code in the dossiers), or one
unit code.
"""

from __future__ import annotations

from datetime import datetime

from flask import Blueprint, Response, render_template, request

from node import indicators as ind
from node import workflow as wf
from node.timeutil import display, display_date
from node.xlsx import csv_bytes, xlsx_bytes

from .i18n import gettext as _, lang
from .views import hub, login_required

bp = Blueprint("indicators", __name__, url_prefix="/indicators")
WHOLE_HUB = "*"


def _now() -> datetime:
    return hub().now()


def _selection() -> tuple[str, list[str] | None, dict[str, str]]:
    """(unit parameter, units to compute, unit code -> name); BadParameter for an unknown unit."""
    names = ind.unit_names()
    unit = (request.args.get("unit") or "").strip()
    if unit == WHOLE_HUB:
        return unit, None, names
    communes = ind.commune_units()
    if not unit:
        return unit, communes, names
    if unit not in names and unit not in communes:
        raise ind.BadParameter(f"Không có đơn vị mã “{unit[:40]}” trên trung tâm này.",
                               f"This hub has no unit “{unit[:40]}”.")
    return unit, [unit], names


def _period() -> ind.Period:
    return ind.parse_period(request.args.get("from"), request.args.get("to"), _now().date())


def _page_arg() -> int:
    raw = request.args.get("page", "1")
    return int(raw) if raw.isdigit() and 0 < int(raw) < 100000 else 1


def _bad(exc: ind.BadParameter, template: str = "indicators/dashboard.html", **context):
    """The page again with the message, status 400, nothing computed."""
    form = {"from": request.args.get("from", ""), "to": request.args.get("to", ""),
            "unit": request.args.get("unit", "")}
    context.setdefault("units", _unit_choices())
    return render_template(template, error=exc.message(lang()), form=form, report=None, **context), 400


def _unit_choices() -> list[tuple[str, str]]:
    names = ind.unit_names()
    return [(code, names.get(code, code)) for code in ind.commune_units()]


def _form(period: ind.Period, unit: str) -> dict[str, str]:
    return {"from": period.lo, "to": period.end.isoformat(), "unit": unit}


@bp.get("/")
@login_required
def dashboard():
    try:
        period = _period()
        unit, units, names = _selection()
        sort = request.args.get("sort") or "unit_code"
        descending = request.args.get("dir") == "desc"
        report = ind.compute(period, units, _now(), names=names, parallel=units is None or len(units) > 1)
        rows = ind.sort_rows(report, sort, descending)
    except ind.BadParameter as exc:
        return _bad(exc)
    return render_template("indicators/dashboard.html", report=report, rows=rows, form=_form(period, unit),
                           units=_unit_choices(), sort=sort, descending=descending, error=None,
                           columns=ind.COLUMNS, groups=ind.GROUPS, points=ind.POINTS, whole_hub=WHOLE_HUB, dt=display,
                           notes=[vi if lang() == "vi" else en for vi, en in report.notes])


@bp.get("/dossiers")
@login_required
def dossiers():
    figure = request.args.get("figure", "")
    try:
        if figure not in ind.FIGURES:
            raise ind.BadParameter(f"Không có chỉ số “{figure[:40]}”.", f"No figure “{figure[:40]}”.")
        period = _period()
        unit, units, names = _selection()
        page = ind.dossiers_behind(figure, period, units, _now(), _page_arg())
    except ind.BadParameter as exc:
        return _bad(exc)
    _anchor, _cond, vi, en = ind.FIGURES[figure]
    return render_template("indicators/dossiers.html", page=page, figure=figure, title=en if lang() == "en" else vi,
                           form=_form(period, unit), names=names, procedures=ind.procedure_names(lang()),
                           status_label=wf.status_label, dt=display, d=display_date)


def _export(kind: str):
    try:
        period = _period()
        unit, units, names = _selection()
        report = ind.compute(period, units, _now(), names=names, parallel=units is None or len(units) > 1)
    except ind.BadParameter as exc:
        return _bad(exc)
    rows = ind.table_rows(report, lang())
    stem = f"chi-so-766_{period.lo}_{period.end.isoformat()}"
    if kind == "csv":
        body, mime = csv_bytes(rows), "text/csv; charset=utf-8"
    else:
        body = xlsx_bytes(rows, sheet=f"{period.lo} - {period.end.isoformat()}", title=_("Chỉ số Quyết định 766"))
        mime = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    return Response(body, mimetype=mime, headers={"Content-Disposition": f'attachment; filename="{stem}.{kind}"'})


@bp.get("/export.csv")
@login_required
def export_csv():
    return _export("csv")


@bp.get("/export.xlsx")
@login_required
def export_xlsx():
    return _export("xlsx")


@bp.get("/watch")
@login_required
def watch():
    kind = request.args.get("kind") or "all"
    try:
        if kind not in ind.WATCH_KINDS:
            raise ind.BadParameter(f"Không có danh sách “{kind[:20]}”.", f"No list “{kind[:20]}”.")
        unit, units, names = _selection()
        now = _now()
        counts = ind.watch_counts(units, now)
        page = ind.watch(units, now, kind, _page_arg())
    except ind.BadParameter as exc:
        return _bad(exc, "indicators/watch.html", kinds=ind.WATCH_KINDS, kind=kind, counts={}, page=None,
                    names={})
    return render_template("indicators/watch.html", page=page, counts=counts, names=names, kind=kind,
                           kinds=ind.WATCH_KINDS, form={"unit": unit}, units=_unit_choices(), error=None,
                           procedures=ind.procedure_names(lang()), now_text=wf.horizon(now)[0],
                           status_label=wf.status_label, dt=display, whole_hub=WHOLE_HUB)
