"""Vietnamese text helpers: normalisation, search folding, FTS5 queries and personal ID number checks.

See domain.md §8 (citizens). Stdlib only.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date

__all__ = [
    "ID_MESSAGES",
    "PROVINCE_CODES",
    "IdCheck",
    "check_id_number",
    "fold",
    "fts_query",
    "nfc",
]


def _collapse(s: str) -> str:
    """Strip surrounding whitespace and collapse inner runs of (Unicode) whitespace to one space."""
    return " ".join(s.split())


def nfc(s: str) -> str:
    """Canonical form for storing text: Unicode NFC, trimmed, inner whitespace runs collapsed to one space.

    >>> nfc("  Nguye\\u0302\\u0303n   Thị\\tHương ")
    'Nguyễn Thị Hương'
    """
    return _collapse(unicodedata.normalize("NFC", s))


def _is_mark(ch: str) -> bool:
    """True for a combining character (non-zero combining class, or a nonspacing/enclosing mark)."""
    return unicodedata.combining(ch) != 0 or unicodedata.category(ch) in ("Mn", "Me")


def fold(s: str) -> str:
    """Search key for accent- and case-insensitive matching.

    Casefold, decompose (NFD), drop combining marks, map đ to d (đ is a letter of its own, not a base
    letter plus a mark, so NFD leaves it alone) and collapse whitespace.

    >>> fold("Nguyễn Thị Hương")
    'nguyen thi huong'
    >>> fold("Đặng")
    'dang'
    """
    # Casefold first: some case foldings (e.g. "İ" -> "i" + U+0307) introduce combining marks.
    decomposed = unicodedata.normalize("NFD", s.casefold())
    stripped = "".join(ch for ch in decomposed if not _is_mark(ch))
    return _collapse(stripped.replace("đ", "d"))


_TOKEN = re.compile(r"[a-z0-9]+")


def fts_query(text: str) -> str | None:
    """An SQLite FTS5 MATCH expression for what a user typed into a search box, or None if nothing to search.

    The text is folded; every run of [a-z0-9] becomes a quoted prefix term and the terms are AND-ed, so the
    result never contains FTS5 syntax from the user. The indexed column must hold ``fold()``-ed text.

    >>> fts_query("Nguyễn Thị Hươ")
    '"nguyen"* AND "thi"* AND "huo"*'
    """
    tokens = _TOKEN.findall(fold(text))
    if not tokens:
        return None
    return " AND ".join(f'"{tok}"*' for tok in tokens)


# CCCD / personal ID number province codes (Circular 07/2016/TT-BCA, as replaced by Circular 59/2021/TT-BCA):
# "0" + the two-digit administrative code of the 63 provinces as they were before the 2025 mergers.
PROVINCE_CODES: dict[str, str] = {
    "001": "Hà Nội",
    "002": "Hà Giang",
    "004": "Cao Bằng",
    "006": "Bắc Kạn",
    "008": "Tuyên Quang",
    "010": "Lào Cai",
    "011": "Điện Biên",
    "012": "Lai Châu",
    "014": "Sơn La",
    "015": "Yên Bái",
    "017": "Hòa Bình",
    "019": "Thái Nguyên",
    "020": "Lạng Sơn",
    "022": "Quảng Ninh",
    "024": "Bắc Giang",
    "025": "Phú Thọ",
    "026": "Vĩnh Phúc",
    "027": "Bắc Ninh",
    "030": "Hải Dương",
    "031": "Hải Phòng",
    "033": "Hưng Yên",
    "034": "Thái Bình",
    "035": "Hà Nam",
    "036": "Nam Định",
    "037": "Ninh Bình",
    "038": "Thanh Hóa",
    "040": "Nghệ An",
    "042": "Hà Tĩnh",
    "044": "Quảng Bình",
    "045": "Quảng Trị",
    "046": "Thừa Thiên Huế",
    "048": "Đà Nẵng",
    "049": "Quảng Nam",
    "051": "Quảng Ngãi",
    "052": "Bình Định",
    "054": "Phú Yên",
    "056": "Khánh Hòa",
    "058": "Ninh Thuận",
    "060": "Bình Thuận",
    "062": "Kon Tum",
    "064": "Gia Lai",
    "066": "Đắk Lắk",
    "067": "Đắk Nông",
    "068": "Lâm Đồng",
    "070": "Bình Phước",
    "072": "Tây Ninh",
    "074": "Bình Dương",
    "075": "Đồng Nai",
    "077": "Bà Rịa - Vũng Tàu",
    "079": "Hồ Chí Minh",
    "080": "Long An",
    "082": "Tiền Giang",
    "083": "Bến Tre",
    "084": "Trà Vinh",
    "086": "Vĩnh Long",
    "087": "Đồng Tháp",
    "089": "An Giang",
    "091": "Kiên Giang",
    "092": "Cần Thơ",
    "093": "Hậu Giang",
    "094": "Sóc Trăng",
    "095": "Bạc Liêu",
    "096": "Cà Mau",
}

ID_MESSAGES: dict[str, dict[str, str]] = {
    "vi": {
        "id.length": "Số định danh cá nhân phải có 12 chữ số (hoặc 9 chữ số CMND cũ).",
        "id.digits": "Số định danh cá nhân chỉ được gồm các chữ số.",
        "id.province_unknown": "Ba chữ số đầu không phải là mã tỉnh, thành phố đã biết. Vui lòng kiểm tra lại.",
        "id.century": "Chữ số thứ tư (mã thế kỷ và giới tính) không khớp với năm sinh. Vui lòng kiểm tra lại.",
        "id.year": "Chữ số thứ năm và thứ sáu (năm sinh) không khớp với ngày sinh. Vui lòng kiểm tra lại.",
        "id.gender": "Chữ số thứ tư (mã giới tính) không khớp với giới tính đã khai. Vui lòng kiểm tra lại.",
    },
    "en": {
        "id.length": "The personal ID number must have 12 digits (or 9 digits for an old ID card).",
        "id.digits": "The personal ID number may contain digits only.",
        "id.province_unknown": "The first three digits are not a known province code. Please check the number.",
        "id.century": "The fourth digit (century and gender code) does not match the year of birth. "
        "Please check the number.",
        "id.year": "The fifth and sixth digits (year of birth) do not match the date of birth. "
        "Please check the number.",
        "id.gender": "The fourth digit (gender code) does not match the stated gender. Please check the number.",
    },
}

# Spaces of any kind, dots and the usual dashes people type between digit groups.
_SEPARATORS = re.compile(r"[\s.\-\u2010\u2011\u2012\u2013\u2014\u2212]+")
_DIGITS = re.compile(r"[0-9]*")


@dataclass(frozen=True)
class IdCheck:
    """Outcome of ``check_id_number``.

    ``ok`` False means refuse; ``errors`` holds the refusing message keys and ``warnings`` the keys that only
    ask the clerk to double-check (both index ``ID_MESSAGES``). ``number`` is the input with separators
    removed: the 12 or 9 digits to store when ``ok``.
    """

    ok: bool
    number: str
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def check_id_number(raw: str, birth_date: date | None = None, gender: str | None = None) -> IdCheck:
    """Validate a personal ID number (12-digit CCCD ``PPP G YY NNNNNN``) or a legacy 9-digit CMND number.

    Refuses (``id.digits``, ``id.length``) only what cannot be an ID number. There is no check digit. For a
    12-digit number it warns, never refuses, on an unknown province code (``id.province_unknown``), a century
    digit G that disagrees with ``birth_date`` (``id.century``; G 0/1 = 1900s, 2/3 = 2000s, ... 8/9 = 2300s),
    a YY that differs from the birth year (``id.year``) and a G whose parity disagrees with ``gender``
    ("male"/"female"; even G = male) (``id.gender``). Legacy 9-digit numbers get no warnings.
    """
    # NFKC turns full-width digits (from some input methods) into ASCII ones.
    number = _SEPARATORS.sub("", unicodedata.normalize("NFKC", raw or ""))
    if not _DIGITS.fullmatch(number):
        return IdCheck(ok=False, number=number, errors=["id.digits"], warnings=[])
    if len(number) == 9:
        return IdCheck(ok=True, number=number, errors=[], warnings=[])
    if len(number) != 12:
        return IdCheck(ok=False, number=number, errors=["id.length"], warnings=[])

    warnings: list[str] = []
    if number[:3] not in PROVINCE_CODES:
        warnings.append("id.province_unknown")
    g = int(number[3])
    if birth_date is not None:
        if (birth_date.year - 1900) // 100 != g // 2:
            warnings.append("id.century")
        if number[4:6] != f"{birth_date.year % 100:02d}":
            warnings.append("id.year")
    if gender in ("male", "female") and (g % 2 == 0) != (gender == "male"):
        warnings.append("id.gender")
    return IdCheck(ok=True, number=number, errors=[], warnings=warnings)
