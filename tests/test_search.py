"""Finding a dossier: by name with or without diacritics, by code or its start, by ID number;
both through `queries.search` and the officers' search page."""

from __future__ import annotations

import shutil
from types import SimpleNamespace

import pytest

from conftest import UNIT_CODE, FakeNow, login, reception_body
from node import queries, workflow as wf
from node.sync.state import User, database
from node.users import Officer

PEOPLE = [
    # name, ID number, birth date, gender
    ("Nguyễn Thị Hương", "019305001234", "2005-04-12", "female"),
    ("Đặng Văn Đức", "001090012345", "1990-05-01", "male"),
    ("Nguyễn Văn Hùng", "019085004321", "1985-07-30", "male"),
    ("Trần Thị Hường", "019185007777", "1985-01-15", "female"),
]
FTS_SYNTAX = ['"', '"nguyen', "*", "huong*", "OR", "nguyen OR dang", "NOT dang", "NEAR(nguyen huong)", "NEAR(",
              "nguyen AND", "-dang", "^huong", "name:huong", "'", "(", ")", "{x}", "a+b", "%", "_", "\\", "\x00",
              "dang\"; DROP TABLE dossier; --", "Đ" * 200]


@pytest.fixture(scope="module")
def _desk(tmp_path_factory, _template_node):
    """An app with five dossiers: four received Monday 2 March 2026 (-0001..-0004), one on Tuesday.
    Built once per module: logging in costs an argon2 verification."""
    from node.web import create_app

    path = tmp_path_factory.mktemp("search") / "node"
    shutil.copytree(_template_node, path)
    clock = FakeNow()
    app = create_app({"DATA_DIR": str(path), "TESTING": True, "WTF_CSRF_ENABLED": False, "NOW": clock})
    node = app.extensions["motcua_node"]
    reception = Officer.of(User.get(User.username == "reception1"))
    codes = {}
    for name, number, birth, gender in PEOPLE:
        d, _ = wf.receive_dossier(node, reception, reception_body(
            applicant_name=name, applicant_id_number=number, applicant_birth_date=birth, applicant_gender=gender))
        codes[name] = d.code
    clock.set("2026-03-03 09:00")
    d, _ = wf.receive_dossier(node, reception, reception_body(applicant_name="Lê Văn Tám",
                                                              applicant_id_number="019080001111",
                                                              applicant_birth_date="1980-01-01",
                                                              applicant_gender="male"))
    codes[d.applicant_name] = d.code
    yield SimpleNamespace(node=node, codes=codes, client=login(app.test_client(), "reception"))
    node.close()


@pytest.fixture
def desk(_desk):
    database.initialize(_desk.node.db)  # the model proxy is global; other tests bind their own node
    return _desk


def names(text: str) -> list[str]:
    return sorted(d.applicant_name for d in queries.search(text).rows)


def page_names(desk, text: str) -> set[str]:
    resp = desk.client.get("/search", query_string={"q": text})
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    return {name for name in desk.codes if name in html}


@pytest.mark.parametrize("query,expected", [
    ("nguyen thi huong", ["Nguyễn Thị Hương"]),
    ("Nguyễn Thị Hương", ["Nguyễn Thị Hương"]),
    ("NGUYEN THI HUONG", ["Nguyễn Thị Hương"]),
    ("  nguyen   thi huong ", ["Nguyễn Thị Hương"]),
    ("dang", ["Đặng Văn Đức"]),
    ("Đặng", ["Đặng Văn Đức"]),
    ("ĐẶNG", ["Đặng Văn Đức"]),
    ("đức", ["Đặng Văn Đức"]),
    ("van duc", ["Đặng Văn Đức"]),
    ("huo", ["Nguyễn Thị Hương", "Trần Thị Hường"]),
    ("nguyen huo", ["Nguyễn Thị Hương"]),
    ("hung", ["Nguyễn Văn Hùng"]),
    ("nguyen", ["Nguyễn Thị Hương", "Nguyễn Văn Hùng"]),
    ("thi", ["Nguyễn Thị Hương", "Trần Thị Hường"]),
])
def test_name_with_or_without_diacritics(desk, query, expected):
    assert names(query) == expected
    assert page_names(desk, query) == set(expected)


def test_decomposed_input_finds_the_same(desk):
    import unicodedata

    assert names(unicodedata.normalize("NFD", "Đặng Văn Đức")) == ["Đặng Văn Đức"]


def test_full_code_and_code_prefix(desk):
    code = desk.codes["Đặng Văn Đức"]
    assert code == f"{UNIT_CODE}-260302-0002"
    assert names(code) == ["Đặng Văn Đức"]
    assert names(code.lower()) == ["Đặng Văn Đức"]
    monday = ["Nguyễn Thị Hương", "Nguyễn Văn Hùng", "Trần Thị Hường", "Đặng Văn Đức"]
    assert names(f"{UNIT_CODE}-260302") == monday
    assert names(f"{UNIT_CODE}-260302-000") == monday
    assert names(f"{UNIT_CODE}-2603") == sorted(monday + ["Lê Văn Tám"])
    assert names(f"{UNIT_CODE}-260303-0001") == ["Lê Văn Tám"]
    assert names(f"{UNIT_CODE}-260302-0009") == []
    assert page_names(desk, code) == {"Đặng Văn Đức"}
    assert page_names(desk, f"{UNIT_CODE}-260303") == {"Lê Văn Tám"}


@pytest.mark.parametrize("typed", ["019305001234", "0193 0500 1234", "019.305.001.234", " 019-305-001-234 "])
def test_id_number_with_spaces_or_dots(desk, typed):
    assert names(typed) == ["Nguyễn Thị Hương"]


def test_no_results_is_empty(desk):
    for text in ("xyz", "nguyen xyz", "", "   ", "019305009999", "999.99.99.X99-260302"):
        page = queries.search(text)
        assert (page.rows, page.total) == ([], 0), text
    assert page_names(desk, "xyz") == set()
    assert desk.client.get("/search").status_code == 200


@pytest.mark.parametrize("text", FTS_SYNTAX)
def test_search_syntax_in_the_query_is_harmless(desk, text):
    page = queries.search(text)
    assert page.total == len(page.rows) <= len(desk.codes)
    resp = desk.client.get("/search", query_string={"q": text})
    assert resp.status_code == 200


def test_operators_are_words_not_syntax(desk):
    assert names("nguyen OR dang") == []  # OR is a word to look for, not a disjunction
    assert names("NEAR(nguyen huong)") == []  # and NEAR too


def test_paging(desk):
    first = queries.search("thi", page=1, size=1)
    second = queries.search("thi", page=2, size=1)
    assert (first.total, second.total, first.pages) == (2, 2, 2)
    assert {first.rows[0].applicant_name, second.rows[0].applicant_name} == {"Nguyễn Thị Hương", "Trần Thị Hường"}


def test_search_page_needs_a_login(client):
    resp = client.get("/search", query_string={"q": "dang"})
    assert resp.status_code == 302 and "/login" in resp.headers["Location"]
