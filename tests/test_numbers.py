"""The numbers of a task: finite and in range when the spec is made, never first at run time.

hard_timeout and retry delays are seconds in (0 or) 0..MAX_SECONDS (a year), counts are
integers up to MAX_COUNT, periodic schedules run every 1 s to a year. Before, a hard_timeout of
1e308 was accepted at enqueue and failed only when the task ran.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest

from tests import option_tasks
from tests.keys import keys_matching
from typedtiger import Tiger, exponential, fixed, linear, periodic
from typedtiger._allowlist import Allowlist
from typedtiger.backends.redis import RedisBackend
from typedtiger.config import Config
from typedtiger.serialization import TaskPayload
from typedtiger.spec import MAX_COUNT, MAX_SECONDS, Custom, Periodic, TaskSpec
from typedtiger.task import TaskState
from typedtiger.worker.job import Failed
from typedtiger.worker.retry import decide

NAN, INF = math.nan, math.inf
A_YEAR = 365 * 24 * 3600


def test_the_bounds() -> None:
    assert MAX_SECONDS == A_YEAR
    assert Config().default_hard_timeout <= MAX_SECONDS
    assert MAX_COUNT == 2**31 - 1


@pytest.mark.parametrize("value", [1e308, INF, NAN, 0, -1, A_YEAR + 1, 10**400, True, "5"])
def test_a_hard_timeout_out_of_range_is_refused_wherever_it_is_given(value: object) -> None:
    makers: list[Callable[[], object]] = [
        lambda: TaskSpec.of(option_tasks.keyed, 1).evolve(hard_timeout=value),  # type: ignore[arg-type]
        lambda: TaskSpec(func="m:f", hard_timeout=value),  # type: ignore[arg-type]
        lambda: Tiger().task(hard_timeout=value)(option_tasks.keyed),  # type: ignore[call-overload]
    ]
    for make in makers:
        with pytest.raises(ValueError, match=r"hard_timeout must be > 0 and <= 31536000 seconds"):
            make()


@pytest.mark.parametrize("value", [0.001, 1, 300.5, A_YEAR])
def test_a_hard_timeout_in_range_is_taken(value: float) -> None:
    assert TaskSpec(func="m:f", hard_timeout=value).hard_timeout == value


@pytest.mark.parametrize(("field", "low"), [("max_queue_size", 1), ("max_stored_executions", 0)])
@pytest.mark.parametrize("value", [-1, 1.5, 2.0, NAN, INF, True, MAX_COUNT + 1, 10**30])
def test_a_count_out_of_range_is_refused(field: str, low: int, value: object) -> None:
    with pytest.raises(
        ValueError, match=rf"{field} must be an integer >= {low} and <= {MAX_COUNT}"
    ):
        TaskSpec(func="m:f", **{field: value})  # type: ignore[arg-type]


def test_a_max_queue_size_of_zero_is_refused() -> None:
    with pytest.raises(ValueError, match="max_queue_size must be an integer >= 1"):
        TaskSpec(func="m:f", max_queue_size=0)


@pytest.mark.parametrize(("field", "low"), [("max_queue_size", 1), ("max_stored_executions", 0)])
def test_counts_in_range_are_taken(field: str, low: int) -> None:
    for value in (low, 1, MAX_COUNT):
        assert getattr(TaskSpec(func="m:f", **{field: value}), field) == value  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"hard_timeout": 1e308}, "hard_timeout must be > 0"),
        ({"hard_timeout": NAN}, "hard_timeout must be > 0"),
        ({"max_queue_size": NAN}, "max_queue_size must be an integer"),
        ({"max_stored_executions": -1}, "max_stored_executions must be an integer"),
        ({"retry_method": fixed(60, 3), "hard_timeout": INF}, "hard_timeout must be > 0"),
    ],
)
def test_tiger_delay_refuses_bad_numbers_and_writes_nothing(
    backend: RedisBackend, options: dict[str, object], message: str
) -> None:
    tiger = Tiger(backend)
    with pytest.raises(ValueError, match=message):
        tiger.delay(option_tasks.keyed, kwargs={"user_id": 1}, **options)  # type: ignore[arg-type]
    assert keys_matching(backend, "*") == []


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: fixed(NAN, 3), "delay must be >= 0 and <= 31536000 seconds"),
        (lambda: fixed(1e308, 3), "delay must be >= 0 and <= 31536000 seconds"),
        (lambda: fixed(-1, 3), "delay must be >= 0"),
        (lambda: fixed(60, NAN), "max_retries must be an integer >= 0"),  # type: ignore[arg-type]
        (lambda: fixed(60, 1.5), "max_retries must be an integer >= 0"),  # type: ignore[arg-type]
        (lambda: fixed(60, -1), "max_retries must be an integer >= 0"),
        (
            lambda: fixed(60, MAX_COUNT + 1),
            f"max_retries must be an integer >= 0 and <= {MAX_COUNT}",
        ),
        (lambda: linear(60, INF, 3), "increment must be >= 0 and <= 31536000 seconds"),
        (lambda: linear(60, NAN, 3), "increment must be >= 0"),
        (lambda: exponential(60, NAN, 3), "factor must be a finite number >= 0"),
        (lambda: exponential(60, INF, 3), "factor must be a finite number >= 0"),
        (lambda: exponential(60, -2, 3), "factor must be a finite number >= 0"),
        (lambda: fixed(10**400, 3), "delay must be >= 0"),
        (lambda: exponential(INF, 2, 3), "delay must be >= 0"),
    ],
)
def test_retry_policy_numbers_out_of_range_are_refused(
    make: Callable[[], object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        make()


def test_a_growing_retry_delay_stops_at_a_year() -> None:
    assert exponential(60, 2, 100).delay_for(100) == MAX_SECONDS
    assert exponential(60, 10.0, 5000).delay_for(5000) == MAX_SECONDS  # past a float, no error
    assert exponential(0, 10.0, 5000).delay_for(5000) == 0
    assert exponential(60, 2, 3).delay_for(3) == 240
    assert linear(60, 1e7, 100).delay_for(100) == MAX_SECONDS
    assert linear(60, 30, 3).delay_for(3) == 120


def returns_nan(retry_number: int) -> float:
    return NAN


def returns_two_years(retry_number: int) -> float:
    return 2 * A_YEAR


def returns_negative(retry_number: int) -> float:
    return -1


def returns_text(retry_number: int) -> object:
    return "60"


@pytest.mark.parametrize(
    "func",
    [returns_nan, returns_two_years, returns_negative, returns_text],
    ids=lambda f: f.__name__,
)
def test_a_custom_retry_delay_out_of_range_gives_the_task_up(func: Callable[[int], float]) -> None:
    payload = TaskPayload(id="t", func="m:f", retry_method=Custom.of(func))
    failed = Failed(
        time_started=0,
        time_failed=1,
        exception_name="builtins:ValueError",
        exception_mro=("builtins:ValueError",),
        message="boom",
    )

    decision = decide(payload, failed, 1, 1000.0, fixed(60, 3), Allowlist(modules=("tests",)))

    assert decision.to_state is TaskState.ERROR
    assert "not a number of seconds >= 0 and <= 31536000" in (decision.reason or "")


@pytest.mark.parametrize(
    "make",
    [
        lambda: periodic(seconds=0),
        lambda: periodic(seconds=0.5),
        lambda: periodic(seconds=NAN),
        lambda: periodic(days=366),
        lambda: Periodic(INF),
        lambda: Periodic(1e-300),
        lambda: periodic(weeks=10**400),
    ],
)
def test_a_periodic_interval_out_of_range_is_refused(make: Callable[[], object]) -> None:
    with pytest.raises(ValueError, match="a periodic schedule needs a period of at least 1 second"):
        make()


def test_periodic_intervals_in_range_are_taken() -> None:
    assert periodic(seconds=1).period == 1
    assert periodic(days=365).period == MAX_SECONDS
    assert periodic(minutes=0.1).period == 6  # to the microsecond, not 6.000000000000001
