"""Tasks queued by typedtiger, processed by TaskTiger workers, retried with the same policy and
read by TaskTiger's inspection API (and TaskTiger's records read by typedtiger's)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
from opentelemetry.sdk.trace import TracerProvider

from tests import interop_tasks
from tests.interop.conftest import (
    JOB_TIMEOUT,
    TaskTigerSide,
    entries,
    fn,
    labels,
    run_typed,
)
from tests.waiting import sleep_past, wait_until
from typedtiger import (
    JobTimeoutException,
    RetryPolicy,
    Task,
    TaskSpec,
    TaskState,
    Tiger,
    exponential,
    fixed,
    linear,
)
from typedtiger.observability.otel import instrument

pytestmark = [pytest.mark.interop, pytest.mark.redis, pytest.mark.timeout(300)]


def test_enqueued_tasks_run_on_tasktiger(
    tt: TaskTigerSide, tiger: Tiger, ledger: Path, rdb: redis.Redis[str]
) -> None:
    tiger.delay(
        interop_tasks.record,
        args=[str(ledger), "plain", 1, 2.5, "é"],
        kwargs={"flag": True, "nested": {"a": [1, None]}},
    )
    decorated = tiger.task(queue="typed", unique=True, retry=exponential(2, 3, 4))(
        interop_tasks.record
    )
    task = decorated.delay(str(ledger), "decorated")

    # TaskTiger reads typedtiger's payload, options in its own encoding.
    (queued,) = tt.tasks("typed", "queued")
    assert queued["id"] == task.id
    assert queued["func"] == fn("record")
    assert queued["data"]["unique"] is True
    assert queued["data"]["retry_method"] == ["tasktiger.retry:_exponential", [2, 3, 4]]
    assert queued["args"] == [str(ledger), "decorated"]

    tt.work()
    done = {str(entry["label"]): entry for entry in entries(ledger, "done")}
    assert set(done) == {"plain", "decorated"}
    assert done["plain"]["args"] == [1, 2.5, "é"]
    assert done["plain"]["kwargs"] == {"flag": True, "nested": {"a": [1, None]}}
    assert tiger.get_queue_stats() == {}
    assert rdb.keys("t:task:*") == []


def test_tasktiger_cli_worker_runs_typedtiger_tasks(
    tt: TaskTigerSide, tiger: Tiger, ledger: Path
) -> None:
    tiger.enqueue(TaskSpec.of(interop_tasks.record, str(ledger), "cli").evolve(queue="cli"))
    worker = tt.cli_worker("-q", "cli")  # TaskTiger's own command, TaskTiger's defaults
    wait_until(lambda: labels(ledger) == ["cli"], 20, "the CLI worker to run the task")
    wait_until(lambda: tiger.get_queue_stats() == {}, 10, "the task to be done")
    worker.kill()


def test_scheduled_tasks_run_when_due_on_tasktiger(
    tt: TaskTigerSide, tiger: Tiger, ledger: Path
) -> None:
    at = datetime.now(UTC) + timedelta(seconds=1.5)
    by_datetime = tiger.enqueue(TaskSpec.of(interop_tasks.record, str(ledger), "at"), when=at)
    tiger.enqueue(TaskSpec.of(interop_tasks.record, str(ledger), "in"), when=timedelta(seconds=1.5))
    scheduled = {task["id"]: task for task in tt.tasks("default", "scheduled")}
    assert scheduled[by_datetime.id]["ts"] == pytest.approx(at.timestamp(), abs=1e-3)

    tt.work(rounds=2)  # before they are due, unless the machine is slower than 1.5 s
    sleep_past(at.timestamp())
    tt.work(rounds=2)
    done = {str(entry["label"]): float(entry["time"]) for entry in entries(ledger, "done")}
    assert sorted(done) == ["at", "in"]
    assert min(done.values()) >= at.timestamp()  # neither ran early (both are due from at on)


def test_failure_on_tasktiger_is_read_by_typedtiger(
    tt: TaskTigerSide, tiger: Tiger, ledger: Path
) -> None:
    task = tiger.enqueue(TaskSpec.of(interop_tasks.fail, str(ledger), "broken", "CustomError"))
    tt.work()
    errored = Task.from_id(tiger, "default", TaskState.ERROR, task.id, load_executions=1)
    (execution,) = errored.executions
    assert execution.exception_name == fn("CustomError")
    assert execution.traceback is not None
    assert "CustomError: boom (broken)" in execution.traceback
    assert execution.success is False
    assert errored.n_executions() == 1


def test_handle_follows_a_task_a_tasktiger_worker_failed(
    tt: TaskTigerSide, tiger: Tiger, ledger: Path
) -> None:
    # The handle typedtiger's delay() returned reads storage, whoever moved the task since.
    task = tiger.delay(interop_tasks.fail, args=[str(ledger), "handle", "CustomError"])
    tt.work()
    assert task.n_executions() == 1
    assert task.executions[-1].exception_name == fn("CustomError")
    task.retry()
    assert [t["id"] for t in tt.tasks("default", "queued")] == [task.id]
    tt.work()
    assert task.n_executions() == 2
    task.delete()
    assert tiger.get_queue_stats() == {}


def _scheduled_score(rdb: redis.Redis[str], task_id: str) -> float:
    score = rdb.zscore("t:scheduled:default", task_id)
    assert score is not None, "the task is not scheduled"
    return float(score)


POLICIES: dict[str, tuple[RetryPolicy, list[float]]] = {
    "fixed": (fixed(3, 2), [3.0, 3.0]),
    "linear": (linear(2, 3, 2), [2.0, 5.0]),
    "exponential": (exponential(2, 3, 2), [2.0, 6.0]),
}


@pytest.mark.parametrize("policy", sorted(POLICIES))
def test_retry_policy_applies_across_a_mixed_fleet(
    tt: TaskTigerSide, tiger: Tiger, ledger: Path, rdb: redis.Redis[str], policy: str
) -> None:
    """Failures alternate between a TaskTiger and a typedtiger worker: both count retries the
    same way, so the delays follow the policy and the third failure is final."""
    retry, delays = POLICIES[policy]
    spec = TaskSpec.of(interop_tasks.fail, str(ledger), "retried").evolve(retry=retry)
    task = tiger.enqueue(spec)
    workers = [lambda: tt.work(rounds=2), lambda: run_typed(tiger)]
    for number, expected in enumerate(delays):
        before = time.time()
        workers[number % 2]()
        after = time.time()
        assert before + expected - 0.01 <= _scheduled_score(rdb, task.id) <= after + expected + 0.01
        rdb.zadd("t:scheduled:default", {task.id: time.time()})  # due now
    tt.work(rounds=2)

    (errored,) = tt.tasks("default", "error", load_executions=10)
    assert errored["id"] == task.id
    assert [e["exception_name"] for e in errored["executions"]] == ["builtins:ValueError"] * 3
    assert len(entries(ledger, "attempt")) == 3


def test_hard_timeout_on_tasktiger_worker(tt: TaskTigerSide, tiger: Tiger, ledger: Path) -> None:
    slow = tiger.task(hard_timeout=1)(interop_tasks.sleep_then_record)
    task = slow.delay(str(ledger), "slow", 30)
    assert task.payload.hard_timeout == 1  # the decorator's timeout travels in the payload

    tt.work()
    errored = Task.from_id(tiger, "default", TaskState.ERROR, task.id, load_executions=1)
    assert errored.executions[-1].exception_name == JOB_TIMEOUT
    assert labels(ledger) == []


def test_retry_on_custom_exceptions_on_tasktiger_worker(
    tt: TaskTigerSide, tiger: Tiger, ledger: Path
) -> None:
    def spec(label: str, kind: str) -> TaskSpec:
        return TaskSpec.of(interop_tasks.fail, str(ledger), label, kind).evolve(
            retry=fixed(30, 1), retry_on=[interop_tasks.CustomError]
        )

    sub = tiger.enqueue(spec("sub", "SubError"))
    other = tiger.enqueue(spec("other", "ValueError"))
    tt.work()
    assert [t["id"] for t in tt.tasks("default", "scheduled")] == [sub.id]
    assert [t["id"] for t in tt.tasks("default", "error")] == [other.id]


def test_retry_on_job_timeout_on_tasktiger_worker(
    tt: TaskTigerSide, tiger: Tiger, ledger: Path
) -> None:
    spec = TaskSpec.of(interop_tasks.sleep_then_record, str(ledger), "slow", 30).evolve(
        hard_timeout=1, retry=fixed(30, 1), retry_on=[JobTimeoutException]
    )
    task = tiger.enqueue(spec)
    tt.work()
    scheduled = Task.from_id(tiger, "default", TaskState.SCHEDULED, task.id, load_executions=1)
    assert scheduled.executions[-1].exception_name == JOB_TIMEOUT


def test_batch_queue_on_tasktiger(tt: TaskTigerSide, tiger: Tiger, ledger: Path) -> None:
    batch = tiger.task(queue="batch", batch=True)(interop_tasks.batch_record)
    for i in range(5):
        batch.delay(str(ledger), f"b{i}")
    tt.work(
        config={"BATCH_QUEUES": {"batch": 3}},
        decorate=[{"func": fn("batch_record"), "queue": "batch", "batch": True}],
    )
    done = entries(ledger, "done")
    assert sorted(str(entry["label"]) for entry in done) == [f"b{i}" for i in range(5)]
    assert sorted(int(str(entry["batch_size"])) for entry in done) == [2, 2, 3, 3, 3]


def test_subqueues_on_tasktiger(tt: TaskTigerSide, tiger: Tiger, ledger: Path) -> None:
    for queue in ("sub", "sub.a", "sub.a.b", "subx"):
        tiger.enqueue(TaskSpec.of(interop_tasks.record, str(ledger), queue).evolve(queue=queue))
    tt.work(queues=["sub"], exclude_queues=["sub.a.b"])
    assert sorted(labels(ledger)) == ["sub", "sub.a"]
    sizes = tiger.get_queue_stats()
    assert sizes == {"sub.a.b": {TaskState.QUEUED: 1}, "subx": {TaskState.QUEUED: 1}}


def test_a_traced_task_runs_on_tasktiger_which_ignores_its_trace_context(
    tt: TaskTigerSide, tiger: Tiger, ledger: Path
) -> None:
    provider = TracerProvider()
    instrument(tiger, provider)
    task = tiger.enqueue(TaskSpec.of(interop_tasks.record, str(ledger), "traced"))
    assert set(task.data["trace_context"]) == {"traceparent"}  # the field TaskTiger gets
    tt.work()
    assert labels(ledger) == ["traced"]
    assert tiger.get_queue_stats() == {}
