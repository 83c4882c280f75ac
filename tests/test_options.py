"""Task options (issue 4), on FakeBackend and real Redis with a ManualClock: unique tasks,
locks, retries, max_queue_size, max_stored_executions, eager mode, per-call overrides and the
refusal of invalid options."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
import redis
from structlog.testing import capture_logs

from tests import option_tasks
from tests.conftest import run_worker
from tests.keys import keys_matching, layout, task_keys
from tests.option_tasks import (
    CALLS,
    HeartbeatingExecutor,
    due_at,
    make_tiger,
    stored,
    tasktiger_id,
)
from typedtiger import (
    Config,
    JobTimeoutException,
    QueueFullException,
    RetryPolicy,
    Task,
    TaskSpec,
    TaskState,
    Tiger,
    exponential,
    fixed,
    linear,
)
from typedtiger.backends.redis import RedisBackend
from typedtiger.clock import ManualClock
from typedtiger.executor import Job
from typedtiger.spec import Custom

MODULE = "tests.option_tasks"


@pytest.fixture
def tiger(backend: RedisBackend) -> Tiger:
    return make_tiger(backend)


@pytest.fixture(autouse=True)
def _reset_option_tasks() -> Iterator[None]:
    option_tasks.reset()
    yield
    option_tasks.reset()


def snapshot(client: redis.Redis[str]) -> dict[str, object]:
    """Every key and its value, to check that nothing was written."""
    values: dict[str, object] = {}
    for key in sorted(set(client.scan_iter(match="*"))):  # (every primary of a cluster)
        kind = client.execute_command("TYPE", key)
        if kind == "string":
            values[key] = client.get(key)
        elif kind == "zset":
            values[key] = client.zrange(key, 0, -1, withscores=True)
        elif kind == "set":
            values[key] = sorted(client.smembers(key))
        elif kind == "list":
            values[key] = client.lrange(key, 0, -1)
        else:
            values[key] = kind
    return values


def runs_of(name: str) -> list[tuple[object, ...]]:
    return [call for call in CALLS if call[0] == name]


# --- unique ------------------------------------------------------------------------------------


def test_equal_unique_tasks_share_one_id_and_one_queue_entry(tiger: Tiger) -> None:
    first = tiger.delay(option_tasks.record, args=["x"], unique=True)
    again = tiger.delay(option_tasks.record, args=["x"], unique=True)
    other = tiger.delay(option_tasks.record, args=["y"], unique=True)
    decorated = tiger.enqueue(option_tasks.unique_task.spec(1))
    decorated_again = tiger.enqueue(option_tasks.unique_task.spec(1))

    assert first.id == again.id != other.id
    assert decorated.id == decorated_again.id
    assert again.state is TaskState.QUEUED
    assert tiger.get_queue_sizes("default")[TaskState.QUEUED] == 2
    assert tiger.get_queue_sizes("uniq")[TaskState.QUEUED] == 1

    run_worker(tiger)
    assert sorted(map(str, CALLS)) == sorted(
        map(str, [("record", "x"), ("record", "y"), ("unique_task", 1)])
    )


def test_unique_ids_reproduce_tasktigers_test_vectors(tiger: Tiger) -> None:
    # The vectors of the research notes (section 4), for TaskTiger's own test function names.
    # Specs may name any "module:qualname"; these are stored, never run.
    simple = tiger.enqueue(TaskSpec(func="tests.tasks:simple_task", unique=True))
    keyed = tiger.enqueue(
        TaskSpec(
            func="tests.tasks:unique_key_task",
            kwargs={"a": 1, "b": "not part of the key"},
            unique_key=("a",),
        )
    )
    assert simple.id == "7c51a5109de7b9e26fc606ecc3dea7c06f563304e6b47a3b537cfd2fd72e28c5"
    assert keyed.id == "a96f9d6d47765973e29f3eedcf3f44a16f498d2b80ca7d13594ec3958031585e"
    # ... and the formula this file compares against reproduces them too.
    assert tasktiger_id("tests.tasks:simple_task", [], {}) == simple.id
    assert tasktiger_id("tests.tasks:unique_key_task", None, {"a": 1}) == keyed.id


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        ((), {}),
        ((1, 2.0, "é", None, True), {}),
        (([1, [2, 3]], {"b": 1, "a": [2.5]}), {"z": "ü", "a": {"nested": [1, 2]}}),
        ((), {"value": "\u2603 snowman"}),
    ],
    ids=["no-args", "scalars", "nested", "non-ascii-kwarg"],
)
def test_unique_ids_agree_with_tasktigers_formula(
    tiger: Tiger, args: tuple[object, ...], kwargs: dict[str, object]
) -> None:
    spec = TaskSpec(func=f"{MODULE}:record", args=args, kwargs=kwargs, unique=True)
    task = tiger.enqueue(spec)
    assert task.id == tasktiger_id(f"{MODULE}:record", list(args), kwargs)


def test_enqueue_while_queued_returns_the_existing_task(tiger: Tiger, clock: ManualClock) -> None:
    first = tiger.enqueue(option_tasks.unique_task.spec(1))
    queued_at = Task.from_id(tiger, "uniq", TaskState.QUEUED, first.id).ts
    clock.advance(30)

    again = tiger.enqueue(option_tasks.unique_task.spec(1))

    assert again.id == first.id
    assert again.state is TaskState.QUEUED
    assert stored(tiger, first.id) == [("uniq", TaskState.QUEUED)]
    assert Task.from_id(tiger, "uniq", TaskState.QUEUED, first.id).ts == queued_at
    run_worker(tiger)
    assert CALLS == [("unique_task", 1)]


def test_enqueue_while_scheduled_keeps_the_original_time(tiger: Tiger, clock: ManualClock) -> None:
    t0 = clock.now()
    first = tiger.enqueue(option_tasks.unique_task.spec(1), when=timedelta(hours=1))

    later = tiger.enqueue(option_tasks.unique_task.spec(1), when=timedelta(hours=2))
    earlier = tiger.enqueue(option_tasks.unique_task.spec(1), when=timedelta(minutes=1))

    assert first.id == later.id == earlier.id
    assert stored(tiger, first.id) == [("uniq", TaskState.SCHEDULED)]
    assert due_at(tiger, "uniq", first.id) == t0 + 3600
    clock.advance(3599)
    run_worker(tiger)
    assert CALLS == []
    clock.advance(1)
    run_worker(tiger)
    assert CALLS == [("unique_task", 1)]


def test_enqueue_while_scheduled_returns_a_handle_on_the_existing_task(
    tiger: Tiger, clock: ManualClock
) -> None:
    first = tiger.enqueue(option_tasks.unique_task.spec(1), when=timedelta(hours=1))
    again = tiger.enqueue(option_tasks.unique_task.spec(1), when=timedelta(hours=2))
    assert again.state is TaskState.SCHEDULED
    assert (
        again.scheduled_at == first.scheduled_at == datetime.fromtimestamp(clock.now() + 3600, UTC)
    )


def test_unique_task_enqueued_while_active_is_queued_again(tiger: Tiger) -> None:
    task = tiger.enqueue(option_tasks.requeue_self.spec(7))
    run_worker(tiger)
    assert [
        ("requeue_self", 7, 1),
        ("requeued", task.id, TaskState.QUEUED),
        ("requeue_self", 7, 2),
    ] == CALLS
    assert stored(tiger, task.id) == []


def test_unique_task_queued_while_active_is_not_run_concurrently(
    tiger: Tiger, clock: ManualClock
) -> None:
    # A second worker claiming the re-queued task while the first run is active does not run
    # it: it goes back to scheduled, lock_retry later (TaskTiger's claim), and runs then.
    task = tiger.enqueue(option_tasks.requeue_self_then_claim.spec(3))
    t0 = clock.now()
    run_worker(tiger)
    assert CALLS == [("requeue_self_then_claim", 3, 1), ("claimed while active", [])]
    assert stored(tiger, task.id) == [("uniq", TaskState.SCHEDULED)]
    assert due_at(tiger, "uniq", task.id) == t0 + tiger.config.lock_retry

    clock.advance(tiger.config.lock_retry)
    run_worker(tiger)
    assert CALLS[-1] == ("requeue_self_then_claim", 3, 2)
    assert stored(tiger, task.id) == []


def test_unique_key_derives_the_id_from_the_named_kwargs_only(tiger: Tiger) -> None:
    first = tiger.enqueue(option_tasks.unique_keyed.spec(user_id=1, note="first"))
    same_user = tiger.enqueue(option_tasks.unique_keyed.spec(user_id=1, note="second"))
    other_user = tiger.enqueue(option_tasks.unique_keyed.spec(user_id=2, note="third"))
    per_call = tiger.delay(option_tasks.keyed, kwargs={"user_id": 1}, unique_key=["user_id"])

    assert first.id == same_user.id == tasktiger_id(f"{MODULE}:unique_keyed", None, {"user_id": 1})
    assert other_user.id == tasktiger_id(f"{MODULE}:unique_keyed", None, {"user_id": 2})
    assert per_call.id == tasktiger_id(f"{MODULE}:keyed", None, {"user_id": 1})
    assert tiger.get_queue_sizes("uniq")[TaskState.QUEUED] == 2
    # As in TaskTiger, the last queued arguments win (the stored payload is overwritten).
    assert same_user.kwargs == {"user_id": 1, "note": "second"}
    assert Task.from_id(tiger, "uniq", TaskState.QUEUED, first.id).kwargs == {
        "user_id": 1,
        "note": "second",
    }


def test_unique_key_overwrite_keeps_the_queued_score(tiger: Tiger, clock: ManualClock) -> None:
    first = tiger.enqueue(option_tasks.unique_keyed.spec(user_id=1, note="first"))
    clock.advance(30)
    again = tiger.enqueue(option_tasks.unique_keyed.spec(user_id=1, note="second"))
    assert again.state is TaskState.QUEUED
    assert again.ts == first.ts  # its place in the queue is kept
    assert Task.from_id(tiger, "uniq", TaskState.QUEUED, first.id).ts == first.ts
    # Several in one enqueue_many: the last wins too, filed once.
    specs = [option_tasks.unique_keyed.spec(user_id=2, note=str(n)) for n in range(3)]
    ids = {task.id for task in tiger.enqueue_many(specs)}
    (only,) = ids
    assert Task.from_id(tiger, "uniq", TaskState.QUEUED, only).kwargs["note"] == "2"
    assert tiger.get_queue_sizes("uniq")[TaskState.QUEUED] == 2


def test_unique_task_only_scheduled_is_queued_now_by_delay(
    tiger: Tiger, clock: ManualClock
) -> None:
    # "Run this periodic task now": delay() of a unique task that is only scheduled queues it
    # (TaskTiger's); the scheduled entry stays, so it runs again when due.
    later = tiger.enqueue(option_tasks.unique_task.spec(4), when=timedelta(hours=1))
    now = tiger.enqueue(option_tasks.unique_task.spec(4))
    assert now.id == later.id
    assert now.state is TaskState.QUEUED
    assert stored(tiger, now.id) == [("uniq", TaskState.QUEUED), ("uniq", TaskState.SCHEDULED)]

    run_worker(tiger)
    assert runs_of("unique_task") == [("unique_task", 4)]
    assert stored(tiger, now.id) == [("uniq", TaskState.SCHEDULED)]
    clock.advance(timedelta(hours=1))
    run_worker(tiger)
    assert runs_of("unique_task") == [("unique_task", 4)] * 2
    assert stored(tiger, now.id) == []


def test_unique_task_queued_is_not_queued_twice_by_a_later_delay(
    tiger: Tiger, clock: ManualClock
) -> None:
    first = tiger.enqueue(option_tasks.unique_task.spec(5))
    clock.advance(5)
    again = tiger.enqueue(option_tasks.unique_task.spec(5))
    assert (again.state, again.ts) == (TaskState.QUEUED, first.ts)
    run_worker(tiger)
    assert runs_of("unique_task") == [("unique_task", 5)]


# --- locks -------------------------------------------------------------------------------------


def test_lock_keys_expire_with_their_timeout_for_tasktiger_workers(
    tiger: Tiger, backend: RedisBackend, clock: ManualClock
) -> None:
    # TaskTiger workers see a lock while its key exists: a lock (or the expired-task pass's)
    # left by a killed worker must go within its timeout, as TaskTiger's own locks do (and,
    # per queue, where no TaskTiger worker looks, the TTL still collects it).
    timeout = tiger.config.active_task_update_timeout
    lock = layout(backend).lock("q", "L")
    backend.acquire_locks("q", {"t1": "L"}, clock.now(), timeout, clock.now() + 1)
    assert 0 < backend.client.pttl(lock) <= timeout * 1000
    clock.advance(5)
    backend.heartbeat("q", ["t1"], ["L"], clock.now(), timeout)
    assert 0 < backend.client.pttl(lock) <= timeout * 1000

    for n in range(2):
        tiger.enqueue(TaskSpec.of(option_tasks.record, f"lost {n}"))
    assert len(backend.claim("default", clock.now(), 2)) == 2
    clock.advance(timeout + 1)
    # A full batch keeps the pass's lock: it must expire after lock_for.
    assert backend.requeue_expired(clock.now(), timeout, 1, 3, "{}", 5.0) == (1, 0)
    requeue_lock = layout(backend).lock("default", "queue_expired_tasks")
    assert 0 < backend.client.pttl(requeue_lock) <= 5000


def test_a_task_whose_lock_is_held_runs_lock_retry_seconds_later(
    backend: RedisBackend, clock: ManualClock
) -> None:
    # The first task holds the lock of account 1 while it runs; meanwhile it queues a second
    # task with the same lock_key value, and one for another account, and a second worker
    # runs. The second task goes back to scheduled lock_retry seconds later.
    tiger = make_tiger(backend, Config(lock_retry=7))
    t0 = clock.now()
    tiger.enqueue(option_tasks.locked.spec(account=1, step="first"))

    run_worker(tiger)

    assert [
        ("locked", 1, "first"),
        ("locked", 2, "other account"),
        ("second rescheduled at", datetime.fromtimestamp(t0 + 7, UTC)),
    ] == CALLS
    clock.advance(6.5)
    run_worker(tiger)
    assert len(CALLS) == 3
    clock.advance(0.5)
    run_worker(tiger)
    assert CALLS[3:] == [("locked", 1, "second")]
    assert tiger.get_queue_stats() == {}


def holder_queue(backend: RedisBackend, queue: str) -> str:
    """The queue a holder of a lock on ``queue``'s tasks takes it from: another one in the
    classic layout, where locks span queues; ``queue`` per queue, where a lock covers one
    queue's tasks (docs/scaling.md, "What changes with it")."""
    return queue if layout(backend).sharded else "elsewhere"


