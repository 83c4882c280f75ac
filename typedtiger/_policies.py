"""Retry policies (Fixed, Linear, Exponential, Custom) and the number checks task options share.
Pure values; ``typedtiger.spec`` re-exports the policies."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Final, TypeAlias

import attrs

from typedtiger._allowlist import Allowlist
from typedtiger._coroutines import refuse_async, refuse_awaitable
from typedtiger._json import JSONValue, json_args
from typedtiger._names import qualified_name
from typedtiger.exceptions import StopRetry

__all__ = [
    "MAX_COUNT",
    "MAX_SECONDS",
    "Custom",
    "Exponential",
    "Fixed",
    "Linear",
    "RetryPolicy",
    "count_in_range",
    "exponential",
    "fixed",
    "is_number",
    "linear",
    "seconds_in_range",
]

#: The longest time a task option or setting accepts (a year): past it a typo, not a setting.
MAX_SECONDS: Final = 365 * 24 * 3600.0
#: The largest count a task option accepts (max_queue_size, max_stored_executions,
#: max_retries): a 32-bit signed integer's maximum.
MAX_COUNT: Final = 2**31 - 1


def is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def seconds_in_range(
    _: object, attribute: attrs.Attribute[Any], value: float, *, zero_ok: bool = True
) -> None:
    """A number of seconds in [0, MAX_SECONDS] (or (0, MAX_SECONDS]): NaN and infinities are
    out of range (a comparison, not math.isfinite, which overflows on a huge int)."""
    low = ">= 0" if zero_ok else "> 0"
    if not (is_number(value) and 0 <= value <= MAX_SECONDS) or (value == 0 and not zero_ok):
        raise ValueError(
            f"{attribute.name} must be {low} and <= {MAX_SECONDS:.0f} seconds (a year), "
            f"got {value!r}"
        )


def count_in_range(_: object, attribute: attrs.Attribute[Any], value: int, *, low: int) -> None:
    """An integer in [low, MAX_COUNT]."""
    if not (isinstance(value, int) and not isinstance(value, bool) and low <= value <= MAX_COUNT):
        raise ValueError(
            f"{attribute.name} must be an integer >= {low} and <= {MAX_COUNT}, got {value!r}"
        )


def _delay(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    seconds_in_range(_, attribute, value)


def _max_retries(_: object, attribute: attrs.Attribute[int], value: int) -> None:
    count_in_range(_, attribute, value, low=0)


def _factor(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not (is_number(value) and 0 <= value < math.inf):
        raise ValueError(f"{attribute.name} must be a finite number >= 0, got {value!r}")


def _capped(delay: float) -> float:
    """A computed retry delay, at most MAX_SECONDS."""
    return min(float(delay), MAX_SECONDS)


# --- retry policies -------------------------------------------------------------------------


@attrs.frozen
class Fixed:
    """Retry after the same ``delay`` every time, at most ``max_retries`` times."""

    delay: float = attrs.field(validator=_delay)
    max_retries: int = attrs.field(validator=_max_retries)

    def delay_for(self, retry_number: int) -> float:
        """Seconds before retry ``retry_number`` (1-based); StopRetry past ``max_retries``."""
        if retry_number > self.max_retries:
            raise StopRetry
        return float(self.delay)


@attrs.frozen
class Linear:
    """Retry after ``delay``, then ``delay + increment``, ``delay + 2*increment``, ... (a delay
    stops growing at MAX_SECONDS)."""

    delay: float = attrs.field(validator=_delay)
    increment: float = attrs.field(validator=_delay)
    max_retries: int = attrs.field(validator=_max_retries)

    def delay_for(self, retry_number: int) -> float:
        """Seconds before retry ``retry_number`` (1-based); StopRetry past ``max_retries``."""
        if retry_number > self.max_retries:
            raise StopRetry
        return _capped(self.delay + self.increment * (retry_number - 1))


@attrs.frozen
class Exponential:
    """Retry after ``delay``, then ``delay * factor``, ``delay * factor**2``, ... (a delay stops
    growing at MAX_SECONDS)."""

    delay: float = attrs.field(validator=_delay)
    factor: float = attrs.field(validator=_factor)
    max_retries: int = attrs.field(validator=_max_retries)

    def delay_for(self, retry_number: int) -> float:
        """Seconds before retry ``retry_number`` (1-based); StopRetry past ``max_retries``."""
        if retry_number > self.max_retries:
            raise StopRetry
        if self.delay == 0:
            return 0.0
        try:
            return _capped(self.delay * float(self.factor) ** (retry_number - 1))
        except OverflowError:  # factor ** n past a float: far past the cap
            return MAX_SECONDS


@attrs.frozen
class Custom:
    """A retry policy computed by an importable function ``func(retry_number, *args) -> delay``.

    The function raises ``StopRetry`` to stop. ``func`` is stored as "module:qualname".
    """

    func: str
    args: tuple[JSONValue, ...] = attrs.field(default=(), converter=json_args)

    @classmethod
    def of(cls, func: Callable[..., float], *args: JSONValue) -> Custom:
        """A Custom policy calling ``func`` (which must be importable by workers)."""
        refuse_async(func, "retry function")
        return cls(qualified_name(func), args)

    def delay_for(self, retry_number: int, allowlist: Allowlist) -> float:
        """Call the function (TaskImportError if ``allowlist`` refuses it); StopRetry propagates."""
        func = allowlist.load(self.func, "retry function")
        if not callable(func):
            raise TypeError(f"custom retry function {self.func!r} is not callable")
        delay = func(retry_number, *self.args)
        refuse_awaitable(delay, f"retry function {self.func}")
        if not (is_number(delay) and 0 <= delay <= MAX_SECONDS):
            raise ValueError(
                f"custom retry function {self.func!r} returned {delay!r}, not a number of "
                f"seconds >= 0 and <= {MAX_SECONDS:.0f}"
            )
        return float(delay)


RetryPolicy: TypeAlias = Fixed | Linear | Exponential | Custom


def fixed(delay: float, max_retries: int) -> Fixed:
    """Retry every ``delay`` seconds, at most ``max_retries`` times."""
    return Fixed(delay, max_retries)


def linear(delay: float, increment: float, max_retries: int) -> Linear:
    """Retry after ``delay + increment * (n - 1)`` seconds for retry ``n``."""
    return Linear(delay, increment, max_retries)


def exponential(delay: float, factor: float, max_retries: int) -> Exponential:
    """Retry after ``delay * factor ** (n - 1)`` seconds for retry ``n``."""
    return Exponential(delay, factor, max_retries)
