"""What both sides share while they run side by side: unique ids, task locks, periodic tasks."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping
from datetime import timedelta
from pathlib import Path

import pytest
import redis

from tests import interop_tasks
from tests.interop.conftest import (
    TaskTigerSide,
    TypedWorkers,
    entries,
    fn,
    labels,
    run_typed,
    tiger_with,
)
from tests.waiting import scaled, sleep_past, wait_until
from typedtiger import Task, TaskSpec, TaskState, Tiger, fixed

pytestmark = [pytest.mark.interop, pytest.mark.redis, pytest.mark.timeout(300)]


def tasktiger_id(func: str, args: list[object] | None, kwargs: Mapping[str, object]) -> str:
    """TaskTiger's unique id (and lock id): sha256 of the sorted JSON document."""
    document = {"func": func, "args": args, "kwargs": kwargs}
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()


# --- unique tasks -----------------------------------------------------------------------------

ARGS: list[object] = [1, 2.5, "é", [1, {"b": 2, "a": None}], True]


@pytest.mark.parametrize("first", ["tasktiger", "typedtiger"])
def test_unique_task_deduplicates_across_sides(
    tt: TaskTigerSide, tiger: Tiger, ledger: Path, first: str
) -> None:
    args = [str(ledger), "unique", *ARGS]
    kwargs = {"z": {"y": 1, "x": [2.0]}}

    def by_tasktiger() -> str:
        return str(tt.delay("record", *args, kwargs=kwargs, unique=True)["id"])

    def by_typedtiger() -> str:
        return tiger.delay(interop_tasks.record, args=args, kwargs=kwargs, unique=True).id

    order = [by_tasktiger, by_typedtiger] if first == "tasktiger" else [by_typedtiger, by_tasktiger]
    ids = [enqueue() for enqueue in order]
    assert ids[0] == ids[1] == tasktiger_id(fn("record"), args, kwargs)
    assert tiger.get_queue_sizes("default")[TaskState.QUEUED] == 1

    run_typed(tiger)
    assert labels(ledger) == ["unique"]


@pytest.mark.parametrize("first", ["tasktiger", "typedtiger"])
def test_unique_key_deduplicates_across_sides(
    tt: TaskTigerSide, tiger: Tiger, ledger: Path, first: str
) -> None:
    """Same key, other arguments: one task. Both sides overwrite the stored payload when they
    queue a duplicate: the last arguments win, whichever side queued them."""

    def by_tasktiger(label: str) -> str:
        task = tt.delay("record", str(ledger), label, kwargs={"key": 7}, unique_key=["key"])
        return str(task["id"])

    def by_typedtiger(label: str) -> str:
        spec = TaskSpec.of(interop_tasks.record, str(ledger), label, key=7)
        return tiger.enqueue(spec.evolve(unique_key=["key"])).id

    if first == "tasktiger":
        ids = [by_tasktiger("first"), by_typedtiger("second")]
    else:
        ids = [by_typedtiger("first"), by_tasktiger("second")]
    assert ids[0] == ids[1] == tasktiger_id(fn("record"), None, {"key": 7})
    assert tiger.get_queue_sizes("default")[TaskState.QUEUED] == 1

    tt.work()
    assert labels(ledger) == ["second"]


@pytest.mark.parametrize("scheduler", ["tasktiger", "typedtiger"])
def test_unique_task_only_scheduled_is_queued_now_by_either_side(
    tt: TaskTigerSide, tiger: Tiger, ledger: Path, scheduler: str
) -> None:
    """ "Run this periodic task now": the other side's delay() queues a unique task that is only
    scheduled; the scheduled entry stays for its time."""
    args = [str(ledger), "now"]
    if scheduler == "tasktiger":
        scheduled = tt.delay("record", *args, unique=True, when={"in": 3600})
        queued_id = tiger.delay(interop_tasks.record, args=args, unique=True).id
    else:
        spec = TaskSpec.of(interop_tasks.record, *args).evolve(unique=True)
        scheduled = {"id": tiger.enqueue(spec, when=timedelta(hours=1)).id}
        queued_id = str(tt.delay("record", *args, unique=True)["id"])
    assert queued_id == scheduled["id"]
    assert tt.sizes("default") == {"queued": 1, "active": 0, "scheduled": 1}

    run_typed(tiger)  # a typedtiger worker runs it now and leaves the scheduled entry
    assert labels(ledger) == ["now"]
    assert tt.sizes("default") == {"queued": 0, "active": 0, "scheduled": 1}
    assert [t["id"] for t in tt.tasks("default", "scheduled")] == [queued_id]


