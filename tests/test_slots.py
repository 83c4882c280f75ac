"""JobSlots refuses what it cannot do, and says when a job has started; running jobs side by
side is covered by the worker tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from typedtiger._outcome import Outcome, Succeeded
from typedtiger._slots import JobSlots
from typedtiger.executor import ForkExecutor, Job, SyncExecutor

EVENTS: list[str] = []


class _Started:
    def wait(self, heartbeat: Callable[[], None], heartbeat_interval: float) -> Outcome:
        EVENTS.append("wait")
        return Succeeded(time_started=0, time_finished=0)


class _StartingExecutor:
    """A ConcurrentExecutor that records the order of calls."""

    def execute(
        self, job: Job, heartbeat: Callable[[], None], heartbeat_interval: float
    ) -> Outcome:
        raise AssertionError("a job that can be started is started, then waited for")

    def start(self, job: Job) -> _Started:
        EVENTS.append("start")
        return _Started()

    def close(self) -> None:
        pass


class _RunningExecutor:
    """An Executor that can only run a job to its end."""

    def execute(
        self, job: Job, heartbeat: Callable[[], None], heartbeat_interval: float
    ) -> Outcome:
        EVENTS.append("execute")
        return Succeeded(time_started=0, time_finished=0)

    def close(self) -> None:
        pass


def test_concurrency_needs_an_executor_that_can_start_jobs() -> None:
    with pytest.raises(ValueError, match="SyncExecutor cannot"):
        JobSlots(SyncExecutor(), 2, 1.0)
    with pytest.raises(ValueError, match="concurrency must be >= 1"):
        JobSlots(ForkExecutor(), 0, 1.0)
    assert JobSlots(ForkExecutor(), 2, 1.0).side_by_side
    assert not JobSlots(SyncExecutor(), 1, 1.0).side_by_side


@pytest.mark.parametrize(
    ("executor", "expected"),
    [
        (_StartingExecutor(), ["start", "on_start", "wait", "record"]),
        (_RunningExecutor(), ["on_start", "execute", "record"]),
    ],
)
def test_on_start_comes_after_the_start_when_the_executor_can_tell(
    executor: _StartingExecutor | _RunningExecutor, expected: list[str]
) -> None:
    EVENTS.clear()
    slots = JobSlots(executor, 1, 1.0)
    job: Job = object()  # type: ignore[assignment]  # (the executors above never look at it)
    slots.run(
        job,
        lambda: None,
        lambda outcome: EVENTS.append("record"),
        on_start=lambda: EVENTS.append("on_start"),
    )
    assert expected == EVENTS