def test_a_lock_whose_holder_died_expires(backend: RedisBackend, clock: ManualClock) -> None:
    # A holder takes the lock (the id TaskTiger derives: func + args + kwargs) and dies.
    tiger = make_tiger(backend, Config(lock_retry=2))
    lock_id = tasktiger_id(f"{MODULE}:record", ["x"], {})
    t0 = clock.now()
    elsewhere = holder_queue(backend, "locks")
    holders = backend.acquire_locks(elsewhere, {"dead-worker-task": lock_id}, t0, 20.0, t0)
    assert holders == {"dead-worker-task"}
    task = tiger.delay(option_tasks.record, args=["x"], lock=True, queue="locks")

    run_worker(tiger)
    assert CALLS == []
    assert due_at(tiger, "locks", task.id) == t0 + 2

    clock.advance(19)  # the lock is still held: rescheduled again
    run_worker(tiger)
    assert CALLS == []
    assert due_at(tiger, "locks", task.id) == t0 + 21

    clock.advance(2)  # past the holder's timeout (t0 + 20)
    run_worker(tiger)
    assert CALLS == [("record", "x")]
    assert stored(tiger, task.id) == []


def test_a_running_task_keeps_its_lock_through_its_heartbeats(
    backend: RedisBackend, clock: ManualClock
) -> None:
    # The task runs for 3 lock timeouts (heartbeating); its lock is never free meanwhile.
    tiger = make_tiger(backend)
    timeout = tiger.config.active_task_update_timeout
    lock_id = tasktiger_id(f"{MODULE}:record", ["long"], {})
    probes: list[set[str]] = []
    probe = holder_queue(backend, "default")

    def try_the_lock(job: Job) -> None:
        now = clock.now()
        probes.append(backend.acquire_locks(probe, {"intruder": lock_id}, now, timeout, now))
        backend.remove(probe, TaskState.SCHEDULED, "intruder", backend.clock.now())

    executor = HeartbeatingExecutor(clock, 3 * timeout, try_the_lock)
    tiger.delay(option_tasks.record, args=["long"], lock=True)
    executor.run_worker(tiger)

    assert probes == [set()]
    assert CALLS == [("record", "long")]


