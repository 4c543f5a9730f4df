"""Hand-checked deadline cases (domain.md §5) plus a property test."""

from datetime import date, datetime, timedelta
from functools import lru_cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.deadlines import CUTOFF, DEFAULT_PERIODS, WorkCalendar, appointment, seed_overrides


@lru_cache(maxsize=1)
def seeded_calendar() -> WorkCalendar:
    return WorkCalendar({d: kind for d, (kind, _name) in seed_overrides().items()})


PLAIN = WorkCalendar()  # weekends only, no holidays


def dt(y, m, d, hh=0, mm=0):
    return datetime(y, m, d, hh, mm)


def test_defaults():
    # 07:00-11:30 is 270 min, 13:30-17:00 is 210 min: 480 in all.
    assert PLAIN.minutes_per_day == 480
    assert CUTOFF.hour == 15 and DEFAULT_PERIODS[0][0].hour == 7
    assert PLAIN.closing(date(2025, 3, 3)) == dt(2025, 3, 3, 17)


def test_three_working_days_from_monday_10():
    # Mon 2025-03-03 10:00: 3 x 480 working minutes, same time of day -> Thu 10:00.
    assert appointment(dt(2025, 3, 3, 10), "working_days", 3, False, PLAIN) == dt(2025, 3, 6, 10)


def test_received_at_lunch_starts_at_afternoon_opening():
    # 12:00 falls between 11:30 and 13:30, so counting starts at 13:30.
    assert PLAIN.start_of_counting(dt(2025, 3, 3, 12)) == dt(2025, 3, 3, 13, 30)
    # 11:30 itself is the end of the morning period: also lunch.
    assert PLAIN.start_of_counting(dt(2025, 3, 3, 11, 30)) == dt(2025, 3, 3, 13, 30)


def test_received_before_opening_starts_at_opening():
    # 06:30 is before the 07:00 opening of a working Monday.
    assert PLAIN.start_of_counting(dt(2025, 3, 3, 6, 30)) == dt(2025, 3, 3, 7)


def test_received_after_closing_friday_starts_monday_morning():
    # Fri 2025-03-07 17:30 is after closing; Sat/Sun are off -> Mon 2025-03-10 07:00.
    assert PLAIN.start_of_counting(dt(2025, 3, 7, 17, 30)) == dt(2025, 3, 10, 7)
    # Received on Saturday: same Monday opening.
    assert PLAIN.start_of_counting(dt(2025, 3, 8, 9)) == dt(2025, 3, 10, 7)


def test_inside_a_period_counts_from_receipt():
    assert PLAIN.start_of_counting(dt(2025, 3, 3, 9, 17)) == dt(2025, 3, 3, 9, 17)


def test_same_day_with_cutoff():
    # Civil status received Mon 16:00 (after 15:00, before closing) -> next working day's 17:00.
    assert appointment(dt(2025, 3, 3, 16), "same_day", 0, True, PLAIN) == dt(2025, 3, 4, 17)
    # Friday 16:00 -> the next working day is Monday.
    assert appointment(dt(2025, 3, 7, 16), "same_day", 0, True, PLAIN) == dt(2025, 3, 10, 17)
    # Exactly 15:00 is "at or after" the cutoff.
    assert appointment(dt(2025, 3, 3, 15), "same_day", 0, True, PLAIN) == dt(2025, 3, 4, 17)
    # 14:59 is before the cutoff -> same day 17:00.
    assert appointment(dt(2025, 3, 3, 14, 59), "same_day", 0, True, PLAIN) == dt(2025, 3, 3, 17)


def test_same_day_without_cutoff():
    # No 15:00 rule: received 16:00 is still due at today's closing.
    assert appointment(dt(2025, 3, 3, 16), "same_day", 0, False, PLAIN) == dt(2025, 3, 3, 17)
    # After closing, counting starts next morning, so due that day's closing (cutoff or not).
    assert appointment(dt(2025, 3, 3, 17, 30), "same_day", 0, True, PLAIN) == dt(2025, 3, 4, 17)
    assert appointment(dt(2025, 3, 3, 17, 30), "same_day", 0, False, PLAIN) == dt(2025, 3, 4, 17)


def test_period_end_is_returned_not_next_opening():
    # Mon 07:00 + 270 min fills the morning exactly -> 11:30, not 13:30.
    assert PLAIN.add_working_minutes(dt(2025, 3, 3, 7), 270) == dt(2025, 3, 3, 11, 30)
    # Mon 07:00 + 1 day -> Mon 17:00 (not Tue 07:00).
    assert appointment(dt(2025, 3, 3, 7), "working_days", 1, False, PLAIN) == dt(2025, 3, 3, 17)
    # Zero minutes is just the start of counting.
    assert PLAIN.add_working_minutes(dt(2025, 3, 3, 12), 0) == dt(2025, 3, 3, 13, 30)


def test_seeded_2026_data():
    seed = seed_overrides()
    assert seed[date(2026, 8, 22)][0] == "working_day"
    assert seed[date(2026, 8, 31)][0] == "day_off"
    for day in range(16, 21):
        assert seed[date(2026, 2, day)][0] == "day_off"
    # Only weekdays are listed as days off, only weekends as working days.
    assert all((d.weekday() < 5) == (kind == "day_off") for d, (kind, _) in seed.items())
    assert all(d.year in range(2024, 2028) for d in seed)


