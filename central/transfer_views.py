"""Interconnected ("liên thông") dossiers at the hub's agencies: the worklist, the dossier and its actions.

    GET  /transfers?agency=&state=waiting|received|all    dossiers communes sent to the hub's agencies
    GET  /transfers/<code>                                 one dossier: its details, history (form 05), actions
    POST /transfers/<code>/action/<name>                   agency_accept | agency_result | agency_return

A commune sends a dossier with the node's `send_to_agency` action (step "agency:<code>"); it reaches the hub
by push. A hub specialist or leader acts as the agency: the action is checked exactly as on a node
(`node.workflow.decide`: role, status, step, parameters), then written as one hub-signed `dossier.action`
change through `storage.write_change`, merged by the same code and pulled by the commune (scoped by the
dossier's unit). Hub administrators may look; only specialists and leaders act. Each specialist or leader
belongs to one agency (`hubauth.visible_agencies`, `hubauth.acting_agencies`): the worklist shows only the
dossiers sent to it, another agency's dossier answers 403, and the actions are offered and accepted only on
the agency's own dossiers. Bad input: a message, 4xx, nothing written. The applicant's ID number is never
shown here.
"""

from __future__ import annotations

from flask import Blueprint, current_app, flash, g, redirect, render_template, request, url_for

from node import workflow as wf
from node.errors import NodeError, PermissionDenied, TransitionNotAllowed
from node.sync.state import Dossier, DossierEvent, NodeRecord, Procedure
from node.timeutil import display
from node.users import Officer

from . import hubauth
from .i18n import gettext as _, lang
from .views import roles_required

bp = Blueprint("transfers", __name__)
STATES = ("waiting", "received", "all")
ACTORS = ("specialist", "leader")
LIMIT = 500


def hub():
    return current_app.extensions["motcua_hub"]


def officer(d: Dossier) -> Officer:
    """The logged-in hub user as an officer of the agencies: role AGENCY when a specialist or leader who
    acts for the agency the dossier `d` is at."""
    user = g.hub_user
    acts = hubauth.acting_agencies(user)
    found = wf.agency_of(d.step)
    allowed = found is not None and (acts is None or found[0] in acts)
    roles = frozenset({wf.AGENCY}) if allowed else frozenset()
    return Officer(user["username"], user["username"], user["full_name"] or user["username"], roles)


def _may_see(d: Dossier) -> bool:
    """Whether the user may see the dossier: every one for an administrator; for an agency's user, one at
    their agency now or sent to it before (its history holds the hand-over to the agency)."""
    scope = hubauth.visible_agencies(g.hub_user)
    if scope is None:
        return True
    found = wf.agency_of(d.step)
    if found is not None and found[0] in scope:
        return True
    names = [wf.AGENCIES[a][0] for a in scope]  # a send_to_agency event names the agency (its Vietnamese name)
    return bool(names) and DossierEvent.select().where(
        (DossierEvent.dossier_id == d.id) & (DossierEvent.action == "send_to_agency")
        & DossierEvent.to_name.in_(names)).exists()


def _other_agency() -> str:
    return _("Hồ sơ này không được gửi đến cơ quan của bạn ({agency}).",
             agency=hubauth.agency_label(hubauth.agency_of(g.hub_user), lang()) or _("chưa gắn cơ quan"))


@bp.app_context_processor
def _helpers():
    return {"has_transfers": True}


def _unit_names() -> dict[str, str]:
    names: dict[str, str] = {}
    for code, name in NodeRecord.select(NodeRecord.unit_code, NodeRecord.unit_name).where(
            NodeRecord.kind != "hub").tuples():
        if code and name:
            names.setdefault(code, name)
    return names


def _procedure_name(code: str, version: int) -> str:
    row = Procedure.get_or_none((Procedure.code == code) & (Procedure.version == version))
    if row is None:
        return code
    return row.name_en if lang() == "en" else row.name_vi


