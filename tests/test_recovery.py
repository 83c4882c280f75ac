"""Lost workers, on both backends with the ManualClock: requeue, and the bound on losses."""

from __future__ import annotations

import attrs

from tests import tasks
from tests.conftest import run_worker
from tests.keys import task_key, task_keys
from typedtiger import Config, Task, TaskSpec, TaskState, Tiger
from typedtiger.backends.base import Completion, Failure
from typedtiger.backends.redis import RedisBackend
from typedtiger.clock import ManualClock
from typedtiger.serialization import WORKER_LOST_NAME, ExecutionRecord, encode_execution

LOST = encode_execution(ExecutionRecord(exception_name=WORKER_LOST_NAME))


def _claim_and_die(backend: RedisBackend, clock: ManualClock) -> None:
    """What a worker does before it is SIGKILLed: claim, then never heartbeat again."""
    (claimed,) = backend.claim("default", clock.now(), 1)
    assert claimed.payload is not None


def test_task_of_a_lost_worker_is_requeued_after_the_heartbeat_timeout(
    backend: RedisBackend, clock: ManualClock
) -> None:
    tiger = Tiger(
        backend,
        Config(
            active_task_update_timeout=20,
            active_task_update_timer=5,
            allowed_task_modules=("tests",),
        ),
    )
    tiger.enqueue(TaskSpec.of(tasks.simple, "orphan"))
    _claim_and_die(backend, clock)

    clock.advance(19)
    run_worker(tiger)
    assert tasks.CALLS == []
    assert tiger.get_queue_sizes("default")[TaskState.ACTIVE] == 1

    clock.advance(2)
    run_worker(tiger)
    assert tasks.CALLS == [("simple", "orphan")]
    assert tiger.get_queue_stats() == {}


def test_a_task_that_keeps_losing_its_worker_ends_in_error(
    backend: RedisBackend, clock: ManualClock
) -> None:
    tiger = Tiger(backend, Config(max_worker_loss_retries=3, allowed_task_modules=("tests",)))
    task = tiger.enqueue(TaskSpec.of(tasks.simple, "doomed"))
    for _ in range(3):
        _claim_and_die(backend, clock)
        clock.advance(tiger.config.active_task_update_timeout + 1)
        backend.requeue_expired(clock.now(), 20, 100, 3, LOST, 5)
        assert tiger.get_queue_sizes("default")[TaskState.QUEUED] == 1
        clock.advance(6)

    _claim_and_die(backend, clock)
    clock.advance(tiger.config.active_task_update_timeout + 1)
    run_worker(tiger)

    assert tasks.CALLS == []
    errored = Task.from_id(tiger, "default", TaskState.ERROR, task.id, load_executions=1)
    assert errored.executions[-1].exception_name == "typedtiger.exceptions:WorkerLost"


def _lose(backend: RedisBackend, clock: ManualClock) -> tuple[int, int]:
    """Claim the queued task, let its heartbeat expire and run a requeue pass."""
    _claim_and_die(backend, clock)
    clock.advance(21)
    return backend.requeue_expired(clock.now(), 20, 100, 2, LOST, 5)


def test_trimmed_executions_do_not_reset_the_loss_count(
    backend: RedisBackend, clock: ManualClock
) -> None:
    # Between losses the task fails and is retried: with max_stored_executions=1 each failure
    # trims the lost-worker records away, so only a counter can see the third loss.
    tiger = Tiger(backend)
    task = tiger.enqueue(TaskSpec.of(tasks.simple, "poison").evolve(max_stored_executions=1))
    failed = encode_execution(ExecutionRecord(exception_name="builtins:ValueError"))
    for _ in range(2):
        assert _lose(backend, clock) == (1, 0)
        backend.claim("default", clock.now(), 1)
        retry = Failure(execution=failed, to_state=TaskState.QUEUED, when=clock.now())
        backend.fail("default", [task.id], [], attrs.evolve(retry, max_stored_executions=1))
    assert backend.client.get(task_key(backend, "default", task.id, ":worker_losses")) == "2"

    assert _lose(backend, clock) == (0, 1)
    errored = Task.from_id(tiger, "default", TaskState.ERROR, task.id, load_executions=5)
    names = [record.exception_name for record in errored.executions]
    assert names == ["builtins:ValueError", WORKER_LOST_NAME]


def test_the_loss_counter_goes_with_the_task(backend: RedisBackend, clock: ManualClock) -> None:
    tiger = Tiger(backend)
    done, deleted, errored = (
        tiger.enqueue(TaskSpec.of(tasks.simple, name)) for name in ("done", "deleted", "errored")
    )
    losses = {
        task.id: task_key(backend, "default", task.id, ":worker_losses")
        for task in (done, deleted, errored)
    }
    backend.claim("default", clock.now(), 3)
    clock.advance(21)
    assert backend.requeue_expired(clock.now(), 20, 100, 3, LOST, 5) == (3, 0)
    assert all(backend.client.get(key) == "1" for key in losses.values())
    # expires a week after the last loss, should a TaskTiger worker finish the task
    assert 0 < backend.client.ttl(losses[done.id]) <= 7 * 24 * 3600

    backend.claim("default", clock.now(), 3)
    backend.complete(Completion("default", (done.id,)), backend.clock.now())
    to_error = Failure(execution="{}", to_state=TaskState.ERROR, when=clock.now())
    backend.fail("default", [errored.id], [], to_error)
    assert backend.remove("default", TaskState.ACTIVE, deleted.id, backend.clock.now())
    assert backend.client.exists(losses[done.id], losses[deleted.id]) == 0
    assert backend.client.get(losses[errored.id]) == "1"  # kept with its executions

    assert tiger.purge_errored_tasks() == 1
    assert task_keys(backend) == []


def test_requeue_runs_under_a_lock_one_worker_at_a_time(
    backend: RedisBackend, clock: ManualClock
) -> None:
    tiger = Tiger(backend, Config(allowed_task_modules=("tests",)))
    tiger.enqueue_many([TaskSpec.of(tasks.simple, "a"), TaskSpec.of(tasks.simple, "b")])
    backend.claim("default", clock.now(), 2)
    clock.advance(60)
    # a full batch (limit 1) keeps the lock for lock_for (5 s): other workers wait
    assert backend.requeue_expired(clock.now(), 20, 1, 3, "{}", 5) == (1, 0)
    assert backend.requeue_expired(clock.now(), 20, 1, 3, "{}", 5) == (0, 0)
    clock.advance(5)
    # a partial batch releases it at once
    assert backend.requeue_expired(clock.now(), 20, 5, 3, "{}", 5) == (1, 0)
    backend.claim("default", clock.now(), 2)
    clock.advance(21)
    assert backend.requeue_expired(clock.now(), 20, 5, 3, "{}", 5) == (2, 0)