def test_a_lock_held_from_another_queue_excludes_only_in_the_classic_layout(
    backend: RedisBackend, clock: ManualClock
) -> None:
    # Per queue a task lock covers the tasks of one queue (docs/scaling.md, "What changes
    # with it"): a holder of the same lock id in another queue does not exclude.
    tiger = make_tiger(backend)
    lock_id = tasktiger_id(f"{MODULE}:record", ["x"], {})
    now = clock.now()
    assert backend.acquire_locks("elsewhere", {"holder": lock_id}, now, 60.0, now) == {"holder"}
    task = tiger.delay(option_tasks.record, args=["x"], lock=True, queue="locks")

    run_worker(tiger)

    if layout(backend).sharded:
        assert CALLS == [("record", "x")]
        assert stored(tiger, task.id) == []
    else:
        assert CALLS == []
        assert stored(tiger, task.id) == [("locks", TaskState.SCHEDULED)]


# --- retries -----------------------------------------------------------------------------------


def test_retry_true_uses_config_default_retry(backend: RedisBackend, clock: ManualClock) -> None:
    tiger = make_tiger(backend, Config(default_retry=fixed(30, 2)))
    task = tiger.delay(option_tasks.fail_numbered, retry=True)
    t0 = clock.now()
    run_worker(tiger)
    assert due_at(tiger, "default", task.id) == t0 + 30
    clock.advance(30)
    run_worker(tiger)
    assert due_at(tiger, "default", task.id) == t0 + 60
    clock.advance(30)
    run_worker(tiger)

    assert stored(tiger, task.id) == [("default", TaskState.ERROR)]
    assert Task.from_id(tiger, "default", TaskState.ERROR, task.id).n_executions() == 3