# --- task locks -------------------------------------------------------------------------------

LOCK_ID = tasktiger_id(fn("sleep_then_record"), None, {"resource": "r1"})


def run_until_done(
    work: Callable[[], None], ledger: Path, label: str, rdb: redis.Redis[str]
) -> None:
    """Run a worker until the task ``label`` is done (a slow machine may see it rescheduled
    once more); fail with the Redis state after 10 s (scaled)."""
    deadline = time.monotonic() + scaled(10)
    while label not in labels(ledger):
        if time.monotonic() > deadline:
            state = sorted(rdb.keys("t:*"))
            scheduled = rdb.zrange("t:scheduled:lock_b", 0, -1, withscores=True)
            raise AssertionError(
                f"{label} never ran: {state}, scheduled {scheduled}, {time.time()}"
            )
        work()
        time.sleep(0.1)


def test_lock_held_by_a_tasktiger_worker_holds_off_typedtiger(
    tt: TaskTigerSide, ledger: Path, rdb: redis.Redis[str]
) -> None:
    tt.delay(
        "sleep_then_record",
        str(ledger),
        "holder",
        2,
        kwargs={"resource": "r1"},
        queue="lock_a",
        lock_key=["resource"],
    )
    # TaskTiger's own CLI worker, with TaskTiger's defaults: it heartbeats every 10 s, so
    # typedtiger's lost-task timeout stays at its default (20 s) here.
    holder = tt.cli_worker("-q", "lock_a")
    tiger = tiger_with(rdb, active_task_update_timeout=20.0)
    wait_until(lambda: labels(ledger, "started") == ["holder"], 15, "the holder to start")
    assert rdb.exists(f"t:lockv2:{LOCK_ID}")

    # The waiter is queued by TaskTiger too: a TaskTiger lock payload, on a typedtiger worker.
    waiter = tt.delay(
        "sleep_then_record",
        str(ledger),
        "waiter",
        0,
        kwargs={"resource": "r1"},
        queue="lock_b",
        lock_key=["resource"],
    )
    before = time.time()
    run_typed(tiger, queues=["lock_b"])
    after = time.time()
    assert labels(ledger, "started") == ["holder"]
    rescheduled = Task.from_id(tiger, "lock_b", TaskState.SCHEDULED, waiter["id"])
    assert rescheduled.ts is not None
    retry = tiger.config.lock_retry
    assert before + retry - 0.01 <= rescheduled.ts.timestamp() <= after + retry + 0.01

    wait_until(
        lambda: "holder" in labels(ledger) and not rdb.exists(f"t:lockv2:{LOCK_ID}"),
        15,
        "TaskTiger to finish the holder and release its lock",
    )
    holder.kill()
    sleep_past(rescheduled.ts.timestamp())
    run_until_done(lambda: run_typed(tiger, queues=["lock_b"]), ledger, "waiter", rdb)
    assert [str(e["label"]) + ":" + str(e["event"]) for e in entries(ledger)] == [
        "holder:started",
        "holder:done",
        "waiter:started",
        "waiter:done",
    ]


