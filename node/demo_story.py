"""The part of `motcua demo` that shows an interconnected dossier (issue 6): a resident registers her
permanent residence at the first commune; the commune sends the dossier to the police (an agency of the
hub); the commune's node pushes it; a hub specialist logs in to the hub's pages, receives it and records
the result; the commune pulls it back as "result ready" and returns it to the resident.

Everything goes the way people do it: the commune's steps through the workflow and the signed log, the
push by `motcua node sync`, the agency's steps by logging in to the hub's web pages (CSRF and all).
"""

from __future__ import annotations

import re
from pathlib import Path

import requests

from . import workflow
from .instance import Node
from .sync.state import User
from .users import Officer

AGENCY_USER = "congan"  # the hub specialist acting for the police in the demo
AGENCY = "police"  # the agency AGENCY_USER belongs to (`motcua hub add-user ... --agency police`)
AGENCY_USER_ARGS = ("--role", "specialist", "--agency", AGENCY)  # add-user's options for AGENCY_USER
PROCEDURE = "1.004222"  # permanent residence registration (interconnected with the police)


def send_to_police(node_dir: Path) -> str:
    """At the commune (its node not serving yet): receive, transfer, send to the police. Returns the code."""
    node = Node(node_dir)
    try:
        def officer(username: str) -> Officer:
            return Officer.of(User.get(User.username == username))

        staff = {role: officer(u) for u, role in (("tiepnhan", "reception"), ("chuyenvien", "specialist"))}
        d, _ = workflow.receive_dossier(node, staff["reception"], {
            "procedure_code": PROCEDURE, "applicant_name": "Hoàng Văn Thái", "applicant_id_number": "019093001122",
            "applicant_birth_date": "1993-02-14", "applicant_gender": "male",
            "applicant_address": "Xóm Gò, xã Tân Cương", "applicant_phone": "0912003004"})
        workflow.perform(node, staff["reception"], d.code, "transfer", {})
        workflow.perform(node, staff["specialist"], d.code, "send_to_agency",
                         {"agency": AGENCY, "note": "Đề nghị Công an đăng ký thường trú"})
        return d.code
    finally:
        node.close()


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    if not found:
        raise RuntimeError("no CSRF token on the hub's page")
    return found.group(1)


def police_answers(hub_url: str, code: str, password: str) -> None:
    """At the hub, as the police's specialist: log in, receive the dossier, record the result."""
    with requests.Session() as web:
        page = web.get(f"{hub_url}/login", timeout=10)
        web.post(f"{hub_url}/login", data={"username": AGENCY_USER, "password": password,
                                           "csrf_token": _csrf(page.text)}, timeout=10).raise_for_status()
        for action, params in (("agency_accept", {"note": "Đã nhận hồ sơ"}),
                               ("agency_result", {"note": "Đã đăng ký thường trú", "result_digitised": "1"})):
            page = web.get(f"{hub_url}/transfers/{code}", timeout=10)
            page.raise_for_status()
            done = web.post(f"{hub_url}/transfers/{code}/action/{action}",
                            data=dict(params, csrf_token=_csrf(page.text)), timeout=10)
            if done.status_code >= 400:
                raise RuntimeError(f"{action} at the hub answered {done.status_code}")