@pytest.mark.parametrize(
    ("retry_on", "kind", "retried"),
    [
        ([ValueError], "value", True),
        ([ValueError], "child", True),  # a subclass of a retry_on class
        ([KeyError, ValueError], "child", True),
        ([ValueError], "key", False),  # not a retry_on class: straight to error
        ([option_tasks.ChildValueError], "value", False),  # a base class does not match
        ([JobTimeoutException], "timeout", True),
        ([JobTimeoutException], "value", False),
    ],
)
def test_retry_on_matches_exception_classes_and_their_subclasses(
    tiger: Tiger,
    clock: ManualClock,
    retry_on: list[type[BaseException]],
    kind: str,
    retried: bool,
) -> None:
    task = tiger.delay(option_tasks.fail_with, args=[kind], retry_on=retry_on)
    run_worker(tiger)

    assert [("fail_with", kind)] == CALLS
    if retried:  # retry_on implies retry with Config.default_retry, fixed(60, 3)
        assert stored(tiger, task.id) == [("default", TaskState.SCHEDULED)]
        assert due_at(tiger, "default", task.id) == clock.now() + 60
    else:
        assert stored(tiger, task.id) == [("default", TaskState.ERROR)]
        assert Task.from_id(tiger, "default", TaskState.ERROR, task.id).n_executions() == 1


