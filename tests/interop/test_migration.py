"""docs/migrating-from-tasktiger.md, end to end: a queue holding TaskTiger work in all four
states (queued, scheduled, active under a killed TaskTiger worker, error) is taken over by
typedtiger workers while TaskTiger keeps the other queues, and nothing is lost."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis

from tests import interop_tasks
from tests.interop.conftest import (
    TaskTigerSide,
    entries,
    fn,
    labels,
    run_typed,
)
from tests.waiting import scaled, wait_until
from typedtiger import Task, TaskSpec, TaskState, Tiger
from typedtiger.executor import ForkExecutor

pytestmark = [pytest.mark.interop, pytest.mark.redis, pytest.mark.timeout(300)]


def test_a_queue_is_taken_over_with_nothing_lost(
    tt: TaskTigerSide, tiger: Tiger, ledger: Path, tmp_path: Path, rdb: redis.Redis[str]
) -> None:
    flag = tmp_path / "bug-fixed"

    # --- Before: TaskTiger clients and workers only. ------------------------------------------
    # error: a task that failed for good on a TaskTiger worker.
    errored = tt.delay("fail_unless_exists", str(ledger), "errored", str(flag), queue="billing")
    tt.work(queues=["billing"])
    # active: a task whose TaskTiger worker is killed (SIGKILL, with its child) mid-task.
    hung = tt.delay("hang_once", str(ledger), "hung", queue="billing")
    doomed = tt.start({"op": "worker", "queues": ["billing"]})
    wait_until(lambda: labels(ledger, "started") == ["hung"], 15, "the task to start")
    doomed.kill()
    # queued and scheduled work, and another queue that stays on TaskTiger.
    tt.run(
        {"op": "delay", "func": fn("record"), "args": [str(ledger), "queued"], "queue": "billing"},
        {
            "op": "delay",
            "func": fn("record"),
            "args": [str(ledger), "unique"],
            "queue": "billing",
            "unique": True,
        },
        {
            "op": "delay",
            "func": fn("record"),
            "args": [str(ledger), "scheduled"],
            "queue": "billing",
            "when": {"in": 2},
        },
        {"op": "delay", "func": fn("record"), "args": [str(ledger), "other"], "queue": "reports"},
    )
    assert tt.sizes("billing") == {"queued": 2, "active": 1, "scheduled": 1}
    assert [task["id"] for task in tt.tasks("billing", "error")] == [errored["id"]]

    # --- Step 2: move one queue. TaskTiger workers now exclude it (-e billing) ... ------------
    tt.work(exclude_queues=["billing"])
    assert labels(ledger) == ["other"]
    assert tt.sizes("billing") == {"queued": 2, "active": 1, "scheduled": 1}

    # ... and typedtiger workers serve it (-q billing) until its work is done. The killed
    # worker's task is requeued once its heartbeat is older than active_task_update_timeout.
    deadline = time.monotonic() + scaled(20)
    while not {"queued", "unique", "scheduled", "hung"} <= set(labels(ledger)):
        assert time.monotonic() < deadline, (labels(ledger), tiger.get_queue_stats())
        run_typed(tiger, queues=["billing"], executor=ForkExecutor())
        time.sleep(0.2)

    # --- Step 3: watch. The errored task, with TaskTiger's execution record, is readable and
    # retried through typedtiger once its bug is fixed. ------------------------------------------
    _, (failed,) = Task.tasks_from_queue(tiger, "billing", TaskState.ERROR, load_executions=1)
    assert failed.id == errored["id"]
    assert failed.executions[-1].exception_name == "builtins:ValueError"
    assert failed.executions[-1].traceback is not None
    assert "bug-fixed is missing (errored)" in failed.executions[-1].traceback
    flag.touch()
    failed.retry()
    run_typed(tiger, queues=["billing"], executor=ForkExecutor())

    # --- Step 5: switch clients. typedtiger enqueues for both kinds of worker. ---------------
    tiger.enqueue(TaskSpec.of(interop_tasks.record, str(ledger), "new").evolve(queue="billing"))
    tiger.enqueue(TaskSpec.of(interop_tasks.record, str(ledger), "report").evolve(queue="reports"))
    run_typed(tiger, queues=["billing"])
    tt.work(exclude_queues=["billing"])

    # --- Nothing lost, nothing run twice. --------------------------------------------------------
    done = labels(ledger)
    expected = ["errored", "hung", "new", "other", "queued", "report", "scheduled", "unique"]
    assert sorted(done) == expected
    assert [e["label"] for e in entries(ledger, "started")] == ["hung", "hung"]  # killed, rerun
    assert tiger.get_queue_stats() == {}
    assert rdb.keys("t:task:*") == []
    assert hung["id"] not in str(rdb.keys("*"))
