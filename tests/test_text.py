"""Tests for node.text: normalisation, folding, FTS5 queries, personal ID number checks."""

from __future__ import annotations

import sqlite3
import unicodedata
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node.text import ID_MESSAGES, PROVINCE_CODES, IdCheck, check_id_number, fold, fts_query, nfc

# --- nfc -----------------------------------------------------------------------------------------------


def test_nfc_composes_and_collapses_whitespace():
    decomposed = unicodedata.normalize("NFD", "Nguyễn Thị Hương")
    assert nfc(f"  {decomposed} \t\n ") == "Nguyễn Thị Hương"
    assert nfc("Phạm\u00a0\u00a0Ngọc   Ánh") == "Phạm Ngọc Ánh"
    assert unicodedata.is_normalized("NFC", nfc(decomposed))
    assert nfc("   ") == ""


# --- fold ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Nguyễn Thị Hương", "nguyen thi huong"),
        ("ĐẶNG VĂN ĐỨC", "dang van duc"),
        ("Phạm Ngọc Ánh", "pham ngoc anh"),
        ("Đặng", "dang"),
        ("đ Đ", "d d"),
        ("  Trần   Quốc\tToản ", "tran quoc toan"),
        ("Lê Thị Ngọc Hường", "le thi ngoc huong"),
        ("Ưng Hoàng Phúc", "ung hoang phuc"),
        ("", ""),
    ],
)
def test_fold(text, expected):
    assert fold(text) == expected


@pytest.mark.parametrize("text", ["Nguyễn Thị Hương", "ĐẶNG VĂN ĐỨC", "Phạm Ngọc Ánh", "Hồ Chí Minh"])
def test_fold_same_for_nfc_and_nfd(text):
    nfc_form = unicodedata.normalize("NFC", text)
    nfd_form = unicodedata.normalize("NFD", text)
    assert nfc_form != nfd_form
    assert fold(nfc_form) == fold(nfd_form) == fold(text.upper()) == fold(text.lower())


def test_fold_double_marked_letters():
    # ễ (circumflex + tilde), ặ (breve + dot below), ộ (circumflex + dot below) each carry two marks.
    assert fold("ễ ặ ộ Ễ Ặ Ộ") == "e a o e a o"


def test_fold_casefold_mark_is_dropped():
    # "İ".casefold() is "i" + U+0307: the mark appears only after casefolding and must still go.
    assert fold("İ") == "i"


@given(st.text())
def test_fold_idempotent_and_clean(text):
    once = fold(text)
    assert fold(once) == once
    assert "đ" not in once and "Đ" not in once
    assert not any(unicodedata.combining(ch) for ch in once)
    assert not any(unicodedata.category(ch) in ("Mn", "Me") for ch in once)
    assert once == once.strip() and "  " not in once


# --- fts_query -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Nguyễn Thị Hương", '"nguyen"* AND "thi"* AND "huong"*'),
        ("đặng", '"dang"*'),
        ("  nguyen   ", '"nguyen"*'),
        ("0790-0312 hồ", '"0790"* AND "0312"* AND "ho"*'),
        ('Ng"uyen OR* (thi) NEAR', '"ng"* AND "uyen"* AND "or"* AND "thi"* AND "near"*'),
        ("", None),
        ("   ", None),
        ('"*()-:^', None),
        ("中文", None),
    ],
)
def test_fts_query(text, expected):
    assert fts_query(text) == expected


def _fts5_available() -> bool:
    try:
        con = sqlite3.connect(":memory:")
        con.execute("CREATE VIRTUAL TABLE t USING fts5(x)")
        con.close()
        return True
    except sqlite3.OperationalError:
        return False


@pytest.mark.skipif(not _fts5_available(), reason="SQLite built without FTS5")
def test_fts_query_runs_in_sqlite():
    con = sqlite3.connect(":memory:")
    try:
        con.execute("CREATE VIRTUAL TABLE people USING fts5(name)")
        names = ["Nguyễn Thị Hương", "Đặng Văn Đức", "Phạm Ngọc Ánh", "Nguyễn Văn An"]
        con.executemany("INSERT INTO people(name) VALUES (?)", [(fold(n),) for n in names])

        def search(text):
            rows = con.execute(
                "SELECT rowid FROM people WHERE people MATCH ? ORDER BY rowid", (fts_query(text),)
            ).fetchall()
            return [names[r[0] - 1] for r in rows]

        assert search("nguyen thi huong") == ["Nguyễn Thị Hương"]
        assert search("NGUYỄN") == ["Nguyễn Thị Hương", "Nguyễn Văn An"]
        assert search("dang") == ["Đặng Văn Đức"]
        assert search("ng anh") == ["Phạm Ngọc Ánh"]
        assert search('huong" OR "an') == []
    finally:
        con.close()


# --- province codes ------------------------------------------------------------------------------------