@pytest.mark.parametrize(
    ("policy", "delays"),
    [
        (exponential(60, 2, 3), [60, 120, 240]),  # the acceptance criterion
        (fixed(10, 2), [10, 10]),
        (linear(10, 5, 3), [10, 15, 20]),
    ],
    ids=["exponential(60,2,3)", "fixed(10,2)", "linear(10,5,3)"],
)
def test_retry_policies_fire_on_time_then_land_in_error(
    tiger: Tiger, clock: ManualClock, policy: RetryPolicy, delays: list[float]
) -> None:
    task = tiger.delay(option_tasks.fail_numbered, retry_method=policy)
    t0 = clock.now()
    run_worker(tiger)
    run_times = [t0]
    for executions, delay in enumerate(delays, start=1):
        assert stored(tiger, task.id) == [("default", TaskState.SCHEDULED)]
        assert due_at(tiger, "default", task.id) == clock.now() + delay
        clock.advance(delay - 1)
        run_worker(tiger)
        assert len(CALLS) == executions, "the retry ran early"
        clock.advance(1)
        run_worker(tiger)
        run_times.append(clock.now())
        assert len(CALLS) == executions + 1

    assert [call[2] for call in CALLS] == run_times
    assert stored(tiger, task.id) == [("default", TaskState.ERROR)]
    errored = Task.from_id(tiger, "default", TaskState.ERROR, task.id, load_executions=10)
    assert errored.n_executions() == len(delays) + 1
    assert [record.exception for record in errored.executions] == [
        f"run {n}" for n in range(1, len(delays) + 2)
    ]
    clock.advance(timedelta(days=1))
    run_worker(tiger)
    assert len(CALLS) == len(delays) + 1


