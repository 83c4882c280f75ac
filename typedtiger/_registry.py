"""Task registrations and the typed task objects ``@tiger.task`` returns."""

from __future__ import annotations

import functools
import inspect
import sys
import typing
from collections.abc import Callable, Coroutine, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, Protocol, TypeVar, overload

import attrs

from typedtiger._allowlist import Allowlist
from typedtiger._coroutines import is_async
from typedtiger._json import JSONValue
from typedtiger._names import split_name
from typedtiger._results import result_type_problem
from typedtiger.config import Config
from typedtiger.exceptions import TaskImportError
from typedtiger.runner import BaseRunner, BatchCall, DefaultRunner
from typedtiger.spec import (
    Cron,
    Custom,
    CustomSchedule,
    Periodic,
    Schedule,
    TaskSpec,
    check_key_names,
)

if TYPE_CHECKING:
    from typedtiger.task import Task

__all__ = [
    "AsyncTaskFunction",
    "BatchTaskFunction",
    "Enqueuer",
    "Registration",
    "TaskDecorator",
    "TaskFunction",
    "TaskRegistry",
]

P = ParamSpec("P")
R = TypeVar("R")


@attrs.frozen
class Registration:
    """What ``@tiger.task(...)`` recorded about a function."""

    func: Callable[..., object]
    defaults: TaskSpec
    schedule: Schedule | None = None
    batch: bool = False

    def names(self) -> tuple[str, ...]:
        """The "module:qualname" names a worker imports for this task: the function, its
        runner class, custom retry function and retry_on classes (the allowlist vouches)."""
        spec = self.defaults
        names = [spec.func, *(spec.retry_on or ())]
        if spec.runner_class is not None:
            names.append(spec.runner_class)
        if isinstance(spec.retry, Custom):
            names.append(spec.retry.func)
        return tuple(names)


class Enqueuer(Protocol):
    """What a task object enqueues through: its Tiger."""

    def enqueue(
        self, spec: TaskSpec[Any], *, when: datetime | timedelta | None = None
    ) -> Task[Any]: ...

    async def aenqueue(
        self, spec: TaskSpec[Any], *, when: datetime | timedelta | None = None
    ) -> Task[Any]: ...


class _Registered:
    """What task objects share: the registration and the Tiger they enqueue through."""

    __name__: str
    __qualname__: str
    __doc__: str | None

    def __init__(self, tiger: Enqueuer, registration: Registration) -> None:
        self._tiger = tiger
        self._registration = registration
        functools.update_wrapper(self, registration.func)  # type: ignore[arg-type]

    def __reduce__(self) -> str:
        # pickled (and deep-copied) by reference, like the function it wraps
        return self.__qualname__

    @property
    def registration(self) -> Registration:
        """The options this task was registered with."""
        return self._registration

    @property
    def serialized_func(self) -> str:
        """The "module:qualname" workers import the function by."""
        return self._registration.defaults.func

    def __repr__(self) -> str:
        return f"<typedtiger task {self.serialized_func}>"


class _Enqueueing(_Registered):
    """What both kinds of task function do with a call's arguments (the typed methods are on
    ``TaskFunction`` and ``AsyncTaskFunction``, which differ in what a call here returns; their
    ``delay`` methods are written in each, not here, so that mypy's errors name the class the
    user holds, not this one)."""

    #: The registered function (typed in each subclass).
    _func: Callable[..., object]

    def _spec(self, args: tuple[object, ...], kwargs: dict[str, object]) -> TaskSpec[Any]:
        return TaskSpec.of(self._func, *args, **kwargs).inherit(self._registration.defaults)


