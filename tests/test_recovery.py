"""Lost workers, on both backends with the ManualClock: requeue, and the bound on losses."""

from __future__ import annotations

from tests import tasks
from tests.conftest import run_worker
from typedtiger import Config, Task, TaskSpec, TaskState, Tiger
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
    tiger = Tiger(backend, Config(active_task_update_timeout=20, active_task_update_timer=5))
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
    tiger = Tiger(backend, Config(max_worker_loss_retries=3))
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


def test_requeue_runs_under_a_lock_one_worker_at_a_time(
    backend: RedisBackend, clock: ManualClock
) -> None:
    tiger = Tiger(backend)
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