def test_province_codes():
    assert len(PROVINCE_CODES) == 63
    assert all(len(k) == 3 and k.isdigit() for k in PROVINCE_CODES)
    assert min(PROVINCE_CODES) == "001" and max(PROVINCE_CODES) == "096"
    assert PROVINCE_CODES["001"] == "Hà Nội"
    assert PROVINCE_CODES["079"] == "Hồ Chí Minh"
    assert PROVINCE_CODES["048"] == "Đà Nẵng"
    assert PROVINCE_CODES["092"] == "Cần Thơ"
    assert PROVINCE_CODES["031"] == "Hải Phòng"
    assert all(unicodedata.is_normalized("NFC", v) for v in PROVINCE_CODES.values())


# --- check_id_number -----------------------------------------------------------------------------------


def test_id_valid_with_matching_birth_date_and_gender():
    male = check_id_number("001090123456", date(1990, 5, 17), "male")
    assert male == IdCheck(ok=True, number="001090123456", errors=[], warnings=[])
    female = check_id_number("079303012345", date(2003, 1, 2), "female")
    assert female.ok and female.warnings == [] and female.errors == []


def test_id_without_birth_date_or_gender_has_no_date_warnings():
    result = check_id_number("001090123456")
    assert result.ok and result.warnings == []


def test_id_unknown_province_warns_only():
    result = check_id_number("099090123456", date(1990, 1, 1), "male")
    assert result.ok
    assert result.errors == []
    assert result.warnings == ["id.province_unknown"]


def test_id_century_mismatch_warns_only():
    # G=2 says born in the 2000s, birth date is in 1990 (same YY, same parity).
    result = check_id_number("001290123456", date(1990, 1, 1), "male")
    assert result.ok
    assert result.warnings == ["id.century"]


def test_id_year_mismatch_warns_only():
    result = check_id_number("001091123456", date(1990, 1, 1))
    assert result.ok
    assert result.warnings == ["id.year"]


def test_id_gender_mismatch_warns_only():
    result = check_id_number("001190123456", date(1990, 1, 1), "male")
    assert result.ok
    assert result.warnings == ["id.gender"]


def test_id_all_warnings_together():
    result = check_id_number("099285123456", date(1990, 1, 1), "female")
    assert result.ok
    assert result.warnings == ["id.province_unknown", "id.century", "id.year", "id.gender"]


@pytest.mark.parametrize(
    ("g", "year"),
    [
        (0, 1950),
        (1, 1999),
        (2, 2000),
        (3, 2099),
        (4, 2100),
        (5, 2150),
        (6, 2200),
        (7, 2299),
        (8, 2300),
        (9, 2399),
    ],
)
def test_id_century_digits(g, year):
    number = f"001{g}{year % 100:02d}000001"
    gender = "male" if g % 2 == 0 else "female"
    assert check_id_number(number, date(year, 6, 1), gender).warnings == []


def test_id_birth_date_outside_any_century_code_warns():
    assert check_id_number("001099123456", date(1899, 1, 1)).warnings == ["id.century"]


def test_id_unknown_gender_value_is_ignored():
    assert check_id_number("001090123456", date(1990, 1, 1), "other").warnings == []


def test_id_eleven_digits_refused():
    result = check_id_number("00109012345")
    assert not result.ok
    assert result.errors == ["id.length"]
    assert result.warnings == []


@pytest.mark.parametrize("raw", ["", "   ", "0010901234567", "12345678", "1234567890"])
def test_id_other_lengths_refused(raw):
    result = check_id_number(raw)
    assert not result.ok and result.errors == ["id.length"]


@pytest.mark.parametrize("raw", ["00109012345A", "B12345678", "abc", "001090123456x", "001/090/123456"])
def test_id_letters_refused(raw):
    result = check_id_number(raw)
    assert not result.ok and result.errors == ["id.digits"]


@pytest.mark.parametrize(
    "raw",
    [
        "001 090 123 456",
        "001.090.123.456",
        "001-090-123456",
        " 001090123456 ",
        "001\u00a0090\t123456",
        "００１０９０１２３４５６",
    ],
)
def test_id_separators_stripped(raw):
    result = check_id_number(raw, date(1990, 1, 1), "male")
    assert result.ok and result.number == "001090123456" and result.warnings == []


@pytest.mark.parametrize("raw", ["123456789", "123 456 789", "999.999.999"])
def test_id_legacy_nine_digits_ok_without_warnings(raw):
    result = check_id_number(raw, date(1950, 1, 1), "female")
    assert result.ok and result.errors == [] and result.warnings == []
    assert len(result.number) == 9


def test_id_messages_cover_every_key_in_both_languages():
    keys = {"id.length", "id.digits", "id.province_unknown", "id.century", "id.year", "id.gender"}
    assert set(ID_MESSAGES) == {"vi", "en"}
    for lang in ("vi", "en"):
        assert set(ID_MESSAGES[lang]) == keys
        assert all(
            msg.strip() and unicodedata.is_normalized("NFC", msg) for msg in ID_MESSAGES[lang].values()
        )
    assert ID_MESSAGES["vi"]["id.length"] == "Số định danh cá nhân phải có 12 chữ số (hoặc 9 chữ số CMND cũ)."


def test_id_check_is_frozen():
    result = check_id_number("123456789")
    with pytest.raises(AttributeError):
        result.ok = False  # type: ignore[misc]