class TaskFunction(_Enqueueing, Generic[P, R]):
    """A function registered with ``@tiger.task``: call it to run it here, ``.delay()`` to queue it.

    Options are changed per call with ``task.spec(...).evolve(...)`` and ``tiger.enqueue``.
    """

    __wrapped__: Callable[P, R]
    _func: Callable[P, R]

    def __init__(self, tiger: Enqueuer, registration: Registration, func: Callable[P, R]) -> None:
        super().__init__(tiger, registration)
        self._func = func

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self._func(*args, **kwargs)

    def spec(self, *args: P.args, **kwargs: P.kwargs) -> TaskSpec[R]:
        """The TaskSpec of a call with these arguments (options from the registration)."""
        return self._spec(args, kwargs)

    def delay(self, *args: P.args, **kwargs: P.kwargs) -> Task[R]:
        """Queue a call with these arguments now; returns its Task (``.result()`` is an R)."""
        return self._tiger.enqueue(self._spec(args, kwargs))

    def delay_at(self, when: datetime | timedelta, /, *args: P.args, **kwargs: P.kwargs) -> Task[R]:
        """Queue a call to run at ``when`` (a datetime, or a delay from now)."""
        return self._tiger.enqueue(self._spec(args, kwargs), when=when)

    async def adelay(self, *args: P.args, **kwargs: P.kwargs) -> Task[R]:
        """``delay``, awaited on the running event loop (``Tiger.aenqueue``)."""
        return await self._tiger.aenqueue(self._spec(args, kwargs))

    async def adelay_at(
        self, when: datetime | timedelta, /, *args: P.args, **kwargs: P.kwargs
    ) -> Task[R]:
        """``delay_at``, awaited on the running event loop."""
        return await self._tiger.aenqueue(self._spec(args, kwargs), when=when)


class AsyncTaskFunction(_Enqueueing, Generic[P, R]):
    """An ``async def`` function registered with ``@tiger.task``: calling it returns its
    coroutine, as calling the function does; ``.delay()`` queues a call, whose Task's
    ``.result()`` is what the coroutine returns (an R), not a coroutine.
    """

    __wrapped__: Callable[P, Coroutine[Any, Any, R]]
    _func: Callable[P, Coroutine[Any, Any, R]]

    def __init__(
        self,
        tiger: Enqueuer,
        registration: Registration,
        func: Callable[P, Coroutine[Any, Any, R]],
    ) -> None:
        super().__init__(tiger, registration)
        self._func = func

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, R]:
        return self._func(*args, **kwargs)

    def spec(self, *args: P.args, **kwargs: P.kwargs) -> TaskSpec[Coroutine[Any, Any, R]]:
        """The TaskSpec of a call with these arguments (options from the registration);
        ``tiger.enqueue`` of it gives a ``Task[R]``."""
        return self._spec(args, kwargs)

    def delay(self, *args: P.args, **kwargs: P.kwargs) -> Task[R]:
        """Queue a call with these arguments now; returns its Task (``.result()`` is an R)."""
        return self._tiger.enqueue(self._spec(args, kwargs))

    def delay_at(self, when: datetime | timedelta, /, *args: P.args, **kwargs: P.kwargs) -> Task[R]:
        """Queue a call to run at ``when`` (a datetime, or a delay from now)."""
        return self._tiger.enqueue(self._spec(args, kwargs), when=when)

    async def adelay(self, *args: P.args, **kwargs: P.kwargs) -> Task[R]:
        """``delay``, awaited on the running event loop (``Tiger.aenqueue``)."""
        return await self._tiger.aenqueue(self._spec(args, kwargs))

    async def adelay_at(
        self, when: datetime | timedelta, /, *args: P.args, **kwargs: P.kwargs
    ) -> Task[R]:
        """``delay_at``, awaited on the running event loop."""
        return await self._tiger.aenqueue(self._spec(args, kwargs), when=when)


class TaskDecorator(Protocol):
    """What ``@tiger.task(...)`` with options returns: it registers a function, typed as a
    ``TaskFunction``, or an ``AsyncTaskFunction`` for an ``async def``."""

    @overload
    def __call__(  # type: ignore[overload-overlap]
        self, func: Callable[P, Coroutine[Any, Any, R]], /
    ) -> AsyncTaskFunction[P, R]: ...

    @overload
    def __call__(self, func: Callable[P, R], /) -> TaskFunction[P, R]: ...


