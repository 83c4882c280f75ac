"""Results and status by id next to TaskTiger: its workers run tasks that keep results (and
ignore the extra payload fields and keys), typedtiger finds TaskTiger's tasks by their ids."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from tests import interop_tasks
from tests.interop.conftest import TaskTigerSide, labels, run_typed
from typedtiger import ResultExpired, Status, Task, TaskFailed, TaskSpec, TaskState, Tiger

pytestmark = [pytest.mark.interop, pytest.mark.redis, pytest.mark.timeout(300)]


def test_tasktiger_workers_run_tasks_that_keep_results(
    tt: TaskTigerSide, tiger: Tiger, ledger: Path, rdb: redis.Redis[str]
) -> None:
    done = tiger.enqueue(
        TaskSpec.of(interop_tasks.record, str(ledger), "kept").evolve(result_ttl=60)
    )
    failed = tiger.enqueue(TaskSpec.of(interop_tasks.fail, str(ledger), "f").evolve(result_ttl=60))
    assert tiger.status(done.id).status is Status.QUEUED
    # TaskTiger reads the payload, extra fields and all.
    (listed,) = [task for task in tt.tasks("default", "queued") if task["id"] == done.id]
    assert listed["data"]["result_ttl"] == 60 and listed["data"]["queue"] == "default"

    tt.work()
    assert labels(ledger) == ["kept"] and labels(ledger, "attempt") == ["f"]
    # TaskTiger keeps no result: the task is gone without one.
    assert rdb.keys(f"t:task:{done.id}*") == []
    assert tiger.status(done.id).status is Status.UNKNOWN
    with pytest.raises(ResultExpired, match="no longer stored"):
        done.result(timeout=0)
    # Its failure is read from the error state, where TaskTiger filed it.
    assert tiger.status(failed.id).status is Status.ERROR
    with pytest.raises(TaskFailed) as caught:
        failed.result(timeout=0)
    assert caught.value.exception_name == "builtins:ValueError"
    # (TaskTiger records no message: the traceback's last line stands for it)
    assert caught.value.message == "ValueError: boom (f)"
    assert caught.value.traceback is not None and "interop_tasks.py" in caught.value.traceback


def test_tasktiger_runs_its_tasks_beside_typedtiger_results(
    tt: TaskTigerSide, tiger: Tiger, ledger: Path, rdb: redis.Redis[str]
) -> None:
    kept = tiger.enqueue(TaskSpec.of(interop_tasks.record, str(ledger), "a").evolve(result_ttl=60))
    run_typed(tiger)
    assert kept.result(timeout=0) is None  # (record returns None)
    assert rdb.exists(f"t:task:{kept.id}:result")

    theirs = tt.delay("record", str(ledger), "b")
    tt.work()
    assert labels(ledger) == ["a", "b"]
    assert tiger.get_queue_stats() == {}
    assert tiger.status(theirs["id"]).status is Status.UNKNOWN
    assert tiger.status(kept.id).status is Status.SUCCEEDED


def test_status_finds_tasks_tasktiger_enqueued(tt: TaskTigerSide, tiger: Tiger) -> None:
    theirs = tt.delay("record", "unused", "c", queue="theirs")
    found = tiger.status(theirs["id"])  # no "queue" in TaskTiger's payload: every queue looked at
    assert (found.status, found.queue) == (Status.QUEUED, "theirs")
    task = Task.from_id(tiger, theirs["id"])
    assert (task.queue, task.state, task.args) == ("theirs", TaskState.QUEUED, ("unused", "c"))
