"""Task functions the tests enqueue (importable as tests.tasks:<name>)."""

from __future__ import annotations

from typedtiger import RetryException, Tiger, exponential
from typedtiger.runner import BatchCall

#: (function name, args...) for every call made in this process.
CALLS: list[tuple[object, ...]] = []

#: Registrations live here; test Tigers adopt them.
tiger = Tiger()


def simple(value: object = None) -> None:
    CALLS.append(("simple", value))


def add(a: int, b: int) -> int:
    CALLS.append(("add", a, b))
    return a + b


def failing(message: str = "boom") -> None:
    CALLS.append(("failing", message))
    raise ValueError(message)


def record_current() -> None:
    CALLS.append(("current", tiger.current_task.id, tiger.current_serialized_func))


def retry_me(log_error: bool = True) -> None:
    CALLS.append(("retry_me",))
    raise RetryException(log_error=log_error)


def fails_once(key: str) -> None:
    """Fail the first call with ``key`` (of the CALLS recorded), succeed after."""
    first = ("fails_once", key) not in CALLS
    CALLS.append(("fails_once", key))
    if first:
        raise ValueError(f"first call with {key}")


@tiger.task(queue="decorated", retry=exponential(60, 2, 3))
def flaky() -> None:
    CALLS.append(("flaky",))
    raise ValueError("flaky")


@tiger.task(batch=True, queue="batch")
def batch_task(calls: list[BatchCall]) -> None:
    CALLS.append(("batch", [call["args"] for call in calls], len(tiger.current_tasks)))


class Holder:
    @staticmethod
    @tiger.task(queue="static")
    def static_task(x: int) -> None:
        CALLS.append(("static", x))