class BatchTaskFunction(_Registered, Generic[R]):
    """A ``batch=True`` task: workers call it with a list of ``BatchCall`` records.

    ``.delay(*args, **kwargs)`` queues one call; the arguments are JSON values.
    """

    def __init__(self, tiger: Enqueuer, registration: Registration, func: Callable[..., R]) -> None:
        super().__init__(tiger, registration)
        self._func = func

    def __call__(self, calls: list[BatchCall]) -> R:
        return self._func(calls)

    def spec(self, *args: JSONValue, **kwargs: JSONValue) -> TaskSpec:
        """The TaskSpec of one call with these arguments."""
        return TaskSpec(func=self.serialized_func, args=args, kwargs=kwargs).inherit(
            self._registration.defaults
        )

    def delay(self, *args: JSONValue, **kwargs: JSONValue) -> Task:
        """Queue one call of the batch function now; returns its Task."""
        return self._tiger.enqueue(self.spec(*args, **kwargs))

    async def adelay(self, *args: JSONValue, **kwargs: JSONValue) -> Task:
        """``delay``, awaited on the running event loop (``Tiger.aenqueue``)."""
        return await self._tiger.aenqueue(self.spec(*args, **kwargs))


class TaskRegistry:
    """The registry ``@tiger.task`` fills, the allowlist it vouches for, and the functions and
    runner classes payloads name, resolved through both; ``Tiger`` provides
    ``config`` and ``enqueue`` (what the task objects call)."""

    _registry: dict[str, Registration]
    #: ``allowlist`` as last built, and the Config it was built from (None: build anew).
    _allowlist: tuple[Config, Allowlist] | None

    @property
    def config(self) -> Config:
        raise NotImplementedError

    def enqueue(self, spec: TaskSpec, *, when: datetime | timedelta | None = None) -> Task:
        raise NotImplementedError

    async def aenqueue(self, spec: TaskSpec, *, when: datetime | timedelta | None = None) -> Task:
        raise NotImplementedError

    @property
    def allowlist(self) -> Allowlist:
        """What a worker of this Tiger may import and run from a payload: registered tasks
        (with what their registrations name), ``Config.allowed_task_modules`` (the CLI adds
        the modules of ``--app`` and ``-m``), or anything if ``Config.allow_any_module``."""
        config = self.config
        if self._allowlist is None or self._allowlist[0] is not config:
            vouched = [name for reg in self._registry.values() for name in reg.names()]
            if isinstance(config.default_retry, Custom):
                vouched.append(config.default_retry.func)
            allowlist = Allowlist(
                modules=config.allowed_task_modules or (),
                vouched=frozenset(vouched),
                any_module=config.allow_any_module,
            )
            self._allowlist = (config, allowlist)
        return self._allowlist[1]

    def resolve_function(self, serialized_func: str) -> tuple[Callable[..., object], bool]:
        """The callable behind "module:qualname" and whether it is a batch task.

        TaskImportError if ``allowlist`` refuses it (then nothing is imported), or it cannot
        be imported or is not callable.
        """
        registration = self._registry.get(serialized_func)
        if registration is not None:
            return registration.func, registration.batch
        target = self.allowlist.load(serialized_func)
        if isinstance(target, TaskFunction | AsyncTaskFunction | BatchTaskFunction):
            return target, target.registration.batch
        if not callable(target):
            raise TaskImportError(f"{serialized_func!r} is not callable")
        return target, False

    def resolve_loaded(self, serialized_func: str) -> tuple[Callable[..., object], bool] | None:
        """``resolve_function`` without importing anything: None if the function is not
        registered and its module not imported in this process (a worker leaves that import
        to the task's child, where a module that hangs or exits on import costs that task).
        TaskImportError if ``allowlist`` refuses the name."""
        if serialized_func in self._registry:
            return self.resolve_function(serialized_func)
        self.allowlist.check(serialized_func)
        module, qualname = split_name(serialized_func)
        if module and qualname and module not in sys.modules:
            return None
        # (its module is there, or the name is malformed: no import runs)
        return self.resolve_function(serialized_func)

    def runner_class_for(self, runner_class: str | None) -> type[BaseRunner]:
        """The runner class a payload names (DefaultRunner if none), imported if the allowlist
        allows it and checked; TaskImportError otherwise. Nothing is instantiated."""
        if runner_class is None:
            return DefaultRunner
        cls = self.allowlist.load(runner_class, "runner class")
        if not isinstance(cls, type) or not issubclass(cls, BaseRunner):
            raise TaskImportError(f"runner class {runner_class!r} is not a BaseRunner subclass")
        return cls

    def _register(
        self,
        target: Callable[..., object],
        defaults: TaskSpec,
        schedule: Schedule | Callable[[datetime], datetime | None] | None,
    ) -> TaskFunction[..., object] | AsyncTaskFunction[..., object] | BatchTaskFunction[object]:
        """Register ``target`` with its default options (``@tiger.task``); its task object."""
        if schedule is not None and not isinstance(target, type):
            _check_no_required_args(target, defaults.func)
        check_key_names(target, defaults)
        batch = bool(defaults.batch)
        if defaults.result_ttl is not None:
            _check_result_type(target, defaults.func, batch)
        registration = Registration(
            func=target, defaults=defaults, schedule=_as_schedule(schedule), batch=batch
        )
        self._registry[defaults.func] = registration
        self._allowlist = None
        if batch:
            return BatchTaskFunction(self, registration, target)
        if is_async(target):  # (an async def, or a callable wrapping one)
            coroutine_function = typing.cast("Callable[..., Coroutine[Any, Any, object]]", target)
            return AsyncTaskFunction(self, registration, coroutine_function)
        return TaskFunction(self, registration, target)

    def adopt(self, other: TaskRegistry) -> None:
        """Take over the task registrations of ``other`` (e.g. an application's Tiger found in
        a module the worker imported), so this Tiger runs its periodic and batch tasks."""
        for name, registration in other._registry.items():
            self._registry.setdefault(name, registration)
        self._allowlist = None

    def registration(self, serialized_func: str) -> Registration | None:
        """What ``@task`` registered under "module:qualname", if anything."""
        return self._registry.get(serialized_func)

    @property
    def registrations(self) -> Mapping[str, Registration]:
        """Every registered task, by "module:qualname"."""
        return dict(self._registry)


def _as_schedule(
    schedule: Schedule | Callable[[datetime], datetime | None] | None,
) -> Schedule | None:
    if schedule is None or isinstance(schedule, Periodic | Cron | CustomSchedule):
        return schedule
    return CustomSchedule(schedule)


def _check_result_type(func: Callable[..., object], name: str, batch: bool) -> None:
    """Refuse ``result_ttl`` on a task whose result could not be kept: a batch function (one
    return value for many tasks), or one whose return annotation JSON does not carry back."""
    if batch:
        raise ValueError(f"{name}: result_ttl is not available for batch tasks")
    try:
        annotation = typing.get_type_hints(func).get("return", object)
    except Exception:  # (annotations that do not resolve here: the worker checks the value)
        return
    problem = result_type_problem(annotation)
    if problem is not None:
        raise TypeError(f"{name} keeps its result (result_ttl), but {problem}")


def _check_no_required_args(func: Callable[..., object], name: str) -> None:
    try:
        inspect.signature(func).bind()
    except TypeError:
        raise ValueError(f"periodic task {name} must be callable without arguments") from None
    except ValueError:
        return