def test_stop_retry_from_a_custom_policy_ends_in_error(tiger: Tiger, clock: ManualClock) -> None:
    task = tiger.delay(
        option_tasks.fail_with, args=["value"], retry_method=Custom.of(option_tasks.stop_after_two)
    )
    run_worker(tiger)
    assert due_at(tiger, "default", task.id) == clock.now() + 5
    clock.advance(5)
    run_worker(tiger)

    assert option_tasks.RETRY_NUMBERS == [1, 2]
    assert stored(tiger, task.id) == [("default", TaskState.ERROR)]
    assert Task.from_id(tiger, "default", TaskState.ERROR, task.id).n_executions() == 2


def test_retry_number_counts_every_execution(tiger: Tiger, clock: ManualClock) -> None:
    # Two failures retried by the task's own policy, then RetryException with another policy:
    # that policy is asked for retry 3, then 4.
    task = tiger.delay(option_tasks.fail_twice_then_retry_exception, retry_method=fixed(1, 10))
    for _ in range(4):
        run_worker(tiger)
        clock.advance(1)

    assert CALLS == [("mixed", 1), ("mixed", 2), ("mixed", 3), ("mixed", 4)]
    assert option_tasks.RETRY_NUMBERS == [3, 4]
    assert stored(tiger, task.id) == [("default", TaskState.SCHEDULED)]


@pytest.mark.parametrize("log_error", [True, False])
def test_retry_exception_log_error(
    tiger: Tiger, backend: RedisBackend, clock: ManualClock, log_error: bool
) -> None:
    # RetryException(method=fixed(5, 1)): retried once, 5 s later; then it fails for good. With
    # log_error=False that is a warning and the task is removed; otherwise an error, kept.
    task = tiger.delay(option_tasks.raise_retry, args=[log_error])
    with capture_logs() as logs:
        run_worker(tiger)
        assert due_at(tiger, "default", task.id) == clock.now() + 5
        clock.advance(5)
        run_worker(tiger)

    assert [("raise_retry", log_error)] * 2 == CALLS
    failures = [entry for entry in logs if entry["event"] in ("retrying", "error")]
    assert [(entry["event"], entry["log_level"]) for entry in failures] == [
        ("retrying", "warning"),
        ("error", "error" if log_error else "warning"),
    ]
    if log_error:
        errored = Task.from_id(tiger, "default", TaskState.ERROR, task.id, load_executions=5)
        assert errored.n_executions() == 2
        assert errored.executions[-1].exception_name == "typedtiger.exceptions:RetryException"
    else:
        assert stored(tiger, task.id) == []
        assert task_keys(backend, task.id) == []


@pytest.mark.parametrize("original_traceback", [True, False])
def test_retry_exception_original_traceback(tiger: Tiger, original_traceback: bool) -> None:
    task = tiger.delay(
        option_tasks.raise_retry_during_handling,
        args=[original_traceback],
        retry_method=fixed(5, 0),
    )
    run_worker(tiger)

    errored = Task.from_id(tiger, "default", TaskState.ERROR, task.id, load_executions=1)
    (record,) = errored.executions
    assert record.traceback is not None
    last_line = record.traceback.strip().splitlines()[-1]
    if original_traceback:
        assert last_line == "KeyError: 'the original failure'"
        assert "RetryException" not in record.traceback
    else:
        assert last_line == "typedtiger.exceptions.RetryException"


# --- max_queue_size and max_stored_executions --------------------------------------------------


def test_max_queue_size_counts_queued_active_and_scheduled_and_writes_nothing(
    tiger: Tiger, backend: RedisBackend, clock: ManualClock
) -> None:
    errored = tiger.delay(option_tasks.fail_with, args=["key"], queue="capped")
    run_worker(tiger)  # errored tasks do not count
    assert stored(tiger, errored.id) == [("capped", TaskState.ERROR)]

    spec = TaskSpec.of(option_tasks.record, "queued").evolve(queue="capped", max_queue_size=3)
    tiger.enqueue(spec)
    tiger.delay(
        option_tasks.record, args=["scheduled"], queue="capped", max_queue_size=3, when=timedelta(1)
    )
    tiger.enqueue(spec.evolve(unique=True))  # the third task: 2 < 3 still fits
    assert len(backend.claim("capped", clock.now(), 1)) == 1  # 1 active, 1 queued, 1 scheduled
    assert tiger.get_total_queue_size("capped") == 3

    before = snapshot(backend.client)
    with pytest.raises(QueueFullException, match="capped"):
        tiger.delay(option_tasks.record, args=["too many"], queue="capped", max_queue_size=3)
    with pytest.raises(QueueFullException):
        tiger.enqueue(spec, when=timedelta(hours=1))
    with pytest.raises(QueueFullException):
        tiger.enqueue(spec.evolve(max_queue_size=2))
    assert snapshot(backend.client) == before

    # Another queue, or a higher limit, is not affected.
    tiger.enqueue(spec.evolve(queue="other"))
    tiger.enqueue(spec.evolve(max_queue_size=4))
    assert tiger.get_total_queue_size("capped") == 4


