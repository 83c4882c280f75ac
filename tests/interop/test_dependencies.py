"""Dependencies with the real TaskTiger (issue 23): TaskTiger sees a waiting task as scheduled
at 9999-12-31 and never runs it early; once typedtiger released it, a TaskTiger worker runs it;
a task others wait for must be run by a typedtiger worker (TaskTiger's completion releases
nobody: the documented limit)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import interop_tasks
from tests.interop.conftest import TaskTigerSide, labels, run_typed
from typedtiger import TaskSpec, TaskState, Tiger
from typedtiger.backends.base import WAITING_SCORE

pytestmark = [pytest.mark.interop, pytest.mark.redis, pytest.mark.timeout(300)]


def record(ledger: Path, label: str, queue: str = "default") -> TaskSpec:
    return TaskSpec.of(interop_tasks.record, str(ledger), label).evolve(queue=queue)


def test_tasktiger_lists_a_waiting_task_as_scheduled_and_never_runs_it_early(
    tt: TaskTigerSide, tiger: Tiger, ledger: Path
) -> None:
    first = tiger.enqueue(record(ledger, "first", "typed"))
    second = tiger.enqueue(record(ledger, "second"), after=first)
    (listed,) = tt.tasks("default", "scheduled")
    assert listed["id"] == second.id
    assert listed["ts"] == WAITING_SCORE  # 9999-12-31 23:59:59 UTC
    tt.work(rounds=2, queues=["default"])
    assert labels(ledger) == []
    run_typed(tiger, queues=["typed"])  # typedtiger runs the first, which releases the second
    assert [task["id"] for task in tt.tasks("default", "queued")] == [second.id]
    tt.work(queues=["default"])
    assert labels(ledger) == ["first", "second"]


def test_a_task_run_by_tasktiger_releases_nobody(
    tt: TaskTigerSide, tiger: Tiger, ledger: Path
) -> None:
    first = tiger.enqueue(record(ledger, "first", "typed"))
    second = tiger.enqueue(record(ledger, "second"), after=first)
    tt.work(queues=["typed"])
    run_typed(tiger)
    assert labels(ledger) == ["first"]
    assert tiger.get_queue_sizes("default")[TaskState.SCHEDULED] == 1
    assert second.dependencies().waiting_for != ()
