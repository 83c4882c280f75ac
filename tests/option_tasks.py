"""Task functions for tests/test_options.py and tests/test_queues.py.

Importable as ``tests.option_tasks:<name>``. Decorated tasks are registered on ``tiger`` (and the
periodic ones on ``periodic_tiger``, so that only the periodic tests' workers register them);
test Tigers ``adopt`` them. Tasks that must act on storage while they run (enqueue another task,
run a nested worker, look at their own next run) use the Tiger the test ``bind``s.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime

import attrs

from typedtiger import (
    Config,
    JobTimeoutException,
    RetryException,
    StopRetry,
    Task,
    TaskNotFound,
    TaskState,
    Tiger,
)
from typedtiger import fixed as fixed_retry
from typedtiger import periodic as periodic_schedule
from typedtiger._json import JSONValue
from typedtiger.backends.base import Backend
from typedtiger.clock import ManualClock
from typedtiger.executor import ExecutorSettings, Job, Outcome, RunJob, Running, SyncExecutor
from typedtiger.runner import BatchCall
from typedtiger.spec import Custom, cron
from typedtiger.worker import Worker
from typedtiger.worker.heartbeat import Heartbeats

#: What the tasks did, in order: (name, details...).
CALLS: list[tuple[object, ...]] = []
#: Retry numbers the recording retry policy was called with.
RETRY_NUMBERS: list[int] = []
#: How many times each counting task has run.
RUNS: dict[str, int] = {}

#: Non-periodic registrations.
tiger = Tiger()
#: Periodic registrations: adopted only by the periodic tests (any worker registers them).
periodic_tiger = Tiger()

_bound: list[Tiger] = []


def bind(target: Tiger) -> None:
    """Make ``target`` the Tiger tasks act through while they run."""
    _bound[:] = [target]


def bound() -> Tiger:
    """The Tiger the current test bound."""
    if not _bound:
        raise RuntimeError("the test did not bind a Tiger (option_tasks.bind)")
    return _bound[0]


def reset() -> None:
    """Forget everything recorded (between tests)."""
    CALLS.clear()
    RETRY_NUMBERS.clear()
    RUNS.clear()
    _bound.clear()


def _count(name: str) -> int:
    RUNS[name] = RUNS.get(name, 0) + 1
    return RUNS[name]


def _now() -> datetime:
    return datetime.fromtimestamp(bound().clock.now(), UTC)


# --- plain functions (options given per call) ---------------------------------------------------


def record(value: JSONValue = None) -> None:
    CALLS.append(("record", value))


def keyed(user_id: int, note: str = "") -> None:
    CALLS.append(("keyed", user_id, note))


class ChildValueError(ValueError):
    """A subclass, to check that retry_on matches subclasses."""


def fail_with(kind: str) -> None:
    """Raise the exception named by ``kind``."""
    CALLS.append(("fail_with", kind))
    if kind == "value":
        raise ValueError(kind)
    if kind == "child":
        raise ChildValueError(kind)
    if kind == "timeout":
        raise JobTimeoutException(kind)
    raise KeyError(kind)


def fail_numbered() -> None:
    """Fail with the number of this run in the message ("run 1", "run 2", ...)."""
    number = _count("fail_numbered")
    CALLS.append(("fail_numbered", number, bound().clock.now()))
    raise ValueError(f"run {number}")


def record_current() -> None:
    CALLS.append(
        (
            "current",
            tiger.current_task.id,
            tiger.current_serialized_func,
            tiger.current_task_is_batch,
        )
    )


def record_batchness(n: int) -> None:
    CALLS.append(("single", n, tiger.current_task.id != "", tiger.current_task_is_batch))


def record_sizes(n: int, queue: str) -> None:
    CALLS.append(("sizes", n, dict(bound().get_queue_sizes(queue))))


def probe_queue_slot(queue: str) -> None:
    """Record whether another worker could take a slot of ``queue`` right now."""
    taken = bound().backend.acquire_queue_slot(
        queue, "another-worker", 1, bound().clock.now(), 20.0
    )
    if taken:
        bound().backend.release_queue_slot(queue, "another-worker")
    CALLS.append(("probe", queue, taken))


# --- retry policies and tasks that raise RetryException ----------------------------------------


def recording_policy(retry_number: int, delay: float) -> float:
    """A Custom retry policy that records the retry numbers it is given."""
    RETRY_NUMBERS.append(retry_number)
    return delay


def stop_after_two(retry_number: int) -> float:
    """A Custom retry policy: retry once after 5 s, then StopRetry."""
    RETRY_NUMBERS.append(retry_number)
    if retry_number >= 2:
        raise StopRetry
    return 5.0


def raise_retry(log_error: bool) -> None:
    CALLS.append(("raise_retry", log_error))
    raise RetryException(method=fixed_retry(5, 1), log_error=log_error)


def raise_retry_during_handling(original_traceback: bool) -> None:
    try:
        raise KeyError("the original failure")
    except KeyError:
        raise RetryException(original_traceback=original_traceback) from None


def fail_twice_then_retry_exception() -> None:
    """Fail with ValueError twice (the task's policy), then ask for a retry with a recording
    policy: the retry number it is given counts every execution so far."""
    number = _count("fail_twice_then_retry_exception")
    CALLS.append(("mixed", number))
    if number <= 2:
        raise ValueError(f"run {number}")
    raise RetryException(method=Custom.of(recording_policy, 1.0))


# --- decorated tasks ---------------------------------------------------------------------------


@tiger.task(unique=True, queue="uniq")
def unique_task(n: int) -> None:
    CALLS.append(("unique_task", n))


@tiger.task(unique_key=("user_id",), queue="uniq")
def unique_keyed(user_id: int, note: str = "") -> None:
    CALLS.append(("unique_keyed", user_id, note))


@tiger.task(unique=True, queue="uniq")
def requeue_self(n: int) -> None:
    """On its first run, enqueue itself again (equal, so the same id) while active."""
    run = _count("requeue_self")
    CALLS.append(("requeue_self", n, run))
    if run == 1:
        again = bound().enqueue(requeue_self.spec(n))
        CALLS.append(("requeued", again.id, again.state))


@tiger.task(unique=True, queue="uniq")
def requeue_self_then_claim(n: int) -> None:
    """On its first run, enqueue itself again and let a second worker try to claim it."""
    run = _count("requeue_self_then_claim")
    CALLS.append(("requeue_self_then_claim", n, run))
    if run == 1:
        tiger_ = bound()
        tiger_.enqueue(requeue_self_then_claim.spec(n))
        claimed = tiger_.backend.claim("uniq", tiger_.clock.now(), 10, tiger_.config.lock_retry)
        CALLS.append(("claimed while active", [item.id for item in claimed]))


@tiger.task(lock_key=("account",), queue="locks")
def locked(account: int, step: str) -> None:
    """The "first" step enqueues a "second" one with the same lock and lets another worker try
    to run it while the first still holds the lock."""
    CALLS.append(("locked", account, step))
    if step != "first":
        return
    tiger_ = bound()
    second = tiger_.enqueue(locked.spec(account=account, step="second"))
    tiger_.enqueue(locked.spec(account=account + 1, step="other account"))
    Worker(tiger_, queues=["locks"], executor=SyncExecutor()).run(once=True)
    rescheduled = Task.from_id(tiger_, "locks", TaskState.SCHEDULED, second.id)
    CALLS.append(("second rescheduled at", rescheduled.scheduled_at))


@tiger.task(queue="deco", retry=fixed_retry(10, 1), unique=True)
def decorated(n: int) -> None:
    CALLS.append(("decorated", n))
    raise ValueError(f"decorated {n}")


@tiger.task(batch=True, queue="batch")
def batch_record(calls: list[BatchCall]) -> None:
    CALLS.append(
        (
            "batch",
            [call["args"] for call in calls],
            [call["kwargs"] for call in calls],
            [list(task.args) for task in tiger.current_tasks],
            tiger.current_task_is_batch,
        )
    )


@tiger.task(batch=True, queue="batch", retry=fixed_retry(10, 1))
def batch_fail(calls: list[BatchCall]) -> None:
    CALLS.append(("batch_fail", [call["args"] for call in calls]))
    raise ValueError("the whole batch fails")


# --- periodic tasks (registered on periodic_tiger) ----------------------------------------------

#: 2026-01-04 is a Sunday.
WEEKLY_START = datetime(2026, 1, 4, 4, 0, tzinfo=UTC)
ENDING_AT = datetime(2026, 1, 1, 0, 10, tzinfo=UTC)
CUSTOM_TIMES = (
    datetime(2026, 1, 1, 0, 30, tzinfo=UTC),
    datetime(2026, 1, 1, 1, 30, tzinfo=UTC),
    datetime(2026, 1, 1, 2, 30, tzinfo=UTC),
)


def three_runs(after: datetime) -> datetime | None:
    """A custom schedule: the first of CUSTOM_TIMES after ``after``, then None (stop)."""
    return next((when for when in CUSTOM_TIMES if when > after), None)


def _note_periodic_run(name: str, queue: str) -> None:
    """Record the run time and the next run already scheduled (None if there is none)."""
    task = tiger.current_task
    try:
        next_run = Task.from_id(bound(), queue, TaskState.SCHEDULED, task.id).scheduled_at
    except TaskNotFound:
        next_run = None
    CALLS.append((name, _now(), next_run))


@periodic_tiger.task(schedule=periodic_schedule(minutes=5), queue="periodic.five")
def every_five_minutes() -> None:
    _note_periodic_run("five", "periodic.five")


@periodic_tiger.task(
    schedule=periodic_schedule(weeks=1, start_date=WEEKLY_START), queue="periodic.weekly"
)
def weekly() -> None:
    _note_periodic_run("weekly", "periodic.weekly")


@periodic_tiger.task(schedule=cron("0 4 * * SUN"), queue="periodic.cron")
def sundays_at_four() -> None:
    _note_periodic_run("cron", "periodic.cron")


@periodic_tiger.task(schedule=three_runs, queue="periodic.custom")
def custom_scheduled() -> None:
    _note_periodic_run("custom", "periodic.custom")


@periodic_tiger.task(
    schedule=periodic_schedule(minutes=5, end_date=ENDING_AT), queue="periodic.ending"
)
def ending() -> None:
    _note_periodic_run("ending", "periodic.ending")


# --- helpers for tests ------------------------------------------------------------------------


def tasktiger_id(func: str, args: list[object] | None, kwargs: dict[str, object]) -> str:
    """TaskTiger's gen_unique_id: sha256 of json.dumps (its defaults) with sorted keys."""
    document = {"func": func, "args": args, "kwargs": kwargs}
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()


def make_tiger(backend: Backend, config: Config | None = None) -> Tiger:
    """A Tiger on ``backend`` with the (non-periodic) option tasks registered, bound for them."""
    config = config if config is not None else Config()
    # the tests also run unregistered functions of tests by name
    made = Tiger(
        backend,
        attrs.evolve(config, allowed_task_modules=config.allowed_task_modules or ("tests",)),
    )
    made.adopt(tiger)
    bind(made)
    return made


def stored(target: Tiger, task_id: str) -> list[tuple[str, TaskState]]:
    """Every (queue, state) that files ``task_id``."""
    return target.backend.find_task(task_id)


def due_at(target: Tiger, queue: str, task_id: str) -> float:
    """When a scheduled task is due (TaskNotFound if it is not scheduled)."""
    scheduled_at = Task.from_id(target, queue, TaskState.SCHEDULED, task_id).scheduled_at
    assert scheduled_at is not None
    return scheduled_at.timestamp()


# --- executors for tests -----------------------------------------------------------------------


class RecordingExecutor:
    """Runs jobs in process (SyncExecutor) and records them; ``on_job`` sees each one first,
    when the worker waits for it (after the worker has started its heartbeat)."""

    side_by_side = False

    def __init__(self, on_job: Callable[[Job], None] | None = None) -> None:
        self.jobs: list[Job] = []
        self._on_job = on_job
        self._inner = SyncExecutor()

    def bind(self, settings: ExecutorSettings) -> None:
        self._inner.bind(settings)

    def start(self, job: Job, run: RunJob) -> Running:
        return Deferred(lambda: self.run_job(job, run))

    def run_job(self, job: Job, run: RunJob) -> Outcome:
        self.jobs.append(job)
        if self._on_job is not None:
            self._on_job(job)
        outcome = self._inner.start(job, run).wait(None)
        assert outcome is not None
        return outcome

    def close(self) -> None:
        self._inner.close()


@attrs.define
class Deferred:
    """A job run when waited for (as SyncExecutor does), by a stub executor."""

    _run: Callable[[], Outcome]

    def wait(self, timeout: float | None) -> Outcome:
        return self._run()


class HeartbeatingExecutor(RecordingExecutor):
    """Before running a job, lets ``seconds`` pass on the ManualClock in heartbeat-interval
    steps, beating the worker's heartbeats after each step (as a long task's worker would), then
    calls ``probe`` (while the job is still active), then runs the job. Run workers with it
    through ``run_worker``, which wires it to the worker's heartbeats."""

    def __init__(self, clock: ManualClock, seconds: float, probe: Callable[[Job], None]) -> None:
        super().__init__()
        self._clock = clock
        self._seconds = seconds
        self._probe = probe
        self.heartbeats: Heartbeats | None = None

    def run_worker(self, tiger_: Tiger, max_workers_per_queue: int | None = None) -> None:
        """``tiger_.run_worker(executor=self, once=True, ...)``, beating through it."""
        worker = Worker(tiger_, executor=self, max_workers_per_queue=max_workers_per_queue)
        self.heartbeats = worker.heartbeats
        worker.run(once=True)

    def run_job(self, job: Job, run: RunJob) -> Outcome:
        heartbeats = self.heartbeats
        assert heartbeats is not None, "run the worker with HeartbeatingExecutor.run_worker"
        elapsed = 0.0
        while elapsed < self._seconds:
            self._clock.advance(heartbeats.interval)
            elapsed += heartbeats.interval
            heartbeats.beat_now()
        self._probe(job)
        return super().run_job(job, run)
