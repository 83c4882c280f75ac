"""Every "now" typedtiger uses goes through a Clock.

``SystemClock`` reads the wall clock; ``ManualClock`` only moves when told to, so tests can jump
ahead an hour and see exactly what production would see an hour later.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol

__all__ = ["Clock", "ManualClock", "SystemClock", "due_at", "duration_seconds", "to_timestamp"]

_DEFAULT_MANUAL_START = datetime(2026, 1, 1, tzinfo=UTC)


class Clock(Protocol):
    """A source of the current time."""

    def now(self) -> float:
        """The current time as epoch seconds."""
        ...


class SystemClock:
    """The wall clock."""

    def now(self) -> float:
        return time.time()


def to_timestamp(when: datetime | float) -> float:
    """Epoch seconds for ``when``; a naive datetime is read as UTC."""
    if isinstance(when, datetime):
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return when.timestamp()
    return float(when)


def duration_seconds(duration: float | timedelta) -> float:
    """A duration in seconds."""
    return duration.total_seconds() if isinstance(duration, timedelta) else float(duration)


def due_at(when: datetime | timedelta | None, now: float) -> float:
    """Epoch seconds of ``when``: now (None), now + a delay (timedelta), or a datetime."""
    if when is None:
        return now
    if isinstance(when, timedelta):
        return now + when.total_seconds()
    return to_timestamp(when)


class ManualClock:
    """A clock that stands still until ``advance`` or ``set`` moves it."""

    def __init__(self, start: datetime | float = _DEFAULT_MANUAL_START) -> None:
        self._now = to_timestamp(start)

    def now(self) -> float:
        return self._now

    def advance(self, by: float | timedelta) -> None:
        """Move forward by ``by`` seconds (or a timedelta); moving backwards is refused."""
        delta = duration_seconds(by)
        if delta < 0:
            raise ValueError(f"a ManualClock cannot go backwards (advance by {delta})")
        self._now += delta

    def set(self, when: datetime | float) -> None:
        """Jump to ``when`` (a naive datetime is read as UTC)."""
        self._now = to_timestamp(when)

    def __repr__(self) -> str:
        return f"ManualClock({datetime.fromtimestamp(self._now, UTC).isoformat()})"
