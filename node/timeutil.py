"""Local time of the commune: Vietnam, UTC+7, no daylight saving. Stored as text `YYYY-MM-DD HH:MM:SS`."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

VN = timezone(timedelta(hours=7), "ICT")
FMT = "%Y-%m-%d %H:%M:%S"


def now_vn() -> datetime:
    return datetime.now(VN).replace(tzinfo=None, microsecond=0)


def to_text(dt: datetime | None) -> str:
    return dt.strftime(FMT) if dt else ""


def from_text(text: str) -> datetime | None:
    if not text:
        return None
    return datetime.strptime(text[:19], FMT) if len(text) >= 19 else datetime.strptime(text, "%Y-%m-%d %H:%M")


def parse_user_datetime(text: str) -> datetime:
    """Accept `YYYY-MM-DD HH:MM`, `YYYY-MM-DDTHH:MM` (HTML inputs) or with seconds."""
    text = text.strip().replace("T", " ")
    for fmt in (FMT, "%Y-%m-%d %H:%M"):
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            continue
    raise ValueError(f"not a date and time: {text!r}")


def parse_date(text: str) -> date:
    return datetime.strptime(text.strip(), "%Y-%m-%d").date()


def display(text: str) -> str:
    """`hh:mm dd/mm/yyyy` as printed on the forms."""
    dt = from_text(text)
    return dt.strftime("%H:%M %d/%m/%Y") if dt else ""


def display_date(text: str) -> str:
    dt = from_text(text) if len(text) > 10 else (datetime.strptime(text, "%Y-%m-%d") if text else None)
    return dt.strftime("%d/%m/%Y") if dt else ""
