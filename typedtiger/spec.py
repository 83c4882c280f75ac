"""What to run and how: TaskSpec, retry policies and schedules. Pure values, no I/O."""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import TYPE_CHECKING, Any, Final, ParamSpec, TypeAlias

import attrs

from typedtiger._allowlist import Allowlist
from typedtiger._json import JSONValue, json_args, json_kwargs
from typedtiger._names import import_qualified, qualified_name
from typedtiger._sync_only import refuse_async, refuse_awaitable
from typedtiger.exceptions import StopRetry

if TYPE_CHECKING:
    from typedtiger._cron import CronExpression
    from typedtiger.runner import BaseRunner

__all__ = [
    "MAX_COUNT",
    "MAX_SECONDS",
    "Cron",
    "Custom",
    "CustomSchedule",
    "Exponential",
    "Fixed",
    "KeyNames",
    "Linear",
    "Periodic",
    "RetryPolicy",
    "Schedule",
    "TaskSpec",
    "cron",
    "exponential",
    "fixed",
    "linear",
    "periodic",
]

P = ParamSpec("P")

#: Names of keyword arguments (``unique_key``, ``lock_key``); a bare string is refused.
KeyNames: TypeAlias = list[str] | tuple[str, ...]


#: The longest time a task option or setting accepts (a year): past it a typo, not a setting.
MAX_SECONDS: Final = 365 * 24 * 3600.0
#: The largest count a task option accepts (max_queue_size, max_stored_executions,
#: max_retries): a 32-bit signed integer's maximum.
MAX_COUNT: Final = 2**31 - 1


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _seconds_in_range(
    _: object, attribute: attrs.Attribute[Any], value: float, *, zero_ok: bool = True
) -> None:
    """A number of seconds in [0, MAX_SECONDS] (or (0, MAX_SECONDS]): NaN and infinities are
    out of range (a comparison, not math.isfinite, which overflows on a huge int)."""
    low = ">= 0" if zero_ok else "> 0"
    if not (_is_number(value) and 0 <= value <= MAX_SECONDS) or (value == 0 and not zero_ok):
        raise ValueError(
            f"{attribute.name} must be {low} and <= {MAX_SECONDS:.0f} seconds (a year), "
            f"got {value!r}"
        )


def _count_in_range(_: object, attribute: attrs.Attribute[Any], value: int, *, low: int) -> None:
    """An integer in [low, MAX_COUNT]."""
    if not (isinstance(value, int) and not isinstance(value, bool) and low <= value <= MAX_COUNT):
        raise ValueError(
            f"{attribute.name} must be an integer >= {low} and <= {MAX_COUNT}, got {value!r}"
        )


