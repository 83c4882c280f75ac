"""Races between a worker's threads and between workers (issue 17), deterministic: a
ManualClock, stub executors, events instead of sleeps; on FakeBackend and real Redis."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import cast

import pytest

from tests import tasks
from tests.option_tasks import Deferred
from typedtiger import Config, TaskSpec, TaskState, Tiger, Worker
from typedtiger.backends.base import Backend
from typedtiger.backends.redis import RedisBackend
from typedtiger.clock import ManualClock
from typedtiger.executor import (
    ExecutorSettings,
    Job,
    Outcome,
    RunJob,
    Running,
    Succeeded,
    SyncExecutor,
)
from typedtiger.worker import lock_id_for
from typedtiger.worker.heartbeat import Heartbeat, Heartbeats

#: Bound on waits for another thread (never reached when the code is right).
WAIT = 10.0


class _KeepsHeartbeat:
    """Runs nothing: keeps each job's heartbeat (as the worker's heartbeat thread might have
    taken it just before the outcome came back, to call it late). Run workers with it through
    ``run_worker``, which wires it to the worker's heartbeats."""

    side_by_side = False

    def __init__(self) -> None:
        self.heartbeats: list[Callable[[], None]] = []
        self.worker_heartbeats: Heartbeats | None = None

    def run_worker(self, tiger: Tiger, max_workers_per_queue: int | None = None) -> None:
        worker = Worker(tiger, executor=self, max_workers_per_queue=max_workers_per_queue)
        self.worker_heartbeats = worker.heartbeats
        worker.run(once=True)

    def bind(self, settings: ExecutorSettings) -> None:
        pass

    def start(self, job: Job, run: RunJob) -> Running:
        return Deferred(lambda: self.run_job(job))

    def run_job(self, job: Job) -> Outcome:
        assert self.worker_heartbeats is not None
        self.heartbeats.extend(self.worker_heartbeats.running)
        return Succeeded(time_started=0, time_finished=0)

    def close(self) -> None:
        pass


# --- heartbeat vs. record --------------------------------------------------------------------


def test_heartbeat_stop_waits_for_the_beat_in_progress_and_silences_later_ones() -> None:
    inside, leave = threading.Event(), threading.Event()
    beats: list[str] = []

    def beat() -> None:
        beats.append("beat")
        inside.set()
        assert leave.wait(WAIT)

    heartbeat = Heartbeat(beat)
    beating = threading.Thread(target=heartbeat)
    beating.start()
    assert inside.wait(WAIT)
    stopper = threading.Thread(target=heartbeat.stop)
    stopper.start()
    stopper.join(0.1)
    assert stopper.is_alive(), "stop returned while a beat was still refreshing"
    leave.set()
    stopper.join(WAIT)
    beating.join(WAIT)
    assert not stopper.is_alive()

    heartbeat()
    assert beats == ["beat"]


def test_a_late_heartbeat_does_not_retake_the_released_queue_slot(
    tiger: Tiger, backend: RedisBackend, clock: ManualClock
) -> None:
    executor = _KeepsHeartbeat()
    tiger.enqueue(TaskSpec.of(tasks.simple, "x").evolve(queue="single"))
    executor.run_worker(tiger, max_workers_per_queue=1)
    assert tasks.CALLS == []  # the stub ran nothing; the task is recorded as done
    assert tiger.get_total_queue_size("single") == 0

    (late,) = executor.heartbeats
    late()  # an executor thread that beats after the job's outcome was recorded

    timeout = tiger.config.active_task_update_timeout
    assert backend.acquire_queue_slot("single", "another-worker", 1, clock.now(), timeout)


# --- queue slots while the queue is paused ---------------------------------------------------


def test_a_running_holder_keeps_its_slot_through_a_pause(
    backend: RedisBackend, clock: ManualClock
) -> None:
    slot = backend.acquire_queue_slot
    assert slot("q", "runner", 1, clock.now(), 20)
    backend.set_queue_system_lock("q", clock.now() + 100)
    for _ in range(9):  # heartbeats every 10 s through the 100 s pause
        clock.advance(10)
        assert slot("q", "runner", 1, clock.now(), 20, refresh=True)
        assert not slot("q", "newcomer", 2, clock.now(), 20)  # a pause refuses new holders
    clock.advance(10)
    assert slot("q", "runner", 1, clock.now(), 20, refresh=True)

    assert not slot("q", "intruder", 1, clock.now(), 20)  # pause over: the slot is still taken
    assert slot("q", "intruder", 2, clock.now(), 20)  # the pause's entry takes no slot
    backend.release_queue_slot("q", "runner")
    assert slot("q", "newcomer", 2, clock.now(), 20)


