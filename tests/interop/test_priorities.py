"""Priorities with the real TaskTiger (issue 23): a TaskTiger worker claims typedtiger's
prioritised tasks in priority order (it claims the lowest queued score first, and the score
carries the priority), TaskTiger's inspection sees them as queued tasks with a time, and tasks
TaskTiger queues count as priority 0."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests import interop_tasks
from tests.interop.conftest import TaskTigerSide, labels, run_typed
from typedtiger import TaskSpec, Tiger
from typedtiger._priorities import PRIORITY_STEP

pytestmark = [pytest.mark.interop, pytest.mark.redis, pytest.mark.timeout(300)]


def enqueue(tiger: Tiger, ledger: Path, label: str, priority: int) -> None:
    spec = TaskSpec.of(interop_tasks.record, str(ledger), label).evolve(priority=priority)
    tiger.enqueue(spec)


def test_a_tasktiger_worker_claims_prioritised_tasks_in_priority_order(
    tt: TaskTigerSide, tiger: Tiger, ledger: Path
) -> None:
    for label, priority in (("a0", 0), ("b-5", -5), ("c3", 3), ("d0", 0), ("e10", 10)):
        enqueue(tiger, ledger, label, priority)
    tt.work()
    assert labels(ledger) == ["e10", "c3", "a0", "d0", "b-5"]


def test_tasktiger_lists_a_prioritised_task_as_queued_at_a_time(
    tt: TaskTigerSide, tiger: Tiger, ledger: Path
) -> None:
    before = time.time()
    enqueue(tiger, ledger, "high", 2)
    (listed,) = tt.tasks("default", "queued")
    assert listed["data"]["priority"] == 2  # a field TaskTiger keeps and ignores
    # Its ts is the queue time less the head start: a time, two steps (60 days) early.
    assert listed["ts"] == pytest.approx(before - 2 * PRIORITY_STEP, abs=60)


def test_tasks_tasktiger_queues_count_as_priority_zero(
    tt: TaskTigerSide, tiger: Tiger, ledger: Path
) -> None:
    enqueue(tiger, ledger, "low", -1)
    tt.delay("record", str(ledger), "tasktiger")
    enqueue(tiger, ledger, "high", 1)
    run_typed(tiger)
    assert labels(ledger) == ["high", "tasktiger", "low"]
