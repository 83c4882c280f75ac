"""Tests for the cron expression parser and scheduler in typedtiger._cron."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from typing import NamedTuple

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from typedtiger._cron import CronError, CronExpression

_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")


def at(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    """An aware UTC datetime."""
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def next_run(expr: str, after: datetime) -> datetime:
    return CronExpression.parse(expr).next_after(after)


# --- known examples -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "after", "expected"),
    [
        # every five minutes
        ("*/5 * * * *", at(2024, 1, 1, 10, 0), at(2024, 1, 1, 10, 5)),
        ("*/5 * * * *", at(2024, 1, 1, 10, 3, 59), at(2024, 1, 1, 10, 5)),
        ("*/5 * * * *", at(2024, 12, 31, 23, 57), at(2025, 1, 1, 0, 0)),
        # seconds are dropped: 10:00:30 -> 10:01 at the earliest
        ("* * * * *", at(2024, 1, 1, 10, 0, 30), at(2024, 1, 1, 10, 1)),
        ("0,30 * * * *", at(2024, 1, 1, 10, 0, 30), at(2024, 1, 1, 10, 30)),
        # Sundays at 04:00 (2024-01-01 is a Monday); 0 and 7 both mean Sunday
        ("0 4 * * SUN", at(2024, 1, 1), at(2024, 1, 7, 4, 0)),
        ("0 4 * * 0", at(2024, 1, 1), at(2024, 1, 7, 4, 0)),
        ("0 4 * * 7", at(2024, 1, 1), at(2024, 1, 7, 4, 0)),
        ("0 4 * * SUN", at(2024, 1, 7, 4, 0), at(2024, 1, 14, 4, 0)),
        # once a year
        ("0 0 1 1 *", at(2024, 1, 1), at(2025, 1, 1)),
        ("0 0 1 1 *", at(2023, 12, 31, 23, 59, 59), at(2024, 1, 1)),
        # Feb 29 only in leap years; 2100 is not one
        ("0 0 29 2 *", at(2023, 3, 1), at(2024, 2, 29)),
        ("0 0 29 2 *", at(2024, 2, 29), at(2028, 2, 29)),
        ("0 0 29 2 *", at(2096, 3, 1), at(2104, 2, 29)),
        # Feb 29 that is also a Sunday (``*/7`` is unrestricted, so both must match)
        ("0 0 29 2 */7", at(2024, 1, 1), at(2032, 2, 29)),
        # aliases
        ("@hourly", at(2024, 1, 1, 10, 0, 30), at(2024, 1, 1, 11, 0)),
        ("@hourly", at(2024, 1, 1, 23, 59), at(2024, 1, 2, 0, 0)),
        ("@daily", at(2024, 1, 1, 0, 0), at(2024, 1, 2)),
        ("@midnight", at(2024, 1, 1, 12, 0), at(2024, 1, 2)),
        ("@weekly", at(2024, 1, 1), at(2024, 1, 7)),
        ("@monthly", at(2024, 1, 15), at(2024, 2, 1)),
        ("@yearly", at(2024, 6, 1), at(2025, 1, 1)),
        ("@annually", at(2024, 6, 1), at(2025, 1, 1)),
        ("@HOURLY", at(2024, 1, 1, 10, 0), at(2024, 1, 1, 11, 0)),
        # ranges, steps and lists
        ("10-30/10 * * * *", at(2024, 1, 1, 10, 30), at(2024, 1, 1, 11, 10)),
        ("5/20 * * * *", at(2024, 1, 1, 10, 25), at(2024, 1, 1, 10, 45)),
        ("5/20 * * * *", at(2024, 1, 1, 10, 45), at(2024, 1, 1, 11, 5)),
        ("0 9-17/4 * * *", at(2024, 1, 1, 13, 0), at(2024, 1, 1, 17, 0)),
        ("0 9-17/4 * * *", at(2024, 1, 1, 17, 0), at(2024, 1, 2, 9, 0)),
        ("0 0 * * MON-FRI", at(2024, 1, 5, 12, 0), at(2024, 1, 8)),  # Fri -> Mon
        ("0 0 * * 5-7", at(2024, 1, 5, 12, 0), at(2024, 1, 6)),  # Fri-Sun
        ("0 0 * * 5-7", at(2024, 1, 7, 12, 0), at(2024, 1, 12)),  # Sun -> Fri
        ("15 3 1-31/10 * *", at(2024, 2, 21, 4, 0), at(2024, 3, 1, 3, 15)),
        # month and weekday names, case-insensitive
        ("0 12 1 jan,Jul *", at(2024, 1, 1, 12, 0), at(2024, 7, 1, 12, 0)),
        ("0 12 1 Mar-may/2 *", at(2024, 3, 1, 12, 0), at(2024, 5, 1, 12, 0)),
        ("0 0 * * sat", at(2024, 1, 1), at(2024, 1, 6)),
        ("0 0 * * tue,Thu", at(2024, 1, 3), at(2024, 1, 4)),
        # day 31 skips short months
        ("0 0 31 * *", at(2024, 1, 31), at(2024, 3, 31)),
    ],
)
def test_known_examples(expr: str, after: datetime, expected: datetime) -> None:
    result = next_run(expr, after)
    assert result == expected
    assert result.tzinfo is UTC


def test_day_of_month_or_day_of_week_when_both_restricted() -> None:
    # 2024-03-13 is a Wednesday, 2024-03-15 a Friday.
    expr = "0 0 13 * FRI"
    assert next_run(expr, at(2024, 3, 9)) == at(2024, 3, 13)  # the 13th, not a Friday
    assert next_run(expr, at(2024, 3, 13)) == at(2024, 3, 15)  # a Friday, not the 13th
    assert next_run(expr, at(2024, 3, 15)) == at(2024, 3, 22)
    # Feb 29 OR any Monday of February
    assert next_run("0 0 29 2 MON", at(2025, 1, 1)) == at(2025, 2, 3)


def test_day_fields_all_must_match_when_one_is_unrestricted() -> None:
    assert next_run("0 0 13 * *", at(2024, 3, 9)) == at(2024, 3, 13)
    assert next_run("0 0 * * FRI", at(2024, 3, 9)) == at(2024, 3, 15)
    # Vixie cron: a field starting with ``*`` counts as unrestricted, so both must match here:
    # odd days (1, 3, ...) that are Fridays. 2024-03-01 is a Friday; 03-08 is even.
    assert next_run("0 0 */2 * FRI", at(2024, 3, 1)) == at(2024, 3, 15)


def test_parsed_fields() -> None:
    cron = CronExpression.parse("*/15 0-2 1,15 JAN-MAR 5-7")
    assert cron.expression == "*/15 0-2 1,15 JAN-MAR 5-7"
    assert cron.minutes == frozenset({0, 15, 30, 45})
    assert cron.hours == frozenset({0, 1, 2})
    assert cron.days_of_month == frozenset({1, 15})
    assert cron.months == frozenset({1, 2, 3})
    assert cron.days_of_week == frozenset({5, 6, 0})
    assert cron.day_of_month_restricted
    assert cron.day_of_week_restricted

    star = CronExpression.parse("  * * * * *  ")
    assert star.minutes == frozenset(range(60))
    assert star.days_of_week == frozenset(range(7))
    assert not star.day_of_month_restricted
    assert not star.day_of_week_restricted
    assert CronExpression.parse("@weekly").days_of_week == frozenset({0})


def test_other_timezones_are_converted_to_utc() -> None:
    plus_five = timezone(timedelta(hours=5))
    after = datetime(2024, 1, 1, 1, 0, tzinfo=plus_five)  # 2023-12-31 20:00 UTC
    result = next_run("0 0 * * *", after)
    assert result == at(2024, 1, 1)
    assert result.tzinfo is UTC


def test_naive_datetime_is_rejected() -> None:
    cron = CronExpression.parse("* * * * *")
    with pytest.raises(ValueError, match="timezone-aware"):
        cron.next_after(datetime(2024, 1, 1))


def test_past_the_last_year_raises_value_error() -> None:
    cron = CronExpression.parse("0 0 1 1 *")
    with pytest.raises(ValueError, match="no match"):
        cron.next_after(at(9999, 6, 1))
    with pytest.raises(ValueError, match="representable"):
        cron.next_after(datetime.max.replace(tzinfo=UTC))


# --- errors ---------------------------------------------------------------------------------


def test_error_message_names_field_and_value() -> None:
    with pytest.raises(CronError) as info:
        CronExpression.parse("61 * * * *")
    assert str(info.value) == (
        "invalid cron expression '61 * * * *': minute field value 61 out of range 0-59"
    )
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        # out of range
        ("* 24 * * *", "hour field value 24 out of range 0-23"),
        ("* * 0 * *", "day-of-month field value 0 out of range 1-31"),
        ("* * 32 * *", "day-of-month field value 32 out of range 1-31"),
        ("* * * 0 *", "month field value 0 out of range 1-12"),
        ("* * * 13 *", "month field value 13 out of range 1-12"),
        ("* * * * 8", "day-of-week field value 8 out of range 0-7"),
        ("0-60 * * * *", "minute field value 60 out of range"),
        # bad syntax
        ("a * * * *", "minute field value 'a' is not a number"),
        ("-1 * * * *", "minute field value '' is not a number"),
        ("1-2-3 * * * *", "minute field value '2-3' is not a number"),
        ("5-3 * * * *", "minute field range '5-3' starts after it ends"),
        ("*/x * * * *", "minute field step 'x' is not a number"),
        ("1/ * * * *", "minute field step '' is not a number"),
        ("*/2/3 * * * *", "minute field step '2/3' is not a number"),
        ("1,,2 * * * *", "minute field '1,,2' has an empty list item"),
        (", * * * *", "has an empty list item"),
        ("* * * FOO *", "month field value 'FOO' is not a number or name"),
        ("* * * * JAN", "day-of-week field value 'JAN' is not a number or name"),
        ("* * * MON *", "month field value 'MON' is not a number or name"),
        ("* * JAN * *", "day-of-month field value 'JAN' is not a number"),
        ("\u0661 * * * *", "is not a number"),  # non-ASCII digit
        ("@reboot", "unknown alias '@reboot'"),
        # empty, too many or too few fields
        ("", "expression is empty"),
        ("   ", "expression is empty"),
        ("* * * *", "expected 5 fields"),
        ("* * * * * *", "expected 5 fields"),
        ("*", "got 1"),
        # step 0
        ("*/0 * * * *", "minute field step must be positive"),
        ("* 1-5/0 * * *", "hour field step must be positive"),
        # impossible dates
        ("0 0 30 2 *", "never matches"),
        ("0 0 31 4,6,9,11 *", "never matches"),
        ("0 0 31 2 */2", "never matches"),
        ("0 0 30,31 FEB *", "never matches"),
    ],
)
def test_invalid_expressions(expr: str, message: str) -> None:
    with pytest.raises(CronError, match="invalid cron expression") as info:
        CronExpression.parse(expr)
    assert message in str(info.value)


def test_direct_construction_is_validated() -> None:
    fields = {
        "minutes": frozenset({0}),
        "hours": frozenset({0}),
        "days_of_month": frozenset({1}),
        "months": frozenset({1}),
        "days_of_week": frozenset({0}),
    }
    CronExpression(
        expression="ok", day_of_month_restricted=True, day_of_week_restricted=True, **fields
    )
    with pytest.raises(CronError, match="minute field selects no values"):
        CronExpression(
            expression="x",
            minutes=frozenset(),
            hours=frozenset({0}),
            days_of_month=frozenset({1}),
            months=frozenset({1}),
            days_of_week=frozenset({0}),
            day_of_month_restricted=True,
            day_of_week_restricted=False,
        )
    with pytest.raises(CronError, match="day-of-week field value 7 out of range 0-6"):
        CronExpression(
            expression="x",
            minutes=frozenset({0}),
            hours=frozenset({0}),
            days_of_month=frozenset({1}),
            months=frozenset({1}),
            days_of_week=frozenset({7}),
            day_of_month_restricted=True,
            day_of_week_restricted=False,
        )


def test_impossible_date_is_fine_when_weekday_can_match() -> None:
    # Both restricted: Feb 30 never happens, but Mondays in February do.
    assert next_run("0 0 30 2 MON", at(2024, 1, 1)) == at(2024, 2, 5)


# --- property tests against a brute-force reference -----------------------------------------


class FieldSpec(NamedTuple):
    """One generated field: its text and the values it should select."""

    text: str
    values: frozenset[int]


class Spec(NamedTuple):
    """A generated expression and what it should mean."""

    minute: FieldSpec
    hour: FieldSpec
    day_of_month: FieldSpec
    month: FieldSpec
    day_of_week: FieldSpec

    @property
    def expr(self) -> str:
        return " ".join(field.text for field in self)

    @property
    def either_day(self) -> bool:
        """Vixie rule: both day fields restricted (not starting with ``*``) means OR."""
        return not any(f.text.startswith("*") for f in (self.day_of_month, self.day_of_week))

    def day_matches(self, day: date) -> bool:
        if day.month not in self.month.values:
            return False
        dom = day.day in self.day_of_month.values
        dow = (day.weekday() + 1) % 7 in self.day_of_week.values  # Monday=0 -> Sunday=0
        return (dom or dow) if self.either_day else (dom and dow)

    def matches(self, when: datetime) -> bool:
        return (
            when.minute in self.minute.values
            and when.hour in self.hour.values
            and self.day_matches(when.date())
        )


def _render(value: int, names: Sequence[str], use_name: bool, lower: bool) -> str:
    if not (names and use_name):
        return str(value)
    name = names[value % 7] if len(names) == 7 else names[value - 1]
    return name.lower() if lower else name


@st.composite
def field_specs(
    draw: st.DrawFn, low: int, high: int, names: Sequence[str] = (), sunday_seven: bool = False
) -> FieldSpec:
    """A random field over low..high: ``*``, ``*/n``, ``a-b/n``, ``a/n`` or a short list."""
    kind = draw(st.sampled_from(["star", "star_step", "range_step", "open_step", "list"]))
    if kind == "star":
        return FieldSpec("*", frozenset(range(low, high + 1)))
    if kind == "star_step":
        step = draw(st.integers(1, high - low + 1))
        return FieldSpec(f"*/{step}", frozenset(range(low, high + 1, step)))
    if kind in {"range_step", "open_step"}:
        start = draw(st.integers(low, high))
        stop = high if kind == "open_step" else draw(st.integers(start, high))
        step = draw(st.integers(1, 12))
        prefix = f"{start}" if kind == "open_step" else f"{start}-{stop}"
        return FieldSpec(f"{prefix}/{step}", frozenset(range(start, stop + 1, step)))
    values = draw(st.lists(st.integers(low, high), min_size=1, max_size=4))
    parts: list[str] = []
    for value in values:
        if sunday_seven and value == 0 and draw(st.booleans()):
            parts.append("7")
        else:
            parts.append(_render(value, names, draw(st.booleans()), draw(st.booleans())))
    return FieldSpec(",".join(parts), frozenset(values))


specs = st.builds(
    Spec,
    field_specs(0, 59),
    field_specs(0, 23),
    field_specs(1, 31),
    field_specs(1, 12, _MONTHS),
    field_specs(0, 6, _DAYS, sunday_seven=True),
)

_ZONES: tuple[tzinfo, ...] = (
    UTC,
    timezone(timedelta(hours=5, minutes=30)),
    timezone(timedelta(hours=-8)),
)
afters = st.datetimes(
    min_value=datetime(1990, 1, 1),
    max_value=datetime(2100, 12, 31),
    timezones=st.sampled_from(_ZONES),
)


def first_candidate(after: datetime) -> datetime:
    """The first whole UTC minute strictly after ``after``."""
    return after.astimezone(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)


def brute_force_next(spec: Spec, after: datetime, window: timedelta) -> datetime | None:
    """Step minute by minute from ``after``, skipping a whole day once its date fails to match.

    Returns None when nothing matches in ``window`` from the first candidate minute.
    """
    when = first_candidate(after)
    end = when + window
    while when < end:
        if not spec.day_matches(when.date()):
            when = datetime.combine(when.date() + timedelta(days=1), datetime.min.time(), UTC)
        elif spec.matches(when):
            return when
        else:
            when += timedelta(minutes=1)
    return None


def is_satisfiable(spec: Spec) -> bool:
    """Whether any day in 2000-2028 matches (enough to see Feb 29 on every weekday)."""
    day = date(2000, 1, 1)
    while day.year <= 2028:
        if spec.day_matches(day):
            return True
        day += timedelta(days=1)
    return False


@settings(deadline=None, max_examples=300)
@given(spec=specs, after=afters)
def test_next_after_matches_brute_force(spec: Spec, after: datetime) -> None:
    try:
        cron = CronExpression.parse(spec.expr)
    except CronError as exc:
        event("never matches")
        assert "never matches" in str(exc)
        assert not is_satisfiable(spec)
        return
    assert cron.minutes == spec.minute.values
    assert cron.hours == spec.hour.values
    assert cron.days_of_month == spec.day_of_month.values
    assert cron.months == spec.month.values
    assert cron.days_of_week == spec.day_of_week.values

    result = cron.next_after(after)
    assert result > after
    assert result.tzinfo is UTC
    assert (result.second, result.microsecond) == (0, 0)
    assert spec.matches(result)

    window = timedelta(days=5 * 366)
    expected = brute_force_next(spec, after, window)
    if expected is None:
        event("no match in the brute-force window")
        assert result >= first_candidate(after) + window
    else:
        event("matched within the window")
        assert result == expected


@settings(deadline=None)
@given(
    minutes=st.frozensets(st.integers(0, 59), min_size=1, max_size=6),
    hours=st.frozensets(st.integers(0, 23), min_size=1, max_size=4),
    after=afters,
)
def test_dense_schedules_match_plain_minute_stepping(
    minutes: frozenset[int], hours: frozenset[int], after: datetime
) -> None:
    """Every day matches, so a plain minute-by-minute walk over two days must find the answer."""
    expr = f"{','.join(map(str, sorted(minutes)))} {','.join(map(str, sorted(hours)))} * * *"
    result = CronExpression.parse(expr).next_after(after)
    when = first_candidate(after)
    while not (when.minute in minutes and when.hour in hours):
        when += timedelta(minutes=1)
    assert when - after <= timedelta(days=2)
    assert result == when


@settings(deadline=None)
@given(
    days=st.frozensets(st.integers(28, 31), min_size=1),
    months=st.frozensets(st.integers(1, 12), min_size=1, max_size=3),
    weekday=st.sampled_from(["*", "*/7", "*/3", "MON"]),
    after=afters,
)
def test_month_ends_are_rejected_exactly_when_impossible(
    days: frozenset[int], months: frozenset[int], weekday: str, after: datetime
) -> None:
    """Late days of short months: CronError iff no date ever matches, else a real match."""
    dom = ",".join(map(str, sorted(days)))
    spec = Spec(
        FieldSpec("0", frozenset({0})),
        FieldSpec("0", frozenset({0})),
        FieldSpec(dom, days),
        FieldSpec(",".join(map(str, sorted(months))), months),
        FieldSpec(weekday, CronExpression.parse(f"* * * * {weekday}").days_of_week),
    )
    if not is_satisfiable(spec):
        event("never matches")
        with pytest.raises(CronError, match="never matches"):
            CronExpression.parse(spec.expr)
        return
    result = CronExpression.parse(spec.expr).next_after(after)
    assert result > after
    assert spec.matches(result)
    expected = brute_force_next(spec, after, timedelta(days=50 * 366))
    assert expected is not None
    assert result == expected