def test_max_stored_executions_keeps_the_newest(tiger: Tiger, clock: ManualClock) -> None:
    task = tiger.delay(
        option_tasks.fail_numbered, retry_method=fixed(1, 4), max_stored_executions=2
    )
    for _ in range(5):
        run_worker(tiger)
        clock.advance(1)

    errored = Task.from_id(tiger, "default", TaskState.ERROR, task.id, load_executions=10)
    assert [record.exception for record in errored.executions] == ["run 4", "run 5"]
    assert errored.n_executions() == 5


def test_max_stored_executions_zero_keeps_every_execution(tiger: Tiger, clock: ManualClock) -> None:
    # TaskTiger's meaning of 0 (a payload stored by TaskTiger may carry it too).
    task = tiger.delay(
        option_tasks.fail_numbered, retry_method=fixed(1, 4), max_stored_executions=0
    )
    assert task.payload.max_stored_executions == 0
    for _ in range(5):
        run_worker(tiger)
        clock.advance(1)

    errored = Task.from_id(tiger, "default", TaskState.ERROR, task.id, load_executions=10)
    assert [record.exception for record in errored.executions] == [f"run {n}" for n in range(1, 6)]
    assert errored.n_executions() == 5


# --- eager mode --------------------------------------------------------------------------------


@pytest.fixture
def eager(backend: RedisBackend) -> Tiger:
    return make_tiger(backend, Config(always_eager=True))


def test_always_eager_runs_at_enqueue_in_process_and_stores_nothing(
    eager: Tiger, backend: RedisBackend
) -> None:
    task = eager.enqueue(TaskSpec.of(option_tasks.record_current))
    assert [("current", task.id, f"{MODULE}:record_current", False)] == CALLS

    eager.enqueue(option_tasks.unique_task.spec(5))
    eager.delay(option_tasks.record, args=["delayed"], queue="elsewhere", retry=True)
    assert CALLS[1:] == [("unique_task", 5), ("record", "delayed")]
    assert keys_matching(backend, "*") == []


def test_always_eager_calls_a_batch_task_with_a_list_of_one(
    eager: Tiger, backend: RedisBackend
) -> None:
    eager.enqueue(option_tasks.batch_record.spec(8, flag=True))
    assert CALLS == [("batch", [[8]], [{"flag": True}], [[8]], True)]
    assert keys_matching(backend, "*") == []


def test_always_eager_exceptions_propagate(eager: Tiger, backend: RedisBackend) -> None:
    with pytest.raises(option_tasks.ChildValueError, match="child"):
        eager.delay(option_tasks.fail_with, args=["child"], retry=True)
    with pytest.raises(ValueError, match="decorated 1"):
        eager.enqueue(option_tasks.decorated.spec(1))
    assert keys_matching(backend, "*") == []


def test_always_eager_stores_future_tasks_for_a_worker(eager: Tiger, clock: ManualClock) -> None:
    later = eager.delay(option_tasks.record, args=["later"], when=timedelta(minutes=1))
    assert later.state is TaskState.SCHEDULED
    assert CALLS == []

    clock.advance(60)
    run_worker(eager)
    assert CALLS == [("record", "later")]


def test_always_eager_checks_max_queue_size_first(eager: Tiger) -> None:
    for n in range(2):
        eager.delay(option_tasks.record, args=[n], queue="capped", when=timedelta(hours=1))
    with pytest.raises(QueueFullException):
        eager.delay(option_tasks.record, args=["now"], queue="capped", max_queue_size=2)
    assert CALLS == []
    eager.delay(option_tasks.record, args=["now"], queue="capped", max_queue_size=3)
    assert CALLS == [("record", "now")]


