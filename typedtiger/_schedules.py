"""Schedules of periodic tasks (Periodic, Cron, CustomSchedule). Pure values; ``typedtiger.spec``
re-exports them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Final, TypeAlias

import attrs

from typedtiger._coroutines import refuse_async
from typedtiger._policies import MAX_SECONDS, is_number

if TYPE_CHECKING:
    from typedtiger._cron import CronExpression

__all__ = [
    "Cron",
    "CustomSchedule",
    "Periodic",
    "Schedule",
    "as_utc",
    "cron",
    "periodic",
]

# --- schedules ------------------------------------------------------------------------------

_EPOCH_2000: Final = datetime(2000, 1, 1, tzinfo=UTC)


def as_utc(when: datetime) -> datetime:
    """``when`` as an aware UTC datetime; a naive datetime is read as UTC."""
    if when.tzinfo is None:
        return when.replace(tzinfo=UTC)
    return when.astimezone(UTC)


def _optional_utc(when: datetime | None) -> datetime | None:
    return None if when is None else as_utc(when)


def _period(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not (is_number(value) and 1 <= value <= MAX_SECONDS):
        raise ValueError(
            f"a periodic schedule needs a period of at least 1 second and at most "
            f"{MAX_SECONDS:.0f} (a year), got {value!r}"
        )


@attrs.frozen
class Periodic:
    """Runs at ``start_date + k * period`` for every whole k, until ``end_date``."""

    period: float = attrs.field(validator=_period)
    start_date: datetime = attrs.field(default=_EPOCH_2000, converter=as_utc)
    end_date: datetime | None = attrs.field(default=None, converter=_optional_utc)

    def next_run(self, after: datetime) -> datetime | None:
        """The first run time strictly after ``after``, or None once past ``end_date``."""
        after = as_utc(after)
        if after < self.start_date:
            candidate = self.start_date
        else:
            elapsed = (after - self.start_date).total_seconds()
            runs = int(elapsed // self.period) + 1
            candidate = self.start_date + timedelta(seconds=runs * self.period)
        if self.end_date is not None and candidate > self.end_date:
            return None
        return candidate


@attrs.frozen
class Cron:
    """Runs at the minutes a five-field cron expression matches (UTC)."""

    expr: str
    start_date: datetime | None = attrs.field(default=None, converter=_optional_utc)
    end_date: datetime | None = attrs.field(default=None, converter=_optional_utc)
    _parsed: CronExpression = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        from typedtiger._cron import CronExpression  # only cron schedules pay for loading it

        object.__setattr__(self, "_parsed", CronExpression.parse(self.expr))

    def next_run(self, after: datetime) -> datetime | None:
        """The first matching minute strictly after ``after`` (and not before ``start_date``)."""
        after = as_utc(after)
        if self.start_date is not None and after < self.start_date:
            after = self.start_date - timedelta(microseconds=1)
        candidate = self._parsed.next_after(after)
        if self.end_date is not None and candidate > self.end_date:
            return None
        return candidate


@attrs.frozen
class CustomSchedule:
    """A schedule computed by ``func(after) -> datetime | None`` (a plain function)."""

    func: Callable[[datetime], datetime | None]

    def __attrs_post_init__(self) -> None:
        refuse_async(self.func, "schedule function")

    def next_run(self, after: datetime) -> datetime | None:
        """What the function answers, as aware UTC."""
        result = self.func(as_utc(after))
        return None if result is None else as_utc(result)


Schedule: TypeAlias = Periodic | Cron | CustomSchedule


def periodic(
    *,
    seconds: float = 0,
    minutes: float = 0,
    hours: float = 0,
    days: float = 0,
    weeks: float = 0,
    start_date: datetime | None = None,
    end_date: datetime | None = None,
) -> Periodic:
    """Every ``seconds + minutes + ... + weeks``, aligned on ``start_date`` (default 2000-01-01)."""
    # Summed plainly first: a timedelta refuses NaN and overflows; Periodic explains the range.
    period = seconds + 60 * minutes + 3600 * hours + 86400 * days + 604800 * weeks
    if 1 <= period <= MAX_SECONDS:  # in range: counted to the microsecond, as timedelta does
        period = timedelta(
            seconds=seconds, minutes=minutes, hours=hours, days=days, weeks=weeks
        ).total_seconds()
    return Periodic(period, start_date if start_date is not None else _EPOCH_2000, end_date)


def cron(expr: str, start_date: datetime | None = None, end_date: datetime | None = None) -> Cron:
    """A cron schedule, e.g. ``cron("0 4 * * SUN")``; times are UTC."""
    return Cron(expr, start_date, end_date)
