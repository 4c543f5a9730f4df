"""Shared test vocabulary: a node on disk, its app, officers per role, a settable clock."""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path

import pytest

from node import catalogue, users
from node.instance import Node, init_data_dir
from node.sync.state import User

PASSWORD = "mat-khau-2026"
ROLES = ("reception", "specialist", "leader", "admin")
UNIT_CODE = "000.00.19.H55"


class FakeNow:
    """A settable local clock: `clock.set("2026-03-02 09:00")`; starts on Monday 2 March 2026, 09:00."""

    def __init__(self, start: str = "2026-03-02 09:00"):
        self.value = datetime.strptime(start, "%Y-%m-%d %H:%M")

    def set(self, text: str) -> None:
        self.value = datetime.strptime(text, "%Y-%m-%d %H:%M")

    def __call__(self) -> datetime:
        return self.value


@pytest.fixture
def clock() -> FakeNow:
    return FakeNow()


def make_node_dir(path: Path) -> Path:
    """A fresh node folder with the seed catalogue, calendar and one officer per role (`<role>1`)."""
    init_data_dir(path, unit_code=UNIT_CODE, unit_name="UBND xã Tân Cương", province_name="Thái Nguyên")
    node = Node(path)
    catalogue.seed(node)
    names = {"reception": "Nguyễn Thị Hoa", "specialist": "Trần Văn Đức", "leader": "Đặng Quốc Hưng",
             "admin": "Lê Minh Tuấn"}
    for role in ROLES:
        users.create_user(node, f"{role}1", names[role], [role], PASSWORD, author="test")
    node.close()
    return path


@pytest.fixture(scope="session")
def _template_node(tmp_path_factory) -> Path:
    return make_node_dir(tmp_path_factory.mktemp("template") / "node")


@pytest.fixture
def node_dir(tmp_path, _template_node) -> Path:
    """A node data folder on disk (copied from a session template: argon2 hashing is slow)."""
    target = tmp_path / "node"
    shutil.copytree(_template_node, target)
    return target


@pytest.fixture
def node(node_dir, clock):
    n = Node(node_dir, now=clock)
    yield n
    n.close()


@pytest.fixture
def officers(node) -> dict[str, users.Officer]:
    return {role: users.Officer.of(User.get(User.username == f"{role}1")) for role in ROLES}


@pytest.fixture
def app(node_dir, clock):
    from node.web import create_app

    app = create_app({"DATA_DIR": str(node_dir), "TESTING": True, "WTF_CSRF_ENABLED": False, "NOW": clock})
    yield app
    app.extensions["motcua_node"].close()


@pytest.fixture
def client(app):
    return app.test_client()


def login(client, role: str):
    resp = client.post("/login", data={"username": f"{role}1", "password": PASSWORD})
    assert resp.status_code == 302, resp.data[:500]
    return client


@pytest.fixture
def reception_client(client):
    return login(client, "reception")


def reception_body(**over) -> dict:
    """A valid reception body for the birth registration procedure."""
    body = {
        "procedure_code": "1.001193",
        "applicant_name": "Nguyễn Thị Hương",
        "applicant_id_number": "019305001234",
        "applicant_birth_date": "2005-04-12",
        "applicant_gender": "female",
        "applicant_address": "Xóm Chợ, xã Tân Cương",
        "applicant_phone": "0912345678",
    }
    body.update(over)
    return body
