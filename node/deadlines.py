"""Working-time arithmetic for one-stop-shop deadlines (domain.md §5).

Pure functions over naive local (Vietnam) datetimes: no database, no web framework.
A :class:`WorkCalendar` knows the office hours and which dates are worked; :func:`appointment`
turns a receipt time and a procedure's processing time into the due datetime written on the
appointment slip; :func:`seed_overrides` builds the initial day-off / working-day list from the
``holidays`` package (the real list is data synced from the hub).
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import holidays

DEFAULT_PERIODS = ((time(7, 0), time(11, 30)), (time(13, 30), time(17, 0)))  # one day = 480 minutes
CUTOFF = time(15, 0)

DAY_OFF = "day_off"
WORKING_DAY = "working_day"
NORMAL = "normal"
_OVERRIDE_KINDS = (DAY_OFF, WORKING_DAY, NORMAL)
_SEARCH_LIMIT = 3660  # days; guards against a calendar with no working day at all
_MINUTE = timedelta(minutes=1)


def _minutes(t: time) -> int:
    return t.hour * 60 + t.minute


class WorkCalendar:
    """Office hours plus the list of exceptional dates.

    ``overrides`` maps a date to ``"day_off"`` (a weekday not worked: holiday or notice),
    ``"working_day"`` (a Saturday/Sunday that is worked) or ``"normal"`` (no effect).
    ``periods`` are the daily opening periods, ``(start, end)`` pairs in order; a period
    contains its start and excludes its end.
    """

    def __init__(self, overrides: dict[date, str] | None = None, periods=DEFAULT_PERIODS):
        self.overrides = dict(overrides or {})
        bad = {k for k in self.overrides.values() if k not in _OVERRIDE_KINDS}
        if bad:
            raise ValueError(f"unknown override kind(s): {sorted(bad)}")
        self.periods = tuple((start, end) for start, end in periods)
        if not self.periods:
            raise ValueError("at least one working period is required")
        previous_end = time(0, 0)
        for start, end in self.periods:
            if not previous_end <= start < end:
                raise ValueError("periods must be ordered, non-empty and non-overlapping")
            previous_end = end
        self.minutes_per_day: int = sum(_minutes(end) - _minutes(start) for start, end in self.periods)

    def is_working_day(self, d: date) -> bool:
        """Mon–Fri unless overridden as a day off; Sat/Sun only when overridden as a working day."""
        kind = self.overrides.get(d, NORMAL)
        if d.weekday() < 5:
            return kind != DAY_OFF
        return kind == WORKING_DAY

    def next_working_day(self, d: date) -> date:
        """First working day strictly after ``d``."""
        for _ in range(_SEARCH_LIMIT):
            d += timedelta(days=1)
            if self.is_working_day(d):
                return d
        raise ValueError(f"no working day within {_SEARCH_LIMIT} days after {d}")

    def opening(self, d: date) -> datetime:
        """Start of the first period of day ``d``."""
        return datetime.combine(d, self.periods[0][0])

    def closing(self, d: date) -> datetime:
        """End of the last period of day ``d``."""
        return datetime.combine(d, self.periods[-1][1])

    def start_of_counting(self, dt: datetime) -> datetime:
        """The moment counting starts for something received at ``dt``.

        Inside a period: ``dt`` itself. Before opening or at lunch: the next period's start the same
        day. After closing, or on a day off: the first opening of the next working day.
        """
        d = dt.date()
        if self.is_working_day(d):
            t = dt.time()
            for start, end in self.periods:
                if t < start:
                    return datetime.combine(d, start)
                if t < end:
                    return dt
        return self.opening(self.next_working_day(d))

    def add_working_minutes(self, dt: datetime, minutes: int) -> datetime:
        """``dt`` plus ``minutes`` of working time, counted from :meth:`start_of_counting`.

        When the minutes run out exactly at the end of a period, that end (e.g. 11:30 or 17:00) is
        returned, never the next opening. Whole days are skipped in one step.
        """
        if minutes < 0:
            raise ValueError("minutes must be >= 0")
        cur = self.start_of_counting(dt)
        remaining = timedelta(minutes=minutes)
        day_length = timedelta(minutes=self.minutes_per_day)
        while True:
            d = cur.date()
            for start, end in self.periods:
                start_dt, end_dt = datetime.combine(d, start), datetime.combine(d, end)
                if end_dt <= cur:
                    continue
                begin = max(cur, start_dt)
                if remaining <= end_dt - begin:
                    return begin + remaining
                remaining -= end_dt - begin
            # The current day is used up: skip whole working days, then finish inside the last one.
            d = self.next_working_day(d)
            while remaining > day_length:
                remaining -= day_length
                d = self.next_working_day(d)
            cur = self.opening(d)

    def _worked_on(self, d: date, lo: datetime, hi: datetime) -> timedelta:
        """Working time of day ``d`` falling inside ``[lo, hi)``."""
        total = timedelta(0)
        if not self.is_working_day(d):
            return total
        for start, end in self.periods:
            begin = max(lo, datetime.combine(d, start))
            finish = min(hi, datetime.combine(d, end))
            if finish > begin:
                total += finish - begin
        return total

    def working_minutes_between(self, a: datetime, b: datetime) -> int:
        """Whole working minutes in ``[a, b)``; 0 when ``b <= a``."""
        if b <= a:
            return 0
        total = timedelta(0)
        d = a.date()
        while d <= b.date():
            total += self._worked_on(d, a, b)
            d += timedelta(days=1)
        return total // _MINUTE


def appointment(
    received: datetime, time_kind: str, time_value: int, cutoff_15h: bool, cal: WorkCalendar
) -> datetime:
    """Due datetime for a dossier received at ``received``.

    ``time_kind``:

    * ``"same_day"``: closing of the day counting starts. With ``cutoff_15h`` (civil status,
      certification), a dossier received on a working day at or after 15:00 and before closing is due
      at closing of the next working day. ``time_value`` is ignored.
    * ``"working_days"``: ``time_value`` whole working days of working time, so the time of day is
      kept ("3 working days from Monday 10:00 is Thursday 10:00").
    * ``"calendar_days"``: ``time_value`` calendar days after the start of counting, same time of
      day; if that date is not worked, the next working day at that time.

    Any other kind raises ``ValueError``.
    """
    if time_kind == "same_day":
        d = received.date()
        if cutoff_15h and cal.is_working_day(d) and CUTOFF <= received.time() and received < cal.closing(d):
            return cal.closing(cal.next_working_day(d))
        return cal.closing(cal.start_of_counting(received).date())
    if time_kind == "working_days":
        return cal.add_working_minutes(received, time_value * cal.minutes_per_day)
    if time_kind == "calendar_days":
        start = cal.start_of_counting(received)
        due = start + timedelta(days=time_value)
        if not cal.is_working_day(due.date()):
            due = datetime.combine(cal.next_working_day(due.date()), due.time())
        return due
    raise ValueError(f"unknown time_kind: {time_kind!r}")


def seed_overrides(years=range(2024, 2028)) -> dict[date, tuple[str, str]]:
    """Initial calendar exceptions from the ``holidays`` package (country VN, Vietnamese names).

    Returns ``{date: (kind, name)}``: every holiday falling on a weekday is ``("day_off", name)``
    (holidays on a weekend are already off; the package adds their substitute weekday); every
    Saturday/Sunday the package marks as worked is ``("working_day", "Làm bù")``.
    """
    years = list(years)
    vn = holidays.country_holidays("VN", years=years, language="vi")
    seeded: dict[date, tuple[str, str]] = {}
    for d, name in sorted(vn.items()):
        if d.weekday() < 5:
            seeded[d] = (DAY_OFF, name)
    for d in sorted(vn.weekend_workdays):
        # weekend_workdays is class-wide data: keep only the requested years.
        if d.year in years and d.weekday() >= 5 and vn.is_working_day(d):
            seeded[d] = (WORKING_DAY, vn.get(d) or "Làm bù")
    return seeded