def test_lock_held_by_a_typedtiger_worker_holds_off_tasktiger(
    tt: TaskTigerSide,
    tiger: Tiger,
    typed_workers: TypedWorkers,
    ledger: Path,
    rdb: redis.Redis[str],
) -> None:
    spec = TaskSpec.of(interop_tasks.sleep_then_record, str(ledger), "holder", 2, resource="r1")
    held = tiger.enqueue(spec.evolve(queue="lock_a", lock_key=["resource"]))
    holder = typed_workers.start("-q", "lock_a", "--exit-after", "idle")
    wait_until(lambda: labels(ledger, "started") == ["holder"], 15, "the holder to start")
    assert str(rdb.get(f"t:lockv2:{LOCK_ID}")).startswith(f"{held.id}|")

    # The waiter is queued by typedtiger too: a typedtiger lock payload, on a TaskTiger worker.
    spec = TaskSpec.of(interop_tasks.sleep_then_record, str(ledger), "waiter", 0, resource="r1")
    waiter = tiger.enqueue(spec.evolve(queue="lock_b", lock_key=["resource"]))
    before = time.time()
    tt.work(queues=["lock_b"])
    after = time.time()
    assert labels(ledger, "started") == ["holder"]
    (rescheduled,) = tt.tasks("lock_b", "scheduled")
    assert rescheduled["id"] == waiter.id
    assert before + 1 - 0.01 <= rescheduled["ts"] <= after + 1 + 0.01  # TaskTiger's LOCK_RETRY

    assert holder.wait() == 0, holder.output()
    assert not rdb.exists(f"t:lockv2:{LOCK_ID}")  # typedtiger released it
    sleep_past(rescheduled["ts"])
    run_until_done(lambda: tt.work(rounds=2, queues=["lock_b"]), ledger, "waiter", rdb)
    assert [str(e["label"]) + ":" + str(e["event"]) for e in entries(ledger)] == [
        "holder:started",
        "holder:done",
        "waiter:started",
        "waiter:done",
    ]


def test_lock_of_a_killed_typedtiger_worker_expires_for_tasktiger(
    tt: TaskTigerSide,
    tiger: Tiger,
    typed_workers: TypedWorkers,
    ledger: Path,
    rdb: redis.Redis[str],
) -> None:
    spec = TaskSpec.of(interop_tasks.sleep_then_record, str(ledger), "holder", 60, resource="r1")
    tiger.enqueue(spec.evolve(queue="lock_a", lock_key=["resource"]))
    setup = {"config": {"active_task_update_timer": 0.2, "active_task_update_timeout": 1.0}}
    holder = typed_workers.start("-q", "lock_a", setup=setup)
    wait_until(lambda: labels(ledger, "started") == ["holder"], 15, "the holder to start")
    holder.kill()
    killed_at = time.time()

    tt.delay(
        "sleep_then_record",
        str(ledger),
        "waiter",
        0,
        kwargs={"resource": "r1"},
        queue="lock_b",
        lock_key=["resource"],
    )
    # The holder's lock would have expired for typedtiger's own workers by now: its last
    # heartbeat was before the kill, and the lock lasts active_task_update_timeout from it.
    sleep_past(killed_at, margin=1.5)
    tt.work(queues=["lock_b"])
    assert labels(ledger) == ["waiter"]


# --- periodic tasks ---------------------------------------------------------------------------