def test_tet_2026():
    # Fri 13 Feb 10:00; 14-15 weekend, 16-20 Tết, 21-22 weekend; working days Mon 23, Tue 24, Wed 25.
    # Fri 10:00 -> Mon 10:00 is one day, Tue 10:00 two, Wed 10:00 three.
    cal = seeded_calendar()
    assert appointment(dt(2026, 2, 13, 10), "working_days", 3, False, cal) == dt(2026, 2, 25, 10)


def test_working_saturday_22_aug_2026():
    # Sat 22 Aug 2026 is worked (swapped with Mon 31 Aug): Fri 10:00 + 1 day -> Sat 10:00.
    cal = seeded_calendar()
    assert cal.is_working_day(date(2026, 8, 22))
    assert appointment(dt(2026, 8, 21, 10), "working_days", 1, False, cal) == dt(2026, 8, 22, 10)


def test_national_day_2026():
    # Fri 28 Aug 10:00. Sat 29 / Sun 30 weekend, Mon 31 Aug off (swap), Tue 1 and Wed 2 Sep National Day.
    # Working days after Friday: Thu 3 Sep, Fri 4 Sep. Fri 10:00 -> Thu 3 Sep 10:00 is ONE working day
    # (300 min Friday + 180 min Thursday), so 2 working days land on Fri 4 Sep 10:00, not Thu 3 Sep
    # as first suggested in the brief (that would be 1 working day).
    cal = seeded_calendar()
    assert not any(cal.is_working_day(date(2026, 8, 29) + timedelta(days=i)) for i in range(5))
    assert appointment(dt(2026, 8, 28, 10), "working_days", 1, False, cal) == dt(2026, 9, 3, 10)
    assert appointment(dt(2026, 8, 28, 10), "working_days", 2, False, cal) == dt(2026, 9, 4, 10)


def test_calendar_days_landing_on_sunday_moves_to_monday():
    # Wed 2025-03-05 10:00 + 4 calendar days = Sun 2025-03-09 10:00 -> Mon 2025-03-10 10:00.
    assert appointment(dt(2025, 3, 5, 10), "calendar_days", 4, False, PLAIN) == dt(2025, 3, 10, 10)
    # + 2 days = Fri, a working day: unchanged.
    assert appointment(dt(2025, 3, 5, 10), "calendar_days", 2, False, PLAIN) == dt(2025, 3, 7, 10)
    # Counting starts after closing: Wed 18:00 -> Thu 07:00, + 2 days = Sat -> Mon 07:00.
    assert appointment(dt(2025, 3, 5, 18), "calendar_days", 2, False, PLAIN) == dt(2025, 3, 10, 7)


def test_working_minutes_between_across_weekend():
    # Fri 16:00 -> Mon 08:00: 60 min on Friday + 60 min Monday morning; weekend counts nothing.
    assert PLAIN.working_minutes_between(dt(2025, 3, 7, 16), dt(2025, 3, 10, 8)) == 120
    # Spanning lunch: 11:00 -> 14:00 is 30 + 30.
    assert PLAIN.working_minutes_between(dt(2025, 3, 3, 11), dt(2025, 3, 3, 14)) == 60
    # Empty or reversed interval.
    assert PLAIN.working_minutes_between(dt(2025, 3, 10, 8), dt(2025, 3, 7, 16)) == 0


def test_working_day_override_on_normal_saturday():
    # Sat 2025-03-08 declared worked: Fri 10:00 + 1 day -> Sat 10:00 instead of Mon 10:00.
    cal = WorkCalendar({date(2025, 3, 8): "working_day"})
    assert cal.is_working_day(date(2025, 3, 8))
    assert not cal.is_working_day(date(2025, 3, 9))
    assert appointment(dt(2025, 3, 7, 10), "working_days", 1, False, cal) == dt(2025, 3, 8, 10)
    assert cal.next_working_day(date(2025, 3, 7)) == date(2025, 3, 8)
    # "day_off" on a weekday; "normal" changes nothing.
    cal = WorkCalendar({date(2025, 3, 4): "day_off", date(2025, 3, 5): "normal"})
    assert cal.next_working_day(date(2025, 3, 3)) == date(2025, 3, 5)


def test_invalid_input():
    with pytest.raises(ValueError):
        appointment(dt(2025, 3, 3, 10), "hours", 3, False, PLAIN)
    with pytest.raises(ValueError):
        WorkCalendar({date(2025, 3, 3): "holiday"})
    with pytest.raises(ValueError):
        PLAIN.add_working_minutes(dt(2025, 3, 3, 10), -1)


@settings(max_examples=300, deadline=None)
@given(
    received=st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2027, 12, 31, 23, 59)),
    days=st.integers(min_value=0, max_value=30),
)
def test_property_working_days(received, days):
    # Whatever the receipt time, the due time is exactly `days` working days of working time after
    # the start of counting, and it never falls on a day off.
    cal = seeded_calendar()
    due = appointment(received, "working_days", days, False, cal)
    assert cal.working_minutes_between(cal.start_of_counting(received), due) == days * 480
    assert cal.is_working_day(due.date())


@settings(max_examples=200, deadline=None)
@given(
    received=st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2027, 12, 31, 23, 59)),
    days=st.integers(min_value=0, max_value=30),
    cutoff=st.booleans(),
)
def test_property_other_kinds_never_due_on_a_day_off(received, days, cutoff):
    # Calendar-day and same-day deadlines are also never due on a day off, nor before counting starts.
    cal = seeded_calendar()
    start = cal.start_of_counting(received)
    for kind in ("calendar_days", "same_day"):
        due = appointment(received, kind, days, cutoff, cal)
        assert cal.is_working_day(due.date()) and due >= start
