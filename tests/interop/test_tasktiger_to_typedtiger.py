"""Tasks queued by TaskTiger clients, processed by typedtiger workers with TaskTiger's semantics.

Failures land in the error state where TaskTiger's own inspection API reads them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from tests import interop_tasks
from tests.interop.conftest import (
    JOB_TIMEOUT,
    TaskTigerSide,
    entries,
    fn,
    labels,
    run_typed,
    tiger_with,
)
from tests.waiting import scaled, sleep_past
from typedtiger import Task, TaskState, Tiger
from typedtiger.executor import AsyncioExecutor, Executor, ForkExecutor, SyncExecutor
from typedtiger.serialization import unique_task_id
from typedtiger.spec import Exponential

pytestmark = [pytest.mark.interop, pytest.mark.redis, pytest.mark.timeout(300)]


def test_delayed_and_decorated_tasks_run_on_typedtiger(
    tt: TaskTigerSide, tiger: Tiger, ledger: Path, rdb: redis.Redis[str]
) -> None:
    tt.delay(
        "record",
        str(ledger),
        "plain",
        1,
        2.5,
        "é",
        kwargs={"flag": True, "nested": {"a": [1, None]}},
    )
    tt.one(
        {
            "op": "delay",
            "func": fn("record"),
            "args": [str(ledger), "decorated"],
            "decorated": True,
        },
        decorate=[
            {
                "func": fn("record"),
                "queue": "decorated",
                "unique": True,
                "retry_method": ["exponential", [2, 3, 4]],
                "max_stored_executions": 5,
            }
        ],
    )
    # typedtiger reads TaskTiger's payloads: the decorator's options are in the payload.
    _, (decorated,) = Task.tasks_from_queue(tiger, "decorated", TaskState.QUEUED)
    assert decorated.payload.unique
    assert decorated.payload.retry_method == Exponential(2, 3, 4)
    assert decorated.payload.max_stored_executions == 5

    run_typed(tiger)

    done = {str(entry["label"]): entry for entry in entries(ledger, "done")}
    assert set(done) == {"plain", "decorated"}
    assert done["plain"]["args"] == [1, 2.5, "é"]
    assert done["plain"]["kwargs"] == {"flag": True, "nested": {"a": [1, None]}}
    empty = {"queued": 0, "active": 0, "scheduled": 0}
    assert tt.sizes("default") == tt.sizes("decorated") == empty
    assert rdb.keys("t:task:*") == []


def test_when_schedules_the_task(
    tt: TaskTigerSide, tiger: Tiger, ledger: Path, rdb: redis.Redis[str]
) -> None:
    before = time.time()
    at = before + 2.5
    relative, absolute = tt.run(
        {"op": "delay", "func": fn("record"), "args": [str(ledger), "rel"], "when": {"in": 2}},
        {"op": "delay", "func": fn("record"), "args": [str(ledger), "abs"], "when": {"at": at}},
    )
    assert relative["state"] == absolute["state"] == "scheduled"
    handle = Task.from_id(tiger, "default", TaskState.SCHEDULED, absolute["id"])
    assert handle.ts is not None
    assert handle.ts.timestamp() == pytest.approx(at, abs=1e-3)

    run_typed(tiger)  # before they are due, unless the machine is slower than 2 s
    sleep_past(at)
    run_typed(tiger)
    done = {str(entry["label"]): float(entry["time"]) for entry in entries(ledger, "done")}
    assert sorted(done) == ["abs", "rel"]
    assert done["rel"] >= before + 2 and done["abs"] >= at  # neither ran early
    assert rdb.keys("t:*") == []


@pytest.mark.parametrize("executor", ["sync", "fork"])
def test_failure_is_read_by_tasktiger_with_its_traceback(
    tt: TaskTigerSide, tiger: Tiger, ledger: Path, executor: str
) -> None:
    task = tt.delay("fail", str(ledger), "broken", queue="jobs")
    run_typed(tiger, executor=SyncExecutor() if executor == "sync" else ForkExecutor())

    (errored,) = tt.tasks("jobs", "error", load_executions=1)
    assert errored["id"] == task["id"]
    assert errored["func"] == fn("fail")
    (execution,) = errored["executions"]
    assert execution["exception_name"] == "builtins:ValueError"
    assert execution["success"] is False
    assert "ValueError: boom (broken)" in execution["traceback"]
    assert "interop_tasks.py" in execution["traceback"]
    assert execution["time_started"] <= execution["time_failed"]
    assert isinstance(execution["host"], str)
    assert errored["ts"] == pytest.approx(execution["time_failed"], abs=1)


RETRY_POLICIES = {
    "fixed": (["fixed", [3, 2]], [3.0, 3.0]),
    "linear": (["linear", [2, 3, 2]], [2.0, 5.0]),
    "exponential": (["exponential", [2, 3, 2]], [2.0, 6.0]),
}


@pytest.mark.parametrize("policy", sorted(RETRY_POLICIES))
def test_retry_policies_apply_as_in_tasktiger(
    tt: TaskTigerSide, tiger: Tiger, ledger: Path, rdb: redis.Redis[str], policy: str
) -> None:
    method, delays = RETRY_POLICIES[policy]
    task = tt.delay("fail", str(ledger), "retried", retry_method=method)
    for expected in delays:
        before = time.time()
        run_typed(tiger)
        after = time.time()
        (scheduled,) = tt.tasks("default", "scheduled")
        assert before + expected - 0.01 <= scheduled["ts"] <= after + expected + 0.01
        rdb.zadd("t:scheduled:default", {task["id"]: time.time()})  # due now
    run_typed(tiger)  # the retries are used up: the third failure is final

    (errored,) = tt.tasks("default", "error", load_executions=10)
    assert [e["exception_name"] for e in errored["executions"]] == ["builtins:ValueError"] * 3
    assert len(entries(ledger, "attempt")) == 3


def test_retry_true_uses_tasktigers_default_policy(
    tt: TaskTigerSide, tiger: Tiger, ledger: Path
) -> None:
    task = tt.delay("fail", str(ledger), "default-policy", retry=True)
    assert task["data"]["retry_method"] == ["tasktiger.retry:_fixed", [60, 3]]
    before = time.time()
    run_typed(tiger)
    after = time.time()
    (scheduled,) = tt.tasks("default", "scheduled")
    assert before + 60 - 0.01 <= scheduled["ts"] <= after + 60 + 0.01


def test_retry_on_names_resolve(tt: TaskTigerSide, tiger: Tiger, ledger: Path) -> None:
    options = {"retry_on": [fn("CustomError")], "retry_method": ["fixed", [5, 1]]}
    sub = tt.delay("fail", str(ledger), "sub", "SubError", **options)
    other = tt.delay("fail", str(ledger), "other", "ValueError", **options)
    run_typed(tiger)
    assert [t["id"] for t in tt.tasks("default", "scheduled")] == [sub["id"]]
    assert [t["id"] for t in tt.tasks("default", "error")] == [other["id"]]


def test_hard_timeout_is_recorded_under_tasktigers_name(
    tt: TaskTigerSide, tiger: Tiger, ledger: Path
) -> None:
    plain = tt.delay("sleep_then_record", str(ledger), "plain", 30, hard_timeout=1)
    retried = tt.delay(
        "sleep_then_record",
        str(ledger),
        "retried",
        30,
        hard_timeout=1,
        retry_on=[JOB_TIMEOUT],
        retry_method=["fixed", [30, 1]],
    )
    started = time.monotonic()
    run_typed(tiger, executor=ForkExecutor(kill_grace=0.5))
    assert time.monotonic() - started < scaled(10)
    assert labels(ledger) == []

    (errored,) = tt.tasks("default", "error", load_executions=1)
    assert errored["id"] == plain["id"]
    assert errored["executions"][-1]["exception_name"] == JOB_TIMEOUT
    # retry_on=[tasktiger's JobTimeoutException] matches typedtiger's timeout.
    (scheduled,) = tt.tasks("default", "scheduled", load_executions=1)
    assert scheduled["id"] == retried["id"]
    assert scheduled["executions"][-1]["exception_name"] == JOB_TIMEOUT


@pytest.mark.parametrize("side", ["tasktiger", "typedtiger"])
def test_killed_child_is_retried_by_retry_on_job_timeout_on_both_sides(
    tt: TaskTigerSide, tiger: Tiger, ledger: Path, side: str
) -> None:
    # TaskTiger users re-run crashed tasks with retry_on=[JobTimeoutException].
    options = {"retry_on": [JOB_TIMEOUT], "retry_method": ["fixed", [30, 1]]}
    crashed = tt.delay("die", str(ledger), "crash", **options)
    plain = tt.delay("die", str(ledger), "plain")
    if side == "tasktiger":
        tt.work()
    else:
        run_typed(tiger, executor=ForkExecutor())
    assert sorted(labels(ledger, "started")) == ["crash", "plain"]

    (scheduled,) = tt.tasks("default", "scheduled", load_executions=1)
    assert scheduled["id"] == crashed["id"]
    assert [t["id"] for t in tt.tasks("default", "error")] == [plain["id"]]
    if side == "typedtiger":  # the record keeps the true cause
        assert scheduled["executions"][-1]["exception_name"] == (
            "typedtiger.exceptions:ChildProcessDied"
        )


def test_decorator_hard_timeout_needs_the_typedtiger_registration(
    tt: TaskTigerSide, tiger: Tiger, ledger: Path
) -> None:
    """TaskTiger keeps a decorator's hard_timeout on the function, not in the payload: a
    typedtiger worker applies it once the task is registered with typedtiger too."""
    tt.one(
        {
            "op": "delay",
            "func": fn("sleep_then_record"),
            "args": [str(ledger), "slow", 30],
            "decorated": True,
        },
        decorate=[{"func": fn("sleep_then_record"), "queue": "slow", "hard_timeout": 1}],
    )
    tiger.task(queue="slow", hard_timeout=1)(interop_tasks.sleep_then_record)

    started = time.monotonic()
    run_typed(tiger, executor=ForkExecutor(kill_grace=0.5))
    assert time.monotonic() - started < scaled(10)
    (errored,) = tt.tasks("slow", "error", load_executions=1)
    assert errored["executions"][-1]["exception_name"] == JOB_TIMEOUT


def test_batch_queue(tt: TaskTigerSide, rdb: redis.Redis[str], ledger: Path) -> None:
    """TaskTiger keeps batch=True on the function: the typedtiger registration says it too."""
    tt.run(
        *(
            {
                "op": "delay",
                "func": fn("batch_record"),
                "args": [str(ledger), f"b{i}"],
                "decorated": True,
            }
            for i in range(5)
        ),
        decorate=[{"func": fn("batch_record"), "queue": "batch", "batch": True}],
    )
    tiger = tiger_with(rdb, batch_queues={"batch": 3})
    tiger.task(queue="batch", batch=True)(interop_tasks.batch_record)
    run_typed(tiger)

    batch = entries(ledger, "done")
    assert sorted(str(entry["label"]) for entry in batch) == [f"b{i}" for i in range(5)]
    assert sorted(int(str(entry["batch_size"])) for entry in batch) == [2, 2, 3, 3, 3]
    assert tt.sizes("batch")["queued"] == 0


@pytest.mark.parametrize("side", ["tasktiger", "typedtiger"])
def test_batch_tasks_claimed_between_others_run_as_one_batch(
    tt: TaskTigerSide, rdb: redis.Redis[str], ledger: Path, side: str
) -> None:
    """Claimed b0, r0, b1, r1, b2: the batch function is called once with [b0, b1, b2], on
    either side."""
    decorate = [{"func": fn("batch_record"), "queue": "batch", "batch": True}]
    commands = []
    for i in range(3):
        batch = {"op": "delay", "func": fn("batch_record"), "args": [str(ledger), f"b{i}"]}
        commands.append({**batch, "decorated": True})
        if i < 2:
            record = [str(ledger), f"r{i}"]
            commands.append({"op": "delay", "func": fn("record"), "args": record, "queue": "batch"})
    tt.run(*commands, decorate=decorate)
    if side == "tasktiger":
        tt.work(config={"BATCH_QUEUES": {"batch": 5}}, decorate=decorate)
    else:
        tiger = tiger_with(rdb, batch_queues={"batch": 5})
        tiger.task(queue="batch", batch=True)(interop_tasks.batch_record)
        run_typed(tiger)

    done = entries(ledger, "done")
    assert sorted(str(entry["label"]) for entry in done) == ["b0", "b1", "b2", "r0", "r1"]
    sizes = {str(entry["label"]): entry.get("batch_size") for entry in done}
    assert [sizes[f"b{i}"] for i in range(3)] == [3, 3, 3]


@pytest.mark.parametrize("side", ["tasktiger", "typedtiger"])
def test_batch_tasks_sharing_a_lock_key_run_in_one_batch(
    tt: TaskTigerSide, rdb: redis.Redis[str], ledger: Path, side: str
) -> None:
    """The batch takes the lock once for the tasks that name it (TaskTiger's)."""
    options = {"func": fn("batch_record"), "queue": "batch", "batch": True}
    decorate = [{**options, "lock_key": ["resource"]}]
    tt.run(
        *(
            {
                "op": "delay",
                "func": fn("batch_record"),
                "args": [str(ledger), label],
                "kwargs": {"resource": "r1"},
                "decorated": True,
            }
            for label in ("l0", "l1")
        ),
        decorate=decorate,
    )
    if side == "tasktiger":
        tt.work(config={"BATCH_QUEUES": {"batch": 5}}, decorate=decorate)
    else:
        tiger = tiger_with(rdb, batch_queues={"batch": 5})
        tiger.task(queue="batch", batch=True, lock_key=["resource"])(interop_tasks.batch_record)
        run_typed(tiger)

    done = entries(ledger, "done")
    assert sorted((str(e["label"]), e["batch_size"]) for e in done) == [("l0", 2), ("l1", 2)]
    lock_id = unique_task_id(fn("batch_record"), None, {"resource": "r1"})
    assert not rdb.exists(f"t:lockv2:{lock_id}")  # released
    assert tt.sizes("batch") == {"queued": 0, "active": 0, "scheduled": 0}


def test_subqueues(tt: TaskTigerSide, tiger: Tiger, ledger: Path) -> None:
    for queue in ("sub", "sub.a", "sub.a.b", "sub.c", "subx", "other"):
        tt.delay("record", str(ledger), queue, queue=queue)
    run_typed(tiger, queues=["sub"], exclude_queues=["sub.a.b"])
    assert sorted(labels(ledger)) == ["sub", "sub.a", "sub.c"]
    assert [tt.sizes(q)["queued"] for q in ("sub.a.b", "subx", "other")] == [1, 1, 1]


def test_custom_retry_function(tt: TaskTigerSide, tiger: Tiger, ledger: Path) -> None:
    tt.delay("fail", str(ledger), "custom", retry_method=["callable", fn("retry_in_7")])
    before = time.time()
    run_typed(tiger)
    after = time.time()
    (scheduled,) = tt.tasks("default", "scheduled")
    assert scheduled["data"]["retry_method"] == [fn("retry_in_7"), []]
    assert before + 7 - 0.01 <= scheduled["ts"] <= after + 7 + 0.01


def test_payload_rewritten_by_tasktigers_update_scheduled_time(
    tt: TaskTigerSide, tiger: Tiger, ledger: Path, rdb: redis.Redis[str]
) -> None:
    task = tt.delay(
        "fail", str(ledger), "moved", when={"in": 600}, retry_method=["callable", fn("retry_in_7")]
    )
    tt.one(
        {
            "op": "update_scheduled_time",
            "queue": "default",
            "state": "scheduled",
            "id": task["id"],
            "when": {"in": -1},
        }
    )
    assert '"retry_method":["tests.interop_tasks:retry_in_7",{}]' in str(
        rdb.get(f"t:task:{task['id']}")
    ).replace(" ", "")
    run_typed(tiger)
    assert labels(ledger, "attempt") == ["moved"]
    (scheduled,) = tt.tasks("default", "scheduled")
    assert scheduled["id"] == task["id"]


# --- what typedtiger refuses to honour --------------------------------------------------------


def test_custom_retry_function_outside_allowed_modules_is_refused(
    tt: TaskTigerSide, rdb: redis.Redis[str], ledger: Path
) -> None:
    # operator.add(retry_number, 5) would be a valid delay: refusing it is a decision.
    # The payload is refused before the task runs (nothing it names outside the allowlist is
    # imported or called), and TaskTiger's inspection reads why.
    tt.delay("fail", str(ledger), "unsafe", retry_method=["custom", "operator:add", [5]])
    tiger = tiger_with(rdb, allowed_task_modules=["tests"])
    run_typed(tiger)

    assert labels(ledger, "attempt") == []
    assert tt.tasks("default", "scheduled") == []
    (errored,) = tt.tasks("default", "error", load_executions=1)
    execution = errored["executions"][-1]
    assert execution["exception_name"] == "typedtiger.exceptions:TaskImportError"
    assert "operator:add" in execution["exception"]
    assert "allowed_task_modules" in execution["exception"]


@pytest.mark.parametrize(
    ("runner", "reason"),
    [
        (fn("NotARunner"), "not a BaseRunner subclass"),
        # TaskTiger's runners are not typedtiger's (nor allowed: refused before any import)
        ("tasktiger.runner:DefaultRunner", "runner class 'tasktiger.runner:DefaultRunner'"),
    ],
)
def test_unknown_runner_class_fails_with_a_clear_reason(
    tt: TaskTigerSide, tiger: Tiger, ledger: Path, runner: str, reason: str
) -> None:
    tt.delay("record", str(ledger), "runner", runner_class=runner)
    run_typed(tiger)
    assert labels(ledger) == []
    (errored,) = tt.tasks("default", "error", load_executions=1)
    execution = errored["executions"][-1]
    assert execution["exception_name"] == "typedtiger.exceptions:TaskImportError"
    assert reason in execution["exception"]


def test_task_function_outside_allowed_modules_is_refused(
    tt: TaskTigerSide, rdb: redis.Redis[str], ledger: Path
) -> None:
    tt.delay("record", str(ledger), "elsewhere")
    run_typed(tiger_with(rdb, allowed_task_modules=["myapp"]))
    assert labels(ledger) == []
    (errored,) = tt.tasks("default", "error", load_executions=1)
    execution = errored["executions"][-1]
    assert execution["exception_name"] == "typedtiger.exceptions:TaskImportError"
    assert "allowed_task_modules" in execution["exception"]


@pytest.mark.parametrize("executor", [AsyncioExecutor, ForkExecutor])
def test_an_async_task_queued_by_name_by_tasktiger_runs_on_typedtiger(
    tt: TaskTigerSide,
    tiger: Tiger,
    ledger: Path,
    rdb: redis.Redis[str],
    executor: Callable[[], Executor],
) -> None:
    # A TaskTiger client names an async def function; TaskTiger itself cannot run it, a
    # typedtiger worker awaits it (asyncio executor) or runs it to its end (fork executor).
    tt.delay("arecord", str(ledger), "async", 7, kwargs={"flag": True})

    run_typed(tiger, executor=executor())

    (done,) = entries(ledger, "done")
    assert (done["label"], done["args"], done["kwargs"]) == ("async", [7], {"flag": True})
    assert tt.sizes("default") == {"queued": 0, "active": 0, "scheduled": 0}
    assert rdb.keys("t:task:*") == []