def test_periodic_task_registered_on_both_sides_runs_once_per_period(
    tt: TaskTigerSide, typed_workers: TypedWorkers, ledger: Path, rdb: redis.Redis[str]
) -> None:
    # Long enough for two periods after both interpreters start on a loaded machine.
    period, seconds = 2, 8.0
    typed = typed_workers.start(
        "-q",
        "periodic",
        "--exit-after",
        str(seconds),
        setup={"periodic": [{"func": fn("tick"), "queue": "periodic", "seconds": period}]},
    )
    schedule = {"periodic": {"seconds": period}}
    tasktiger = tt.start(
        {"op": "worker", "queues": ["periodic"], "exit_after": seconds},
        decorate=[{"func": fn("tick"), "queue": "periodic", "schedule": schedule}],
    )
    assert typed.wait(seconds + 15) == 0, typed.output()
    assert tasktiger.wait(seconds + 15) == 0, tasktiger.output()

    runs = sorted(float(str(entry["time"])) for entry in entries(ledger, "done", "tick"))
    assert len(runs) >= 2, runs
    # A run starts shortly after its period begins (periods are aligned on 2000-01-01, so on
    # even epoch seconds): each run is in a period of its own, none ran twice.
    periods = [int(run // period) for run in runs]
    assert len(set(periods)) == len(periods), runs
    # One shared periodic task (same unique id on both sides), waiting for its next period
    # (scheduled, or queued if it came due as the workers stopped).
    waiting = [rdb.zrange(f"t:{state}:periodic", 0, -1) for state in ("scheduled", "queued")]
    assert sorted(waiting, key=len) == [[], [tasktiger_id(fn("tick"), [], {})]], waiting


# --- execution records written by one side, read by the other ---------------------------------


def test_retry_exception_records_read_across_sides(
    tt: TaskTigerSide, tiger: Tiger, ledger: Path, rdb: redis.Redis[str]
) -> None:
    """A task raising RetryException(method=fixed(4, 1)): each side records the request in
    its execution record, the other side reads it (TaskTiger's retry_method encoding)."""
    on_tasktiger = tiger.enqueue(
        TaskSpec.of(interop_tasks.retry_via_exception, str(ledger), "tt").evolve(queue="a")
    )
    on_typedtiger = tt.delay("retry_via_exception", str(ledger), "typed", queue="b")
    before = time.time()
    tt.work(queues=["a"])
    run_typed(tiger, queues=["b"])
    after = time.time()

    for queue, task_id in (("a", on_tasktiger.id), ("b", on_typedtiger["id"])):
        score = rdb.zscore(f"t:scheduled:{queue}", task_id)
        assert score is not None and before + 4 - 0.01 <= score <= after + 4 + 0.01
    ours = Task.from_id(tiger, "a", TaskState.SCHEDULED, on_tasktiger.id, load_executions=1)
    (record,) = ours.executions
    assert record.retry is True and record.retry_method == fixed(4, 1)
    assert record.exception_name == "tasktiger.exceptions:RetryException"
    (theirs,) = tt.tasks("b", "scheduled", load_executions=1)
    (execution,) = theirs["executions"]
    assert execution["retry"] is True
    assert execution["retry_method"] == ["tasktiger.retry:_fixed", [4, 1]]
    assert execution["exception_name"] == "typedtiger.exceptions:RetryException"


# --- queue system locks and worker semaphores -------------------------------------------------


def test_queue_system_lock_is_shared(tt: TaskTigerSide, tiger: Tiger, ledger: Path) -> None:
    """A pause set by either side stops typedtiger workers; TaskTiger workers honour it only
    when they use the queue semaphore (-M / max_workers_per_queue), as TaskTiger documents."""
    before = time.time()
    tiger.set_queue_system_lock("paused_by_typed", 30)
    until = tt.one({"op": "system_lock", "queue": "paused_by_typed"})["until"]
    assert before + 30 - 1 <= until <= time.time() + 30  # a second of slack for rounding
    before = time.time()
    tt.one({"op": "system_lock", "queue": "paused_by_tt", "timeout": 30})
    until = tiger.get_queue_system_lock("paused_by_tt")
    assert until is not None and before + 30 - 1 <= until <= time.time() + 30
    for queue in ("paused_by_typed", "paused_by_tt"):
        tt.delay("record", str(ledger), queue, queue=queue)

    run_typed(tiger)
    # (A TaskTiger worker run "once" would spin on the paused queue until the pause ends.)
    tt.one({"op": "worker", "exit_after": 1.0, "max_workers_per_queue": 1})
    assert labels(ledger) == []
    tt.work()  # no semaphore: TaskTiger ignores the pause
    assert sorted(labels(ledger)) == ["paused_by_tt", "paused_by_typed"]


def test_queue_semaphore_is_shared(
    tt: TaskTigerSide, tiger: Tiger, ledger: Path, rdb: redis.Redis[str]
) -> None:
    tt.delay("sleep_then_record", str(ledger), "busy", 2, queue="single")
    busy = tt.start(
        {"op": "worker", "once": True, "queues": ["single"], "max_workers_per_queue": 1}
    )
    wait_until(lambda: labels(ledger, "started") == ["busy"], 15, "the task to start")
    assert rdb.zcard("t:qslock:single") == 1
    tt.delay("record", str(ledger), "waiting", queue="single")

    run_typed(tiger, queues=["single"], max_workers_per_queue=1)
    assert labels(ledger) == []  # TaskTiger's worker holds the queue's only slot
    assert busy.wait() == 0
    run_typed(tiger, queues=["single"], max_workers_per_queue=1)
    assert labels(ledger) == ["busy", "waiting"]


# --- tasks of lost workers ----------------------------------------------------------------------


def test_task_requeued_by_typedtiger_and_completed_by_tasktiger_leaves_an_expiring_counter(
    tt: TaskTigerSide, ledger: Path, rdb: redis.Redis[str]
) -> None:
    task = tt.delay("hang_once", str(ledger), "lost", queue="lossy")
    doomed = tt.start({"op": "worker", "queues": ["lossy"]})
    wait_until(lambda: labels(ledger, "started") == ["lost"], 15, "the task to start")
    doomed.kill()

    # A typedtiger worker (of any queue) requeues the lost task once its heartbeat is too old.
    tiger = tiger_with(rdb, active_task_update_timer=0.2, active_task_update_timeout=1.0)
    time.sleep(1.2)
    run_typed(tiger, queues=["elsewhere"])
    assert tt.sizes("lossy")["queued"] == 1
    tt.work(queues=["lossy"])
    assert labels(ledger) == ["lost"]
    # TaskTiger deletes the keys it knows; typedtiger's loss counter expires a week after the loss
    losses = f"t:task:{task['id']}:worker_losses"
    assert rdb.keys(f"t:task:{task['id']}*") == [losses]
    assert 0 < rdb.ttl(losses) <= 7 * 24 * 3600


# --- values read the same on both sides -------------------------------------------------------


def test_queue_sizes_have_tasktigers_shape(tt: TaskTigerSide, tiger: Tiger, ledger: Path) -> None:
    tiger.enqueue(TaskSpec.of(interop_tasks.fail, str(ledger), "e").evolve(queue="sizes"))
    run_typed(tiger, queues=["sizes"])
    tiger.enqueue(TaskSpec.of(interop_tasks.record, str(ledger), "q").evolve(queue="sizes"))
    spec = TaskSpec.of(interop_tasks.record, str(ledger), "s").evolve(queue="sizes")
    tiger.enqueue(spec, when=timedelta(hours=1))

    ours = {state.value: n for state, n in tiger.get_queue_sizes("sizes").items()}
    assert ours == tt.sizes("sizes") == {"queued": 1, "active": 0, "scheduled": 1}
    assert tiger.get_queue_sizes("sizes", with_errors=True)[TaskState.ERROR] == 1


def test_max_stored_executions_zero_keeps_every_execution(
    tt: TaskTigerSide, tiger: Tiger, ledger: Path
) -> None:
    task = tt.delay(
        "fail", str(ledger), "kept", retry_method=["fixed", [0, 2]], max_stored_executions=0
    )
    assert task["data"]["max_stored_executions"] == 0
    run_typed(tiger)
    errored = Task.from_id(tiger, "default", TaskState.ERROR, task["id"])
    assert errored.n_executions() == 3
    assert len(errored.executions) == 3
    (read,) = tt.tasks("default", "error", load_executions=10)
    assert len(read["executions"]) == 3