# --- per-call options --------------------------------------------------------------------------


def test_per_call_options_override_the_decorators(tiger: Tiger, clock: ManualClock) -> None:
    # @tiger.task(queue="deco", retry=fixed(10, 1), unique=True)
    name = f"{MODULE}:decorated"
    defaults = tiger.enqueue(option_tasks.decorated.spec(1))
    evolved = tiger.enqueue(
        option_tasks.decorated.spec(2).evolve(queue="override", retry=fixed(99, 1), unique=False)
    )
    delayed = tiger.delay(
        option_tasks.decorated, args=[3], queue="override2", retry_method=linear(7, 0, 1)
    )
    delayed_defaults = tiger.delay(option_tasks.decorated, args=[4])
    reset = tiger.enqueue(
        option_tasks.decorated.spec(5).evolve(queue="override").evolve(queue=None)
    )

    assert (defaults.queue, defaults.id) == ("deco", tasktiger_id(name, [1], {}))
    assert evolved.queue == "override" and evolved.id != tasktiger_id(name, [2], {})
    assert (delayed.queue, delayed.id) == ("override2", tasktiger_id(name, [3], {}))
    assert (delayed_defaults.queue, delayed_defaults.id) == ("deco", tasktiger_id(name, [4], {}))
    assert reset.queue == "deco"

    now = clock.now()
    run_worker(tiger)
    assert len(CALLS) == 5
    assert due_at(tiger, "deco", defaults.id) == now + 10
    assert due_at(tiger, "override", evolved.id) == now + 99
    assert due_at(tiger, "override2", delayed.id) == now + 7
    assert due_at(tiger, "deco", delayed_defaults.id) == now + 10


# --- invalid options ---------------------------------------------------------------------------


def _register(**options: object) -> Callable[[], object]:
    return lambda: Tiger().task(**options)(option_tasks.keyed)  # type: ignore[call-overload]


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (
            lambda: TaskSpec.of(option_tasks.keyed, 1).evolve(retry_on=[int]),  # type: ignore[list-item]
            TypeError,
            "retry_on takes exception classes; <class 'int'> is not one",
        ),
        (
            lambda: TaskSpec.of(option_tasks.keyed, 1).evolve(retry_on=[ValueError("x")]),  # type: ignore[list-item]
            TypeError,
            "retry_on takes exception classes",
        ),
        (
            lambda: TaskSpec.of(option_tasks.keyed, 1).evolve(retry_on=ValueError),  # type: ignore[arg-type]
            TypeError,
            "retry_on takes a sequence",
        ),
        (_register(retry_on=[int]), TypeError, "retry_on takes exception classes"),
        (
            lambda: TaskSpec.of(option_tasks.keyed, 1).evolve(hard_timeout=-1),
            ValueError,
            "hard_timeout must be > 0",
        ),
        (_register(hard_timeout=-1), ValueError, "hard_timeout must be > 0"),
        (
            lambda: TaskSpec.of(option_tasks.keyed, 1).evolve(unique_key=["user"]),
            ValueError,
            "unique_key names 'user', which tests.option_tasks:keyed does not take",
        ),
        (_register(unique_key=["user"]), ValueError, "unique_key names 'user'"),
        (_register(lock_key=["account"]), ValueError, "lock_key names 'account'"),
        (
            # untyped callers can still pass a string: refused at run time too
            lambda: TaskSpec.of(option_tasks.keyed, 1).evolve(unique_key="user_id"),  # type: ignore[arg-type]
            TypeError,
            "unique_key/lock_key take a sequence",
        ),
    ],
)
def test_invalid_options_are_refused_at_spec_time(
    make: Callable[[], object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        make()


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"retry_on": [int]}, TypeError, "retry_on takes exception classes"),
        ({"hard_timeout": -5}, ValueError, "hard_timeout must be > 0"),
        ({"unique_key": ["user"]}, ValueError, "unique_key names 'user'"),
        ({"lock_key": ["user"]}, ValueError, "lock_key names 'user'"),
    ],
)
def test_invalid_options_of_tiger_delay_write_nothing(
    tiger: Tiger,
    backend: RedisBackend,
    options: dict[str, object],
    error: type[Exception],
    message: str,
) -> None:
    with pytest.raises(error, match=message):
        tiger.delay(option_tasks.keyed, kwargs={"user_id": 1}, **options)  # type: ignore[arg-type]
    assert keys_matching(backend, "*") == []