class _PausedMidTask(_KeepsHeartbeat):
    """Pauses the job's queue for three heartbeat timeouts while the job runs (heartbeating as a
    worker does); as the pause ends, before the job's next beat, another worker asks for the
    queue's only slot."""

    def __init__(self, tiger: Tiger, clock: ManualClock) -> None:
        super().__init__()
        self._tiger, self._clock = tiger, clock
        self.intruder_got_the_slot: bool | None = None

    def run_job(self, job: Job) -> Outcome:
        assert self.worker_heartbeats is not None
        heartbeat = self.worker_heartbeats.beat_now
        heartbeat_interval = self.worker_heartbeats.interval
        timeout = self._tiger.config.active_task_update_timeout
        pause = 3 * timeout
        self._tiger.set_queue_system_lock(job.queue, pause)
        elapsed = heartbeat_interval
        while elapsed < pause:
            self._clock.advance(heartbeat_interval)
            heartbeat()
            elapsed += heartbeat_interval
        self._clock.advance(heartbeat_interval)  # the pause is over
        backend = self._tiger.backend
        self.intruder_got_the_slot = backend.acquire_queue_slot(
            job.queue, "intruder", 1, self._clock.now(), timeout
        )
        heartbeat()
        return super().run_job(job)


def test_a_long_pause_does_not_give_a_running_tasks_slot_to_another_worker(
    tiger: Tiger, clock: ManualClock
) -> None:
    executor = _PausedMidTask(tiger, clock)
    tiger.enqueue(TaskSpec.of(tasks.simple, "long").evolve(queue="single"))
    executor.run_worker(tiger, max_workers_per_queue=1)
    assert executor.intruder_got_the_slot is False
    assert tiger.get_total_queue_size("single") == 0


# --- a claim that only met busy locks ----------------------------------------------------------


class _StopsWhenIdle:
    """The backend, except that the worker is stopped when it first waits for activity (idle;
    a wait of 0 s is a look, which a worker also takes when it starts or while tasks run)."""

    def __init__(self, inner: RedisBackend) -> None:
        self._inner = inner
        self.worker: Worker | None = None

    def wait_for_activity(self, timeout: float) -> set[str]:
        assert self.worker is not None
        if timeout > 0:
            self.worker.stop()
        return set()

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)

    def with_prefix(self, prefix: str, cluster: bool = False) -> _StopsWhenIdle:
        assert prefix == self._inner.prefix
        return self

    def without_retries(self) -> _StopsWhenIdle:
        return self


def test_a_claim_that_only_met_a_busy_lock_leaves_the_queue_until_activity(
    backend: RedisBackend, clock: ManualClock
) -> None:
    # Another worker runs a task holding the lock all of these tasks need.
    spec = TaskSpec.of(tasks.simple, "same").evolve(lock=True)
    first, *_ = (Tiger(backend).enqueue(spec) for _ in range(6))
    (holder,) = backend.claim("default", clock.now(), 1)
    lock = {holder.id: lock_id_for(first.payload)}  # the same lock for all six
    assert backend.acquire_locks("default", lock, clock.now(), 20, clock.now() + 1) == {holder.id}

    wrapper = _StopsWhenIdle(backend)
    tiger = Tiger(cast(Backend, wrapper), Config(allowed_task_modules=("tests",)))
    tiger.adopt(tasks.tiger)
    worker = wrapper.worker = Worker(tiger, executor=SyncExecutor())
    worker.run()

    # One task bounced off the lock; the worker then went idle instead of pushing every queued
    # task of the lock back to scheduled (to run one per scheduler pass).
    sizes = tiger.get_queue_sizes("default")
    assert sizes[TaskState.SCHEDULED] == 1
    assert sizes[TaskState.QUEUED] == 4
    assert tasks.CALLS == []


class _InterruptedWait(_KeepsHeartbeat):
    """The wait for the job is interrupted (a Ctrl-C while the worker waits for its child)."""

    def run_job(self, job: Job) -> Outcome:
        raise KeyboardInterrupt


def test_an_interrupted_wait_stops_the_job_s_heartbeat(tiger: Tiger) -> None:
    executor = _InterruptedWait()
    tiger.enqueue(TaskSpec.of(tasks.simple, "x"))
    worker = Worker(tiger, executor=executor)
    with pytest.raises(KeyboardInterrupt):
        worker.run(once=True)
    assert worker.heartbeats.running == ()  # nothing keeps the lost task looking alive


def test_a_stopped_worker_leaves_no_heartbeat_thread(tiger: Tiger) -> None:
    before = {t for t in threading.enumerate() if t.name == "typedtiger-heartbeat"}
    tiger.enqueue(TaskSpec.of(tasks.simple, "x"))
    worker = Worker(tiger, executor=SyncExecutor())
    worker.run(once=True)
    assert tasks.CALLS
    after = {t for t in threading.enumerate() if t.name == "typedtiger-heartbeat"}
    assert after <= before
