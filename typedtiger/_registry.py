"""Task registrations and the typed task objects ``@tiger.task`` returns."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Generic, ParamSpec, TypeVar

import attrs

from typedtiger._json import JSONValue
from typedtiger.runner import BatchCall
from typedtiger.spec import Custom, Schedule, TaskSpec

if TYPE_CHECKING:
    from typedtiger.task import Task
    from typedtiger.tiger import Tiger

__all__ = ["BatchTaskFunction", "Registration", "TaskFunction"]

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


class _Registered:
    """What task objects share: the registration and the Tiger they enqueue through."""

    __name__: str
    __qualname__: str
    __doc__: str | None

    def __init__(self, tiger: Tiger, registration: Registration) -> None:
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


class TaskFunction(_Registered, Generic[P, R]):
    """A function registered with ``@tiger.task``: call it to run it here, ``.delay()`` to queue it.

    Options are changed per call with ``task.spec(...).evolve(...)`` and ``tiger.enqueue``.
    """

    __wrapped__: Callable[P, R]

    def __init__(self, tiger: Tiger, registration: Registration, func: Callable[P, R]) -> None:
        super().__init__(tiger, registration)
        self._func = func

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self._func(*args, **kwargs)

    def spec(self, *args: P.args, **kwargs: P.kwargs) -> TaskSpec:
        """The TaskSpec of a call with these arguments (options from the registration)."""
        return TaskSpec.of(self._func, *args, **kwargs).inherit(self._registration.defaults)

    def delay(self, *args: P.args, **kwargs: P.kwargs) -> Task:
        """Queue a call with these arguments now; returns its Task."""
        return self._tiger.enqueue(self.spec(*args, **kwargs))

    def delay_at(self, when: datetime | timedelta, /, *args: P.args, **kwargs: P.kwargs) -> Task:
        """Queue a call to run at ``when`` (a datetime, or a delay from now)."""
        return self._tiger.enqueue(self.spec(*args, **kwargs), when=when)


class BatchTaskFunction(_Registered, Generic[R]):
    """A ``batch=True`` task: workers call it with a list of ``BatchCall`` records.

    ``.delay(*args, **kwargs)`` queues one call; the arguments are JSON values.
    """

    def __init__(self, tiger: Tiger, registration: Registration, func: Callable[..., R]) -> None:
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
