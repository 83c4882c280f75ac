"""Inspection and administration of stored tasks, on FakeBackend and real Redis.

The Task handle (from_id, tasks_from_queue, cancel, delete, retry, update_scheduled_time,
execute, n_executions, delay), the running-task properties, queue statistics, purging errored
tasks and queue system locks. Task functions defined here are importable as
``tests.test_inspection:<name>``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from tests import tasks
from tests.conftest import run_worker
from tests.keys import keys_matching, stored_keys, task_key, task_keys
from typedtiger import Config, Task, TaskNotFound, TaskSpec, TaskState, Tiger
from typedtiger.backends.redis import RedisBackend
from typedtiger.clock import ManualClock
from typedtiger.executor import SyncExecutor
from typedtiger.runner import BatchCall
from typedtiger.worker import Worker

#: Registrations of this module's tasks; test Tigers adopt them. Never initialised: the
#: running-task properties work on any Tiger, bound or not.
itiger = Tiger()

#: What the tasks below saw while they ran.
SEEN: list[dict[str, object]] = []


def capture(label: str = "") -> None:
    """Record what the running-task properties say."""
    try:
        _ = itiger.current_tasks
        batch_only = "no error"
    except RuntimeError as exc:  # as in TaskTiger: current_tasks is for batch tasks
        batch_only = str(exc)
    SEEN.append(
        {
            "label": label,
            "task_id": itiger.current_task.id,
            "queue": itiger.current_task.queue,
            "args": itiger.current_task.args,
            "current_tasks": batch_only,
            "batch": itiger.current_task_is_batch,
            "func": itiger.current_serialized_func,
        }
    )


@itiger.task(batch=True, queue="ibatch")
def capture_batch(calls: list[BatchCall]) -> None:
    """Record what the running-task properties say inside a batch."""
    try:
        _ = itiger.current_task
        single = "no error"
    except RuntimeError as exc:
        single = str(exc)
    SEEN.append(
        {
            "ids": [task.id for task in itiger.current_tasks],
            "batch": itiger.current_task_is_batch,
            "func": itiger.current_serialized_func,
            "current_task": single,
            "args": [call["args"] for call in calls],
        }
    )


@pytest.fixture(autouse=True)
def _clear_seen() -> Iterator[None]:
    SEEN.clear()
    yield
    SEEN.clear()


def _tiger_with(backend: RedisBackend, config: Config) -> Tiger:
    tiger = Tiger(backend, config)
    tiger.adopt(tasks.tiger)
    tiger.adopt(itiger)
    return tiger


def _utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


def _error_task(tiger: Tiger, *args: str, queue: str | None = None) -> Task:
    """Enqueue ``tasks.failing`` and run it into the error state."""
    spec = TaskSpec.of(tasks.failing, *args)
    task = tiger.enqueue(spec if queue is None else spec.evolve(queue=queue))
    run_worker(tiger)
    return Task.from_id(tiger, task.queue, TaskState.ERROR, task.id)


# --- Task.from_id / tasks_from_queue ---------------------------------------------------------


def test_from_id_reads_every_field(tiger: Tiger, clock: ManualClock) -> None:
    queued_at = clock.now()
    task = tiger.enqueue(TaskSpec.of(tasks.add, 1, b=2).evolve(queue="math"))

    loaded = Task.from_id(tiger, "math", TaskState.QUEUED, task.id)

    assert loaded.id == task.id
    assert loaded.queue == "math"
    assert loaded.state is TaskState.QUEUED
    assert loaded.broken is None
    assert loaded.serialized_func == "tests.tasks:add"
    assert loaded.func is tasks.add
    assert loaded.args == (1,)
    assert loaded.kwargs == {"b": 2}
    assert loaded.data == {
        "id": task.id,
        "func": "tests.tasks:add",
        "args": [1],
        "kwargs": {"b": 2},
        "time_last_queued": queued_at,
        "scheduled_at": queued_at,
        "queue": "math",
    }
    assert loaded.executions == ()  # none yet (read from storage: loaded without them)
    assert loaded.time_last_queued == _utc(queued_at)
    assert loaded.scheduled_at == _utc(queued_at)
    # The state may be given as a string, as in TaskTiger.
    assert Task.from_id(tiger, "math", "queued", task.id).id == task.id


def test_from_id_raises_task_not_found(tiger: Tiger) -> None:
    task = tiger.enqueue(TaskSpec.of(tasks.simple))
    with pytest.raises(TaskNotFound):
        Task.from_id(tiger, "default", TaskState.QUEUED, "0" * 64)
    with pytest.raises(TaskNotFound):
        Task.from_id(tiger, "default", TaskState.ERROR, task.id)
    with pytest.raises(TaskNotFound):
        Task.from_id(tiger, "elsewhere", TaskState.QUEUED, task.id)


def test_scheduled_task_reports_its_due_time(tiger: Tiger, clock: ManualClock) -> None:
    task = tiger.enqueue(TaskSpec.of(tasks.simple), when=timedelta(minutes=30))
    loaded = Task.from_id(tiger, "default", TaskState.SCHEDULED, task.id)
    assert loaded.scheduled_at == _utc(clock.now() + 1800)
    assert loaded.ts == _utc(clock.now() + 1800)


def test_tasks_from_queue_lists_newest_first_with_skip_and_limit(
    tiger: Tiger, clock: ManualClock
) -> None:
    ids = []
    for n in range(5):
        ids.append(tiger.enqueue(TaskSpec.of(tasks.simple, n)).id)
        clock.advance(1)
    newest_first = list(reversed(ids))

    total, listed = Task.tasks_from_queue(tiger, "default", TaskState.QUEUED)
    assert total == 5
    assert [task.id for task in listed] == newest_first
    assert [task.args for task in listed] == [(4,), (3,), (2,), (1,), (0,)]
    assert all(task.state is TaskState.QUEUED for task in listed)

    total, page = Task.tasks_from_queue(tiger, "default", "queued", skip=1, limit=2)
    assert total == 5
    assert [task.id for task in page] == newest_first[1:3]

    total, tail = Task.tasks_from_queue(tiger, "default", TaskState.QUEUED, skip=4, limit=10)
    assert (total, [task.id for task in tail]) == (5, newest_first[4:])

    assert Task.tasks_from_queue(tiger, "default", TaskState.ERROR) == (0, [])
    assert Task.tasks_from_queue(tiger, "nowhere", TaskState.QUEUED) == (0, [])


def test_tasks_from_queue_loads_the_latest_executions(tiger: Tiger, clock: ManualClock) -> None:
    errored = _error_task(tiger, "first")
    clock.advance(10)
    errored.retry()
    run_worker(tiger)
    assert tasks.CALLS == [("failing", "first"), ("failing", "first")]

    # Read without executions, the handle reads them from storage when asked.
    _, (without,) = Task.tasks_from_queue(tiger, "default", TaskState.ERROR)
    assert [r.time_failed for r in without.executions] == [clock.now() - 10, clock.now()]

    _, (last_only,) = Task.tasks_from_queue(tiger, "default", TaskState.ERROR, load_executions=1)
    (record,) = last_only.executions
    assert record.time_failed == clock.now()

    _, (both,) = Task.tasks_from_queue(tiger, "default", TaskState.ERROR, load_executions=10)
    assert [r.time_failed for r in both.executions] == [clock.now() - 10, clock.now()]
    assert all(r.exception_name == "builtins:ValueError" for r in both.executions)
    assert both.n_executions() == 2

    loaded = Task.from_id(tiger, "default", TaskState.ERROR, errored.id, load_executions=1)
    assert len(loaded.executions) == 1


def test_a_payload_naming_another_id_is_listed_as_broken(
    tiger: Tiger, backend: RedisBackend
) -> None:
    task = tiger.enqueue(TaskSpec.of(tasks.simple))
    payload = '{"id": "other", "func": "tests.tasks:simple"}'
    backend.client.set(task_key(backend, "default", task.id), payload)
    run_worker(tiger)  # the worker notices and quarantines it

    _, (listed,) = Task.tasks_from_queue(tiger, "default", TaskState.ERROR)
    assert listed.id == task.id
    assert listed.broken is not None and "another id" in listed.broken
    listed.delete()
    assert stored_keys(backend) == []


# --- cancel / delete / retry / update_scheduled_time ---------------------------------------


def test_cancel_leaves_a_queued_task_alone(tiger: Tiger) -> None:
    # TaskTiger's cancel() removes scheduled tasks only.
    task = tiger.enqueue(TaskSpec.of(tasks.simple, "runs"))
    with pytest.raises(TaskNotFound, match="not scheduled"):
        task.cancel()
    assert task.state is TaskState.QUEUED
    run_worker(tiger)
    assert tasks.CALLS == [("simple", "runs")]


def test_cancel_a_scheduled_task(tiger: Tiger, clock: ManualClock, backend: RedisBackend) -> None:
    task = tiger.enqueue(TaskSpec.of(tasks.simple, "never"), when=timedelta(hours=1))
    Task.from_id(tiger, "default", TaskState.SCHEDULED, task.id).cancel()
    assert tiger.get_queue_stats() == {}
    assert stored_keys(backend) == []
    clock.advance(timedelta(hours=2))
    run_worker(tiger)
    assert tasks.CALLS == []


def test_cancel_refuses_other_states_and_stale_handles(tiger: Tiger) -> None:
    errored = _error_task(tiger)
    with pytest.raises(TaskNotFound):
        errored.cancel()
    assert tiger.get_queue_stats() == {"default": {TaskState.ERROR: 1}}

    task = tiger.enqueue(TaskSpec.of(tasks.simple), when=timedelta(minutes=1))
    stale = Task.from_id(tiger, "default", TaskState.SCHEDULED, task.id)
    task.cancel()
    with pytest.raises(TaskNotFound):
        stale.cancel()
    with pytest.raises(TaskNotFound):
        task.cancel()


def test_delete_an_errored_task(tiger: Tiger, backend: RedisBackend) -> None:
    errored = _error_task(tiger)
    assert task_keys(backend, errored.id)

    errored.delete()

    assert errored.state is None
    assert tiger.get_queue_stats() == {}
    assert stored_keys(backend) == []
    with pytest.raises(TaskNotFound):
        errored.delete()


def test_delete_refuses_a_queued_task(tiger: Tiger) -> None:
    task = tiger.enqueue(TaskSpec.of(tasks.simple))
    with pytest.raises(TaskNotFound):
        task.delete()
    assert tiger.get_queue_sizes("default")[TaskState.QUEUED] == 1


def test_retry_moves_an_errored_task_to_queued(tiger: Tiger, clock: ManualClock) -> None:
    errored = _error_task(tiger, "again")
    clock.advance(5)

    errored.retry()

    assert errored.state is TaskState.QUEUED
    requeued = Task.from_id(tiger, "default", TaskState.QUEUED, errored.id)
    assert requeued.ts == _utc(clock.now())
    assert tiger.get_queue_sizes("default", with_errors=True)[TaskState.ERROR] == 0
    # The failed executions stay with the task.
    assert requeued.n_executions() == 1

    run_worker(tiger)
    assert tasks.CALLS == [("failing", "again"), ("failing", "again")]
    assert Task.from_id(tiger, "default", TaskState.ERROR, errored.id).n_executions() == 2


def test_retry_refuses_a_task_that_is_not_errored(tiger: Tiger) -> None:
    task = tiger.enqueue(TaskSpec.of(tasks.simple))
    with pytest.raises(TaskNotFound):
        task.retry()
    errored = _error_task(tiger)
    stale = Task.from_id(tiger, "default", TaskState.ERROR, errored.id)
    errored.retry()
    with pytest.raises(TaskNotFound):
        stale.retry()


def test_update_scheduled_time(tiger: Tiger, clock: ManualClock) -> None:
    task = tiger.enqueue(TaskSpec.of(tasks.simple, "moved"), when=timedelta(hours=1))

    task.update_scheduled_time(timedelta(minutes=10))
    assert task.scheduled_at == _utc(clock.now() + 600)
    assert Task.from_id(tiger, "default", "scheduled", task.id).scheduled_at == _utc(
        clock.now() + 600
    )

    clock.advance(600)
    run_worker(tiger)
    assert tasks.CALLS == [("simple", "moved")]


def test_update_scheduled_time_takes_a_naive_utc_datetime(tiger: Tiger, clock: ManualClock) -> None:
    task = tiger.enqueue(TaskSpec.of(tasks.simple, "later"), when=timedelta(minutes=1))
    target = _utc(clock.now() + 7200)
    task.update_scheduled_time(target.replace(tzinfo=None))

    clock.advance(3600)
    run_worker(tiger)
    assert tasks.CALLS == []
    assert Task.from_id(tiger, "default", TaskState.SCHEDULED, task.id).scheduled_at == target

    clock.advance(3600)
    run_worker(tiger)
    assert tasks.CALLS == [("simple", "later")]


def test_update_scheduled_time_refuses_a_queued_task(tiger: Tiger) -> None:
    task = tiger.enqueue(TaskSpec.of(tasks.simple))
    with pytest.raises(TaskNotFound):
        task.update_scheduled_time(timedelta(minutes=1))


# --- execute / n_executions / delay / from_spec ----------------------------------------------


def test_execute_runs_in_process_without_storing(tiger: Tiger, backend: RedisBackend) -> None:
    handle = Task.from_spec(tiger, TaskSpec.of(tasks.add, 2, 3))
    assert handle.state is None
    assert handle.execute() == 5
    assert tasks.CALLS == [("add", 2, 3)]
    assert keys_matching(backend, "*") == []

    with pytest.raises(ValueError, match="kaput"):
        Task.from_spec(tiger, TaskSpec.of(tasks.failing, "kaput")).execute()


def test_execute_sets_the_current_task(tiger: Tiger) -> None:
    handle = Task.from_spec(tiger, TaskSpec.of(capture, "executed"))
    handle.execute()
    assert [
        {
            "label": "executed",
            "task_id": handle.id,
            "queue": "default",
            "args": ("executed",),
            "current_tasks": "a single task is running: use tiger.current_task",
            "batch": False,
            "func": "tests.test_inspection:capture",
        }
    ] == SEEN


def test_n_executions_counts_every_failure(tiger: Tiger) -> None:
    queued = tiger.enqueue(TaskSpec.of(tasks.failing))
    assert queued.n_executions() == 0
    run_worker(tiger)
    errored = Task.from_id(tiger, "default", TaskState.ERROR, queued.id)
    assert errored.n_executions() == 1
    errored.retry()
    run_worker(tiger)
    assert Task.from_id(tiger, "default", TaskState.ERROR, queued.id).n_executions() == 2
    with pytest.raises(TaskNotFound):
        Task.from_spec(tiger, TaskSpec.of(tasks.simple)).n_executions()


def test_delay_stores_an_unqueued_handle(tiger: Tiger, clock: ManualClock) -> None:
    now_handle = Task.from_spec(tiger, TaskSpec.of(tasks.simple, "now"))
    later_handle = Task.from_spec(tiger, TaskSpec.of(tasks.simple, "later"))

    now_handle.delay()
    later_handle.delay(when=timedelta(minutes=5))

    assert now_handle.state is TaskState.QUEUED
    assert later_handle.state is TaskState.SCHEDULED
    assert later_handle.scheduled_at == _utc(clock.now() + 300)
    assert Task.from_id(tiger, "default", TaskState.QUEUED, now_handle.id).args == ("now",)
    with pytest.raises(TaskNotFound):
        now_handle.delay()

    clock.advance(300)
    run_worker(tiger)
    assert tasks.CALLS == [("simple", "now"), ("simple", "later")]


def test_from_spec_of_a_unique_task_has_the_stored_id(tiger: Tiger) -> None:
    spec = TaskSpec.of(tasks.simple, "once").evolve(unique=True)
    stored = tiger.enqueue(spec, when=timedelta(minutes=5))
    assert Task.from_spec(tiger, spec).id == stored.id
    assert Task.from_spec(tiger, TaskSpec.of(tasks.simple, "other").evolve(unique=True)).id != (
        stored.id
    )


def test_unique_task_rebuilt_from_its_arguments_can_be_cancelled(
    tiger: Tiger, clock: ManualClock, backend: RedisBackend
) -> None:
    spec = TaskSpec.of(tasks.simple, "email 42").evolve(unique=True)
    Task.from_spec(tiger, spec).delay(when=timedelta(minutes=5))

    rebuilt = Task.from_spec(tiger, spec)
    rebuilt.cancel()

    assert tiger.get_queue_stats() == {}
    assert stored_keys(backend) == []
    clock.advance(600)
    run_worker(tiger)
    assert tasks.CALLS == []


# --- the handle reads storage, not its memory (TaskTiger's behaviour) --------------------------


def test_handle_from_delay_follows_the_task_into_error(tiger: Tiger, clock: ManualClock) -> None:
    # The most common pattern of TaskTiger users' tests: delay, run a worker, ask the handle.
    task = tiger.delay(tasks.failing, args=["x"])
    run_worker(tiger)

    assert task.n_executions() == 1
    (record,) = task.executions
    assert record.exception_name == "builtins:ValueError"
    clock.advance(1)
    task.retry()
    assert task.state is TaskState.QUEUED
    run_worker(tiger)
    assert task.n_executions() == 2
    assert len(task.executions) == 2
    task.delete()
    assert tiger.get_queue_stats() == {}
    with pytest.raises(TaskNotFound):
        task.n_executions()
    with pytest.raises(TaskNotFound):
        _ = task.executions


def test_handle_of_a_queued_task_cancels_and_reschedules_once_it_is_scheduled(
    tiger: Tiger, clock: ManualClock
) -> None:
    # Queued when the handle was made; rescheduled by a failure's retry since.
    task = tiger.delay(tasks.failing, args=["y"], retry=True)
    run_worker(tiger)
    assert tiger.get_queue_stats() == {"default": {TaskState.SCHEDULED: 1}}

    task.update_scheduled_time(timedelta(hours=2))
    assert Task.from_id(tiger, "default", "scheduled", task.id).ts == _utc(clock.now() + 7200)
    task.cancel()
    assert tiger.get_queue_stats() == {}


def test_handle_of_a_succeeded_task_is_not_found(tiger: Tiger) -> None:
    task = tiger.delay(tasks.simple, args=["ok"])
    run_worker(tiger)
    for act in (task.n_executions, task.delete, task.retry, task.cancel):
        with pytest.raises(TaskNotFound):
            act()
    with pytest.raises(TaskNotFound):
        task.update_scheduled_time(timedelta(minutes=1))


def test_handle_loaded_with_executions_keeps_what_it_read(tiger: Tiger) -> None:
    errored = _error_task(tiger, "z")
    loaded = Task.from_id(tiger, "default", TaskState.ERROR, errored.id, load_executions=5)
    loaded.retry()
    run_worker(tiger)
    assert len(loaded.executions) == 1  # a snapshot, as in TaskTiger
    assert loaded.n_executions() == 2  # always read now


# --- the running task -------------------------------------------------------------------------


def test_current_task_inside_a_worker(tiger: Tiger) -> None:
    first = tiger.enqueue(TaskSpec.of(capture, "one").evolve(queue="cq"))
    run_worker(tiger)
    assert [
        {
            "label": "one",
            "task_id": first.id,
            "queue": "cq",
            "args": ("one",),
            "current_tasks": "a single task is running: use tiger.current_task",
            "batch": False,
            "func": "tests.test_inspection:capture",
        }
    ] == SEEN


@pytest.mark.parametrize(
    "registered",
    [
        pytest.param(True, id="registered"),
        pytest.param(False, id="imported"),
    ],
)
def test_current_tasks_inside_a_batch(
    backend: RedisBackend, clock: ManualClock, registered: bool
) -> None:
    config = Config(batch_queues={"ibatch": 10}, allowed_task_modules=("tests",))
    tiger = _tiger_with(backend, config) if registered else Tiger(backend, config)
    ids = []
    for n in range(3):
        ids.append(tiger.enqueue(capture_batch.spec(n)).id)
        clock.advance(1)

    run_worker(tiger)

    assert [
        {
            "ids": ids,
            "batch": True,
            "func": "tests.test_inspection:capture_batch",
            "current_task": "a batch is running: use tiger.current_tasks",
            "args": [[0], [1], [2]],
        }
    ] == SEEN


def test_current_task_in_eager_mode(backend: RedisBackend) -> None:
    tiger = _tiger_with(backend, Config(always_eager=True, allowed_task_modules=("tests",)))
    task = tiger.enqueue(TaskSpec.of(capture, "eager"))
    assert [
        {
            "label": "eager",
            "task_id": task.id,
            "queue": "default",
            "args": ("eager",),
            "current_tasks": "a single task is running: use tiger.current_task",
            "batch": False,
            "func": "tests.test_inspection:capture",
        }
    ] == SEEN
    assert keys_matching(backend, "*") == []


@pytest.mark.parametrize(
    "name", ["current_task", "current_tasks", "current_task_is_batch", "current_serialized_func"]
)
def test_running_task_properties_raise_outside_a_task(tiger: Tiger, name: str) -> None:
    with pytest.raises(RuntimeError, match="no typedtiger task is running"):
        getattr(tiger, name)
    with pytest.raises(RuntimeError, match="no typedtiger task is running"):
        getattr(itiger, name)


# --- queue statistics -------------------------------------------------------------------------


def _fill_queues(tiger: Tiger, backend: RedisBackend, clock: ManualClock) -> None:
    """a: 2 queued, 1 active, 1 scheduled; b: 1 error; c: 1 scheduled."""
    _error_task(tiger, queue="b")
    tiger.enqueue(TaskSpec.of(tasks.simple, 1).evolve(queue="a"))
    clock.advance(1)
    tiger.enqueue(TaskSpec.of(tasks.simple, 2).evolve(queue="a"))
    clock.advance(1)
    tiger.enqueue(TaskSpec.of(tasks.simple, 3).evolve(queue="a"))
    tiger.enqueue(TaskSpec.of(tasks.simple, 4).evolve(queue="a"), when=timedelta(hours=1))
    tiger.enqueue(TaskSpec.of(tasks.simple, 5).evolve(queue="c"), when=timedelta(hours=1))
    (claimed,) = backend.claim("a", clock.now(), 1)
    assert claimed.payload is not None


def test_get_queue_sizes(tiger: Tiger, backend: RedisBackend, clock: ManualClock) -> None:
    _fill_queues(tiger, backend, clock)
    # TaskTiger's shape: no error entry (tests/interop compare it with TaskTiger's own).
    assert tiger.get_queue_sizes("a") == {"queued": 2, "active": 1, "scheduled": 1}
    assert tiger.get_queue_sizes("a", with_errors=True) == {
        TaskState.QUEUED: 2,
        TaskState.ACTIVE: 1,
        TaskState.SCHEDULED: 1,
        TaskState.ERROR: 0,
    }
    assert tiger.get_queue_sizes("empty") == {"queued": 0, "active": 0, "scheduled": 0}


def test_get_sizes_for_queues_and_states(
    tiger: Tiger, backend: RedisBackend, clock: ManualClock
) -> None:
    _fill_queues(tiger, backend, clock)
    assert tiger.get_sizes_for_queues_and_states(
        [
            ("a", TaskState.QUEUED),
            ("b", TaskState.ERROR),
            ("a", TaskState.ACTIVE),
            ("c", TaskState.QUEUED),
            ("empty", TaskState.SCHEDULED),
        ]
    ) == [2, 1, 1, 0, 0]
    assert tiger.get_sizes_for_queues_and_states([]) == []


def test_get_total_queue_size_leaves_errors_out(
    tiger: Tiger, backend: RedisBackend, clock: ManualClock
) -> None:
    _fill_queues(tiger, backend, clock)
    assert tiger.get_total_queue_size("a") == 4
    assert tiger.get_total_queue_size("b") == 0
    assert tiger.get_total_queue_size("c") == 1


def test_get_queue_stats(tiger: Tiger, backend: RedisBackend, clock: ManualClock) -> None:
    assert tiger.get_queue_stats() == {}
    _fill_queues(tiger, backend, clock)
    assert tiger.get_queue_stats() == {
        "a": {TaskState.QUEUED: 2, TaskState.ACTIVE: 1, TaskState.SCHEDULED: 1},
        "b": {TaskState.ERROR: 1},
        "c": {TaskState.SCHEDULED: 1},
    }


# --- purge_errored_tasks ----------------------------------------------------------------------


def _errors_at(tiger: Tiger, clock: ManualClock, queues: list[str]) -> dict[str, str]:
    """One errored task per queue, failing one hour apart (in list order); queue -> id."""
    ids = {}
    for queue in queues:
        ids[queue] = _error_task(tiger, queue, queue=queue).id
        clock.advance(3600)
    return ids


def _errored(tiger: Tiger) -> dict[str, int]:
    return {
        queue: sizes[TaskState.ERROR]
        for queue, sizes in tiger.get_queue_stats().items()
        if TaskState.ERROR in sizes
    }


def test_purge_errored_tasks_all(tiger: Tiger, clock: ManualClock, backend: RedisBackend) -> None:
    _errors_at(tiger, clock, ["a", "b"])
    tiger.enqueue(TaskSpec.of(tasks.simple).evolve(queue="a"))
    assert tiger.purge_errored_tasks() == 2
    assert _errored(tiger) == {}
    assert tiger.get_queue_sizes("a")[TaskState.QUEUED] == 1
    assert [key for key in task_keys(backend) if ":executions" in key] == []


def test_purge_errored_tasks_by_queue(tiger: Tiger, clock: ManualClock) -> None:
    _errors_at(tiger, clock, ["a", "a.sub", "a.sub.deep", "a.other", "b"])
    # "a" covers its subqueues; the more specific exclusion wins.
    assert tiger.purge_errored_tasks(queues=["a"], exclude_queues=["a.sub"]) == 2
    assert _errored(tiger) == {"a.sub": 1, "a.sub.deep": 1, "b": 1}
    assert tiger.purge_errored_tasks(exclude_queues=["b"]) == 2
    assert _errored(tiger) == {"b": 1}


def test_purge_errored_tasks_before_a_time(tiger: Tiger, clock: ManualClock) -> None:
    start = clock.now()
    _errors_at(tiger, clock, ["q1", "q2", "q3"])  # failed at start, +1h, +2h
    cutoff = _utc(start + 3600)
    assert tiger.purge_errored_tasks(last_execution_before=cutoff) == 2
    assert _errored(tiger) == {"q3": 1}
    naive = _utc(start + 7200).replace(tzinfo=None)
    assert tiger.purge_errored_tasks(last_execution_before=naive) == 1
    assert _errored(tiger) == {}


def test_purge_errored_tasks_with_a_limit(tiger: Tiger, clock: ManualClock) -> None:
    for n in range(3):
        _error_task(tiger, str(n), queue="one")
        clock.advance(60)
    _errors_at(tiger, clock, ["two"])
    assert tiger.purge_errored_tasks(limit=2) == 2
    # The oldest go first.
    remaining = Task.tasks_from_queue(tiger, "one", TaskState.ERROR)[1]
    assert [task.args for task in remaining] == [("2",)]
    assert tiger.purge_errored_tasks(limit=10) == 2
    assert _errored(tiger) == {}
    assert tiger.purge_errored_tasks(limit=10) == 0


def test_purge_errored_tasks_removes_entries_whose_payload_is_gone(
    tiger: Tiger, clock: ManualClock, backend: RedisBackend
) -> None:
    ids = _errors_at(tiger, clock, ["ghost", "kept"])
    backend.client.delete(task_key(backend, "ghost", ids["ghost"]))
    _, (listed,) = Task.tasks_from_queue(tiger, "ghost", TaskState.ERROR)
    assert listed.broken is not None and "missing" in listed.broken

    assert tiger.purge_errored_tasks(queues=["ghost"]) == 1

    assert _errored(tiger) == {"kept": 1}
    assert task_keys(backend, ids["ghost"]) == []


# --- queue system locks -----------------------------------------------------------------------


def test_set_and_get_queue_system_lock(tiger: Tiger, clock: ManualClock) -> None:
    assert tiger.get_queue_system_lock("paused") is None
    tiger.set_queue_system_lock("paused", 60)
    assert tiger.get_queue_system_lock("paused") == clock.now() + 60
    assert tiger.get_queue_system_lock("other") is None
    clock.advance(59)
    assert tiger.get_queue_system_lock("paused") == clock.now() + 1
    clock.advance(1)
    assert tiger.get_queue_system_lock("paused") is None


def test_a_paused_queue_is_not_claimed_until_the_lock_passes(
    tiger: Tiger, clock: ManualClock, backend: RedisBackend
) -> None:
    task = tiger.enqueue(TaskSpec.of(tasks.simple, "paused").evolve(queue="paused"))
    tiger.enqueue(TaskSpec.of(tasks.simple, "free").evolve(queue="free"))
    tiger.set_queue_system_lock("paused", 60)

    assert backend.claim("paused", clock.now(), 10) == []
    run_worker(tiger, queues=["free"])
    assert tasks.CALLS == [("simple", "free")]

    clock.advance(59)
    assert backend.claim("paused", clock.now(), 10) == []
    clock.advance(1)
    run_worker(tiger)
    assert tasks.CALLS == [("simple", "free"), ("simple", "paused")]
    assert tiger.get_queue_stats() == {}
    assert task.id


def test_a_worker_run_once_returns_while_a_served_queue_is_paused(
    tiger: Tiger, clock: ManualClock
) -> None:
    tiger.enqueue(TaskSpec.of(tasks.simple, "paused").evolve(queue="paused"))
    tiger.set_queue_system_lock("paused", 60)
    worker = Worker(tiger, executor=SyncExecutor())
    thread = threading.Thread(target=worker.run, kwargs={"once": True}, daemon=True)
    thread.start()
    thread.join(timeout=3)  # a guard against the hang, not a wait for time to pass
    hung = thread.is_alive()
    worker.stop()
    thread.join()

    assert not hung, "run(once=True) spun on the paused queue"
    assert tasks.CALLS == []
    assert tiger.get_queue_sizes("paused")[TaskState.QUEUED] == 1