@bp.get("/transfers")
@roles_required("admin", *ACTORS)
def worklist():
    agency = request.args.get("agency", "")
    state = request.args.get("state", "waiting")
    if (agency and agency not in wf.AGENCIES) or state not in STATES:
        flash(_("Bộ lọc không hợp lệ."), "error")
        return redirect(url_for("transfers.worklist")), 303
    scope = hubauth.visible_agencies(g.hub_user)
    agencies = wf.AGENCIES if scope is None else {a: wf.AGENCIES[a] for a in scope}
    if scope is not None and not scope:  # a specialist or leader no administrator has tied to an agency yet
        return render_template("transfers/worklist.html", rows=[], agency="", state=state, states=STATES,
                               agencies={}, no_agency=True)
    if scope is not None:
        if agency and agency not in scope:
            return render_template("error.html", status=403, message=_(
                "Bạn chỉ xem được hồ sơ gửi đến cơ quan của mình ({agency}).",
                agency=hubauth.agency_label(scope[0], lang()))), 403
        agency = scope[0]
    prefix = f"agency:{agency}" if agency else "agency:"
    query = Dossier.select().where((Dossier.status == wf.PROCESSING) & Dossier.step.startswith(prefix))
    if state == "waiting":
        query = query.where(~Dossier.step.endswith(":received"))
    elif state == "received":
        query = query.where(Dossier.step.endswith(":received"))
    names = _unit_names()
    rows = []
    for d in query.order_by(Dossier.step_deadline, Dossier.code).limit(LIMIT):
        found = wf.agency_of(d.step)
        rows.append({"code": d.code, "unit": names.get(d.unit_code, d.unit_code), "applicant": d.applicant_name,
                     "procedure": _procedure_name(d.procedure_code, d.procedure_version),
                     "agency": wf.agency_label(d.step, lang()), "received": bool(found and found[1]),
                     "appointment": display(d.appointment_at) if d.appointment_at else "",
                     "deadline": display(d.step_deadline) if d.step_deadline else ""})
    return render_template("transfers/worklist.html", rows=rows, agency=agency, state=state, states=STATES,
                           agencies=agencies, no_agency=False)


def _dossier_page(code: str, status: int = 200, errors: dict[str, str] | None = None):
    d = Dossier.get_or_none(Dossier.code == code)
    if d is None:
        return render_template("error.html", status=404, message=_("Không tìm thấy hồ sơ {code}.", code=code)), 404
    if not _may_see(d):
        return render_template("error.html", status=403, message=_other_agency()), 403
    events = list(DossierEvent.select().where(DossierEvent.dossier_id == d.id).order_by(DossierEvent.hlc))
    return render_template(
        "transfers/dossier.html", d=d, events=events, actions=wf.allowed_actions(officer(d), d), wf=wf,
        unit=_unit_names().get(d.unit_code, d.unit_code), agency=wf.agency_label(d.step, lang()),
        procedure=_procedure_name(d.procedure_code, d.procedure_version), dt=display, errors=errors or {},
        status_label=wf.status_label), status


@bp.get("/transfers/<code>")
@roles_required("admin", *ACTORS)
def dossier(code: str):
    return _dossier_page(code)


@bp.post("/transfers/<code>/action/<name>")
@roles_required(*ACTORS)
def act(code: str, name: str):
    if name not in wf.AGENCY_ACTIONS:
        return _refused(code, _("Thao tác này không làm ở trung tâm."), 404)
    params = {k: v for k, v in request.form.items() if k != "csrf_token"}
    h = hub()
    try:
        with h.storage.transaction():
            d = wf.get_dossier(code)
            found = wf.agency_of(d.step)
            if found is None:
                raise TransitionNotAllowed("Hồ sơ không ở cơ quan liên thông.", "The dossier is not at an agency.")
            acts = hubauth.acting_agencies(g.hub_user)
            if acts is not None and found[0] not in acts:  # checked in the transaction: nothing written
                mine = hubauth.agency_of(g.hub_user)
                raise PermissionDenied(
                    f"Hồ sơ này ở {wf.AGENCIES[found[0]][0]}; bạn chỉ xử lý hồ sơ của "
                    f"{wf.AGENCIES[mine][0] if mine in wf.AGENCIES else 'cơ quan mình (chưa gắn cơ quan)'}.",
                    f"The dossier is at {wf.AGENCIES[found[0]][1]}; you act only for "
                    f"{wf.AGENCIES[mine][1] if mine in wf.AGENCIES else 'your own agency (none set)'}.")
            who = officer(d)
            unit = f"{wf.agency_label(d.step)} – {h.identity.name}"
            payload = wf.decide(who, d, name, params, h.now(), None, unit)
            change = h.storage.write_change("dossier", d.id, "action", payload, author=who.id)
    except NodeError as exc:
        message = exc.message(lang())
        if exc.fields:
            message += " " + " ".join(exc.fields.values())
        return _refused(code, message, exc.http_status, exc.fields)
    after = Dossier.get_by_id(d.id)
    if after.status_version != f"{change['hlc']}~{change['node_id']}":
        flash(_("Đã ghi nhưng chưa được áp dụng: hồ sơ đã thay đổi ở nơi khác."), "warning")
    else:
        flash(_("Đã lưu."), "success")
    if name == "agency_accept":
        return redirect(url_for("transfers.dossier", code=code), 303)
    return redirect(url_for("transfers.worklist"), 303)


def _refused(code: str, message: str, status: int, errors: dict[str, str] | None = None):
    flash(message, "error")
    if Dossier.get_or_none(Dossier.code == code) is None:
        return render_template("error.html", status=404, message=message), 404
    return _dossier_page(code, status, errors)
