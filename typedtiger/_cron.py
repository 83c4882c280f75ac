"""Standard five-field cron expressions: parsing and "next run" computation.

Syntax (``minute hour day-of-month month day-of-week``):

* ``*``, numbers, ranges ``a-b``, steps ``*/n``, ``a-b/n`` and ``a/n`` (``a`` up to the field's
  maximum), and comma-separated lists of any of these;
* month names ``JAN``-``DEC`` and weekday names ``SUN``-``SAT``, case-insensitive;
* day-of-week ``0``-``7``, where both ``0`` and ``7`` mean Sunday (``*`` and ``a/n`` stop at 6);
* the aliases ``@yearly``/``@annually``, ``@monthly``, ``@weekly``, ``@daily``/``@midnight`` and
  ``@hourly``.

Day rule (as in Vixie cron): when both day-of-month and day-of-week are restricted, a day matches
if *either* matches; otherwise both must. A field counts as unrestricted when its text starts with
``*`` (so ``*/2`` is unrestricted, exactly like Vixie cron).

Times are computed in UTC.
"""

from __future__ import annotations

import calendar
from bisect import bisect_left
from collections.abc import Iterator, Mapping, Sequence
from datetime import MAXYEAR, UTC, date, datetime, timedelta
from typing import Final, NamedTuple, NoReturn

import attrs

__all__ = ["CronError", "CronExpression"]

# The Gregorian calendar, weekdays included, repeats every 400 years (146097 days = 20871 weeks),
# so a satisfiable expression always matches within this many years.
_CYCLE_YEARS: Final = 400


class CronError(ValueError):
    """An invalid cron expression, or one that can never match."""


class _Invalid(Exception):
    """Internal: a problem found while parsing, turned into a CronError by the caller."""


class _Field(NamedTuple):
    """How one of the five fields is parsed."""

    name: str
    low: int
    high: int  # highest literal value accepted
    top: int  # highest value produced by ``*`` and by an open ``a/n``
    names: Mapping[str, int]


_MONTH_NAMES: Final[Mapping[str, int]] = {
    name.upper(): number for number, name in enumerate(calendar.month_abbr) if name
}
_DAY_NAMES: Final[Mapping[str, int]] = {
    name: number for number, name in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"))
}
_MINUTE: Final = _Field("minute", 0, 59, 59, {})
_HOUR: Final = _Field("hour", 0, 23, 23, {})
_DAY_OF_MONTH: Final = _Field("day-of-month", 1, 31, 31, {})
_MONTH: Final = _Field("month", 1, 12, 12, _MONTH_NAMES)
_DAY_OF_WEEK: Final = _Field("day-of-week", 0, 7, 6, _DAY_NAMES)

_ALIASES: Final[Mapping[str, str]] = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


def _parse_value(text: str, field: _Field) -> int:
    """One number (or name) of ``field``, range-checked."""
    if text.isascii() and text.isdigit():
        value = int(text)
    elif text.upper() in field.names:
        return field.names[text.upper()]
    else:
        kind = "a number or name" if field.names else "a number"
        raise _Invalid(f"{field.name} field value {text!r} is not {kind}")
    if not field.low <= value <= field.high:
        raise _Invalid(f"{field.name} field value {value} out of range {field.low}-{field.high}")
    return value


def _parse_item(item: str, field: _Field) -> range:
    """One comma-separated item of ``field``: ``*``, ``a``, ``a-b``, optionally with ``/n``."""
    base, slash, step_text = item.partition("/")
    step = 1
    if slash:
        if not (step_text.isascii() and step_text.isdigit()):
            raise _Invalid(f"{field.name} field step {step_text!r} is not a number")
        step = int(step_text)
        if step == 0:
            raise _Invalid(f"{field.name} field step must be positive, got 0 in {item!r}")
    if base == "*":
        start, stop = field.low, field.top
    elif "-" in base:
        start_text, _, stop_text = base.partition("-")
        start, stop = _parse_value(start_text, field), _parse_value(stop_text, field)
        if start > stop:
            raise _Invalid(f"{field.name} field range {base!r} starts after it ends")
    else:
        start = _parse_value(base, field)
        stop = max(start, field.top) if slash else start
    return range(start, stop + 1, step)


def _parse_field(text: str, field: _Field) -> frozenset[int]:
    """The set of values ``text`` selects for ``field`` (day-of-week 7 becomes 0)."""
    values: set[int] = set()
    for item in text.split(","):
        if not item:
            raise _Invalid(f"{field.name} field {text!r} has an empty list item")
        values.update(_parse_item(item, field))
    if field is _DAY_OF_WEEK:
        values = {0 if value == 7 else value for value in values}
    return frozenset(values)


def _first_time(
    hours: Sequence[int], minutes: Sequence[int], floor: tuple[int, int]
) -> tuple[int, int] | None:
    """The earliest (hour, minute) from the sorted ``hours``/``minutes`` that is >= ``floor``."""
    floor_hour, floor_minute = floor
    for hour in hours[bisect_left(hours, floor_hour) :]:
        index = bisect_left(minutes, floor_minute) if hour == floor_hour else 0
        if index < len(minutes):
            return hour, minutes[index]
    return None


