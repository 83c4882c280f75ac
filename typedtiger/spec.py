"""What to run and how: TaskSpec (and, re-exported, the retry policies and schedules). Pure
values, no I/O."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from enum import Enum
from typing import Any, Final, Generic, ParamSpec, Protocol, TypeAlias

import attrs
from typing_extensions import TypeVar

from typedtiger._coroutines import refuse_async_generator
from typedtiger._json import JSONValue, json_args, json_kwargs
from typedtiger._names import import_qualified, qualified_name
from typedtiger._policies import (
    MAX_COUNT,
    MAX_SECONDS,
    Custom,
    Exponential,
    Fixed,
    Linear,
    RetryPolicy,
    count_in_range,
    exponential,
    fixed,
    linear,
    seconds_in_range,
)
from typedtiger._priorities import MAX_PRIORITY, MIN_PRIORITY, check_priority
from typedtiger._queues import valid_queue_name
from typedtiger._schedules import (
    Cron,
    CustomSchedule,
    Periodic,
    Schedule,
    as_utc,
    cron,
    periodic,
)

__all__ = [
    "MAX_COUNT",
    "MAX_PRIORITY",
    "MAX_SECONDS",
    "MIN_PRIORITY",
    "Cron",
    "Custom",
    "CustomSchedule",
    "Exponential",
    "Fixed",
    "KeyNames",
    "Linear",
    "Periodic",
    "RetryPolicy",
    "RunnerClass",
    "Schedule",
    "TaskSpec",
    "as_utc",
    "cron",
    "exponential",
    "fixed",
    "linear",
    "periodic",
]

P = ParamSpec("P")
R = TypeVar("R")
#: What calling the spec's function returns (a coroutine for an ``async def`` function, which
#: ``Tiger.enqueue`` unwraps: the Task's result is what the coroutine returns); only for mypy.
R_co = TypeVar("R_co", default=object, covariant=True)

#: Names of keyword arguments (``unique_key``, ``lock_key``); a bare string is refused.
KeyNames: TypeAlias = list[str] | tuple[str, ...]


class RunnerClass(Protocol):
    """What ``runner_class`` takes besides a "module:qualname" string: a runner class
    (``typedtiger.runner.BaseRunner`` or a subclass). Values do not know the runner module;
    this is the part of a runner a spec can name."""

    def run_single_task(
        self, task: Any, func: Callable[..., object], hard_timeout: float
    ) -> object: ...


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


def _runner_name(value: type[RunnerClass] | str | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return qualified_name(value)


def _key_names(value: Sequence[str] | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        raise TypeError("unique_key/lock_key take a sequence of keyword argument names")
    return tuple(value)


def _seconds(value: float | timedelta | None) -> float | None:
    """A duration given as seconds or a timedelta, as seconds."""
    return value.total_seconds() if isinstance(value, timedelta) else value


def _timeout_or_none(
    _: object, attribute: attrs.Attribute[float | None], value: float | None
) -> None:
    if value is not None:
        seconds_in_range(_, attribute, value, zero_ok=False)


def _priority_or_none(_: object, __: attrs.Attribute[int | None], value: int | None) -> None:
    if value is not None:
        check_priority(value)


def _count_or_none(_: object, attribute: attrs.Attribute[int | None], value: int | None) -> None:
    if value is not None:
        count_in_range(_, attribute, value, low=1)


def _stored_count_or_none(
    _: object, attribute: attrs.Attribute[int | None], value: int | None
) -> None:
    """``max_stored_executions``: 0 keeps every execution, as in TaskTiger (so does None)."""
    if value is not None:
        count_in_range(_, attribute, value, low=0)


@attrs.frozen(kw_only=True)
class TaskSpec(Generic[R_co]):
    """A task to enqueue: the function, its arguments and the options.

    ``R_co`` is what a call of the function returns, for mypy only (``TaskSpec.of(f, ...)``
    and ``f.spec(...)`` set it; a bare ``TaskSpec`` is a ``TaskSpec[object]``): enqueued, it
    gives a ``Task`` whose result has that type (what the coroutine returns, for an
    ``async def`` function).

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
    #: Claimed before tasks of lower priority (MIN_PRIORITY..MAX_PRIORITY; None: 0).
    priority: int | None = attrs.field(default=None, validator=_priority_or_none)
    #: Keep the task's return value this many seconds after it succeeded (or its failure,
    #: after it failed for good) for ``Task.result()``; None: nothing is kept.
    result_ttl: float | None = attrs.field(
        default=None, converter=_seconds, validator=_timeout_or_none
    )

    def __attrs_post_init__(self) -> None:
        if self.queue is not None and not valid_queue_name(self.queue):
            raise ValueError(f"invalid queue name {self.queue!r}")

    @classmethod
    def of(cls, func: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> TaskSpec[R]:
        """A spec calling ``func(*args, **kwargs)``; arguments are checked against ``func``.

        ``func`` may be an ``async def`` function; TypeError for an async generator function.
        """
        refuse_async_generator(func)
        _check_call(func, args, kwargs)
        return TaskSpec(func=qualified_name(func), args=args, kwargs=kwargs)

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
        runner_class: type[RunnerClass] | _Unset | None = UNSET,
        priority: int | _Unset | None = UNSET,
        result_ttl: float | timedelta | _Unset | None = UNSET,
    ) -> TaskSpec[R_co]:
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
                "priority": priority,
                "result_ttl": result_ttl,
            }.items()
            if value is not UNSET
        }
        evolved = attrs.evolve(self, **changes)  # type: ignore[arg-type]
        if "unique_key" in changes or "lock_key" in changes:
            check_key_names(import_qualified(self.func), evolved)
        return evolved

    def inherit(self, defaults: TaskSpec) -> TaskSpec[R_co]:
        """This spec with every unset option taken from ``defaults``."""
        changes = {
            field.name: getattr(defaults, field.name)
            for field in attrs.fields(TaskSpec)
            if field.name not in ("func", "args", "kwargs") and getattr(self, field.name) is None
        }
        return attrs.evolve(self, **changes)


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
