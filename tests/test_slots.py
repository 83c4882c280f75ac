"""JobSlots refuses what it cannot do, and says when a job has started; running jobs side by
side is covered by the worker tests."""

from __future__ import annotations

import attrs
import pytest

from typedtiger.executor import (
    ExecutorSettings,
    ForkExecutor,
    Job,
    Outcome,
    RunJob,
    Succeeded,
    SyncExecutor,
)
from typedtiger.worker.slots import JobSlots

EVENTS: list[str] = []


class _Started:
    def wait(self, timeout: float | None) -> Outcome:
        EVENTS.append("wait")
        return Succeeded(time_started=0, time_finished=0)


@attrs.define
class _StartingExecutor:
    """An executor that records the order of calls."""

    side_by_side: bool = False

    def bind(self, settings: ExecutorSettings) -> None:
        pass

    def start(self, job: Job, run: RunJob) -> _Started:
        EVENTS.append("start")
        return _Started()

    def close(self) -> None:
        pass


def now() -> float:
    return 0.0


def test_concurrency_needs_an_executor_that_can_run_jobs_side_by_side() -> None:
    with pytest.raises(ValueError, match="SyncExecutor cannot"):
        JobSlots(SyncExecutor(), 2, now)
    with pytest.raises(ValueError, match="concurrency must be >= 1"):
        JobSlots(ForkExecutor(), 0, now)
    assert JobSlots(ForkExecutor(), 2, now).side_by_side
    assert not JobSlots(SyncExecutor(), 1, now).side_by_side


@pytest.mark.parametrize("side_by_side", [False, True])
def test_on_start_comes_after_the_start(side_by_side: bool) -> None:
    EVENTS.clear()
    slots = JobSlots(_StartingExecutor(side_by_side), 1, now)
    job: Job = object()  # type: ignore[assignment]  # (the executor above never looks at it)
    slots.run(
        job,
        lambda job: Succeeded(time_started=0, time_finished=0),
        lambda outcome: EVENTS.append("record"),
        on_start=lambda: EVENTS.append("on_start"),
    )
    assert EVENTS == ["start", "on_start", "wait", "record"]
