"""Tasks that keep their results (importable as tests.result_tasks:<name>)."""

from __future__ import annotations

from datetime import timedelta
from typing import TypedDict

from typedtiger import RetryException, Tiger, fixed

#: Registrations live here; test Tigers adopt them.
tiger = Tiger()


class Summary(TypedDict):
    total: int
    names: list[str]


@tiger.task(result_ttl=timedelta(hours=1))
def multiply(a: int, b: int) -> int:
    return a * b


@tiger.task(result_ttl=60)
def summarise(names: list[str]) -> Summary:
    return {"total": len(names), "names": sorted(names)}


@tiger.task(result_ttl=60)
def nothing() -> None:
    return None


@tiger.task(result_ttl=60)
def explode(message: str) -> int:
    raise ValueError(message)


@tiger.task(result_ttl=60, retry=fixed(30, 2))
def explode_with_retries(message: str) -> int:
    raise KeyError(message)


@tiger.task(result_ttl=60)
def give_up_quietly() -> int:
    raise RetryException(method=fixed(1, 0), log_error=False)


@tiger.task(result_ttl=60)
def lies_about_its_type() -> list[int]:
    return {1, 2}  # type: ignore[return-value]  # (a set: JSON cannot carry it)


@tiger.task(result_ttl=60, queue="later")
def later(value: int) -> int:
    return value


@tiger.task
def keeps_nothing(value: int) -> int:
    return value


# --- functions result_ttl is refused for (or accepted), decorated by the tests ----------------


def as_set() -> set[int]:
    return set()


def as_tuple() -> tuple[int, int]:
    return (1, 2)


def int_keys() -> dict[int, str]:
    return {}


def optional_list() -> list[dict[str, float]] | None:
    return None


def unannotated():  # type: ignore[no-untyped-def]
    return 1