@attrs.frozen(kw_only=True)
class CronExpression:
    """A parsed cron expression; build one with :meth:`parse`.

    Day-of-week values are 0-6 with 0 = Sunday. ``day_of_month_restricted`` and
    ``day_of_week_restricted`` select the day rule (see the module docstring).
    """

    expression: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days_of_month: frozenset[int]
    months: frozenset[int]
    days_of_week: frozenset[int]
    day_of_month_restricted: bool
    day_of_week_restricted: bool

    def __attrs_post_init__(self) -> None:
        """Check every field is non-empty and in range, and that the expression can match."""
        fields = (
            (self.minutes, _MINUTE),
            (self.hours, _HOUR),
            (self.days_of_month, _DAY_OF_MONTH),
            (self.months, _MONTH),
            (self.days_of_week, _DAY_OF_WEEK),
        )
        for values, field in fields:
            if not values:
                self._fail(f"{field.name} field selects no values")
            bad = sorted(value for value in values if not field.low <= value <= field.top)
            if bad:
                self._fail(
                    f"{field.name} field value {bad[0]} out of range {field.low}-{field.top}"
                )
        if self.day_of_month_restricted and self.day_of_week_restricted:
            return  # every month has every weekday, so the day-of-week alone can match
        # Otherwise a real (month, day) date is needed; with some leap year's Feb 29 allowed, each
        # such date falls on every weekday within the 400-year cycle.
        if not any(
            day <= calendar.monthrange(2000, month)[1]
            for month in self.months
            for day in self.days_of_month
        ):
            self._fail(
                f"never matches: no month {sorted(self.months)} has a day-of-month "
                f"{sorted(self.days_of_month)}"
            )

    def _fail(self, detail: str) -> NoReturn:
        raise CronError(f"invalid cron expression {self.expression!r}: {detail}")

    @classmethod
    def parse(cls, expr: str) -> CronExpression:
        """Parse a five-field expression or an ``@alias``; raise :class:`CronError` if invalid."""
        text = expr.strip()
        try:
            if not text:
                raise _Invalid("expression is empty")
            if text.startswith("@"):
                if text.lower() not in _ALIASES:
                    raise _Invalid(f"unknown alias {text!r}")
                text = _ALIASES[text.lower()]
            parts = text.split()
            if len(parts) != 5:
                raise _Invalid(
                    "expected 5 fields (minute hour day-of-month month day-of-week), "
                    f"got {len(parts)}"
                )
            minute, hour, day_of_month, month, day_of_week = parts
            return cls(
                expression=expr,
                minutes=_parse_field(minute, _MINUTE),
                hours=_parse_field(hour, _HOUR),
                days_of_month=_parse_field(day_of_month, _DAY_OF_MONTH),
                months=_parse_field(month, _MONTH),
                days_of_week=_parse_field(day_of_week, _DAY_OF_WEEK),
                day_of_month_restricted=not day_of_month.startswith("*"),
                day_of_week_restricted=not day_of_week.startswith("*"),
            )
        except _Invalid as exc:
            raise CronError(f"invalid cron expression {expr!r}: {exc}") from None

    def next_after(self, after: datetime) -> datetime:
        """The first matching minute strictly after ``after`` (an aware datetime), in UTC.

        Seconds and microseconds of ``after`` are dropped first, so the result is at least the
        next whole minute. Raises ValueError for a naive ``after`` or past year 9999.
        """
        if after.tzinfo is None or after.utcoffset() is None:
            raise ValueError(f"after must be a timezone-aware datetime, got {after!r}")
        try:
            start = after.astimezone(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
        except OverflowError:
            raise ValueError(f"no time after {after!r} is representable") from None
        hours, minutes = sorted(self.hours), sorted(self.minutes)
        for day in self._matching_days(start.date()):
            floor = (start.hour, start.minute) if day == start.date() else (0, 0)
            found = _first_time(hours, minutes, floor)
            if found is not None:
                return datetime(day.year, day.month, day.day, *found, tzinfo=UTC)
        raise ValueError(f"{self.expression!r} has no match after {after!r} before year {MAXYEAR}")

    def _matching_days(self, first: date) -> Iterator[date]:
        """Days on or after ``first`` whose month and day fields match, in order."""
        months = sorted(self.months)
        for year in range(first.year, min(first.year + _CYCLE_YEARS, MAXYEAR) + 1):
            for month in months:
                if (year, month) < (first.year, first.month):
                    continue
                start_day = first.day if (year, month) == (first.year, first.month) else 1
                for day in range(start_day, calendar.monthrange(year, month)[1] + 1):
                    if self._day_matches(year, month, day):
                        yield date(year, month, day)

    def _day_matches(self, year: int, month: int, day: int) -> bool:
        """Whether the day fields match this date, with the Vixie-cron OR rule."""
        dom_ok = day in self.days_of_month
        if self.day_of_month_restricted and self.day_of_week_restricted:
            return dom_ok or date(year, month, day).isoweekday() % 7 in self.days_of_week
        return dom_ok and date(year, month, day).isoweekday() % 7 in self.days_of_week