def _delay(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    _seconds_in_range(_, attribute, value)


def _max_retries(_: object, attribute: attrs.Attribute[int], value: int) -> None:
    _count_in_range(_, attribute, value, low=0)


def _factor(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not (_is_number(value) and 0 <= value < math.inf):
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
        refuse_async(func)
        return cls(qualified_name(func), args)

    def delay_for(self, retry_number: int, allowlist: Allowlist) -> float:
        """Call the function (TaskImportError if ``allowlist`` refuses it); StopRetry propagates."""
        func = allowlist.load(self.func, "retry function")
        if not callable(func):
            raise TypeError(f"custom retry function {self.func!r} is not callable")
        delay = func(retry_number, *self.args)
        refuse_awaitable(delay, f"retry function {self.func}")
        if not (_is_number(delay) and 0 <= delay <= MAX_SECONDS):
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
    if not (_is_number(value) and 1 <= value <= MAX_SECONDS):
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
        from typedtiger._cron import CronExpression  # only cron schedules need it (~2 ms)

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
        refuse_async(self.func)

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


# --- TaskSpec -------------------------------------------------------------------------------


class _Unset(Enum):
    UNSET = "UNSET"


UNSET: Final = _Unset.UNSET


def _exception_names(value: Sequence[type[BaseException] | str] | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str | type):
        raise TypeError("retry_on takes a sequence of exception classes, not a single one")
    names = []
    for item in value:
        if isinstance(item, str):
            names.append(item)
        elif isinstance(item, type) and issubclass(item, BaseException):
            names.append(qualified_name(item))
        else:
            raise TypeError(f"retry_on takes exception classes; {item!r} is not one")
    return tuple(names)


def _runner_name(value: type[BaseRunner] | str | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return qualified_name(value)


def _key_names(value: Sequence[str] | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        raise TypeError("unique_key/lock_key take a sequence of keyword argument names")
    return tuple(value)


def _timeout_or_none(
    _: object, attribute: attrs.Attribute[float | None], value: float | None
) -> None:
    if value is not None:
        _seconds_in_range(_, attribute, value, zero_ok=False)


def _count_or_none(_: object, attribute: attrs.Attribute[int | None], value: int | None) -> None:
    if value is not None:
        _count_in_range(_, attribute, value, low=1)


def _stored_count_or_none(
    _: object, attribute: attrs.Attribute[int | None], value: int | None
) -> None:
    """``max_stored_executions``: 0 keeps every execution, as in TaskTiger (so does None)."""
    if value is not None:
        _count_in_range(_, attribute, value, low=0)


@attrs.frozen(kw_only=True)
class TaskSpec:
    """A task to enqueue: the function, its arguments and the options.

    An option left as None is inherited: from the ``@tiger.task`` registration of the function,
    then from ``Config``. Build one with ``TaskSpec.of(func, *args, **kwargs)`` or a task's
    ``.spec(...)``; change options with ``evolve``.
    """

    func: str
    args: tuple[JSONValue, ...] = attrs.field(default=(), converter=json_args)
    kwargs: dict[str, JSONValue] = attrs.field(factory=dict, converter=json_kwargs)
    queue: str | None = None
    hard_timeout: float | None = attrs.field(default=None, validator=_timeout_or_none)
    unique: bool | None = None
    unique_key: tuple[str, ...] | None = attrs.field(default=None, converter=_key_names)
    lock: bool | None = None
    lock_key: tuple[str, ...] | None = attrs.field(default=None, converter=_key_names)
    retry: bool | RetryPolicy | None = None
    retry_on: tuple[str, ...] | None = attrs.field(default=None, converter=_exception_names)
    max_queue_size: int | None = attrs.field(default=None, validator=_count_or_none)
    max_stored_executions: int | None = attrs.field(default=None, validator=_stored_count_or_none)
    runner_class: str | None = attrs.field(default=None, converter=_runner_name)
    batch: bool | None = None

    def __attrs_post_init__(self) -> None:
        if self.queue is not None and not _valid_queue_name(self.queue):
            raise ValueError(f"invalid queue name {self.queue!r}")

    @classmethod
    def of(cls, func: Callable[P, object], /, *args: P.args, **kwargs: P.kwargs) -> TaskSpec:
        """A spec calling ``func(*args, **kwargs)``; arguments are checked against ``func``.

        TypeError for an async function (async tasks are not supported yet).
        """
        refuse_async(func)
        _check_call(func, args, kwargs)
        return cls(func=qualified_name(func), args=args, kwargs=kwargs)

    def evolve(
        self,
        *,
        queue: str | _Unset | None = UNSET,
        hard_timeout: float | _Unset | None = UNSET,
        unique: bool | _Unset | None = UNSET,
        unique_key: KeyNames | _Unset | None = UNSET,
        lock: bool | _Unset | None = UNSET,
        lock_key: KeyNames | _Unset | None = UNSET,
        retry: bool | RetryPolicy | _Unset | None = UNSET,
        retry_on: Sequence[type[BaseException]] | _Unset | None = UNSET,
        max_queue_size: int | _Unset | None = UNSET,
        max_stored_executions: int | _Unset | None = UNSET,
        runner_class: type[BaseRunner] | _Unset | None = UNSET,
    ) -> TaskSpec:
        """A copy with the given options replaced (pass None to inherit the default again)."""
        changes = {
            name: value
            for name, value in {
                "queue": queue,
                "hard_timeout": hard_timeout,
                "unique": unique,
                "unique_key": unique_key,
                "lock": lock,
                "lock_key": lock_key,
                "retry": retry,
                "retry_on": retry_on,
                "max_queue_size": max_queue_size,
                "max_stored_executions": max_stored_executions,
                "runner_class": runner_class,
            }.items()
            if value is not UNSET
        }
        evolved = attrs.evolve(self, **changes)  # type: ignore[arg-type]
        if "unique_key" in changes or "lock_key" in changes:
            check_key_names(import_qualified(self.func), evolved)
        return evolved

    def inherit(self, defaults: TaskSpec) -> TaskSpec:
        """This spec with every unset option taken from ``defaults``."""
        changes = {
            field.name: getattr(defaults, field.name)
            for field in attrs.fields(TaskSpec)
            if field.name not in ("func", "args", "kwargs") and getattr(self, field.name) is None
        }
        return attrs.evolve(self, **changes)


def _valid_queue_name(name: str) -> bool:
    return bool(name) and not name.startswith(".") and not name.endswith(".") and ".." not in name


@functools.lru_cache(maxsize=4096)
def _signature(func: Callable[..., object]) -> inspect.Signature | None:
    try:
        return inspect.signature(func)
    except (TypeError, ValueError):  # builtins without a signature: nothing to check
        return None


def _check_call(
    func: Callable[..., object], args: tuple[object, ...], kwargs: Mapping[str, object]
) -> None:
    signature = _signature(func)
    if signature is None:
        return
    try:
        signature.bind(*args, **kwargs)
    except TypeError as exc:
        raise TypeError(f"{qualified_name(func)}: {exc}") from None


def check_key_names(func: object, spec: TaskSpec) -> None:
    """Refuse unique_key/lock_key names that are not keyword parameters of ``func``.

    A batch function is not checked: it takes the list of calls, and the names are keyword
    arguments of each call."""
    if spec.batch:
        return
    signature = _signature(func) if callable(func) else None
    if signature is None:
        return
    parameters = signature.parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    for option, names in (("unique_key", spec.unique_key), ("lock_key", spec.lock_key)):
        for name in names or ():
            if name not in parameters:
                raise ValueError(f"{option} names {name!r}, which {spec.func} does not take")
