"""Executors run claimed tasks and report an Outcome; they never touch storage.

``SyncExecutor`` runs tasks in the worker process. ``ForkExecutor`` (the default on Redis) forks
one child per task or batch, enforces the hard timeout by killing it and heartbeats from the
parent while it runs; the child reports its outcome through a pipe and never writes to storage.
"""

from __future__ import annotations

import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from types import FrameType
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import attrs
import structlog

from typedtiger._context import running
from typedtiger._outcome import Failed, Outcome, Succeeded
from typedtiger._sync_only import sync_only
from typedtiger.clock import Clock
from typedtiger.exceptions import JobTimeoutException, RetryException, TaskImportError
from typedtiger.serialization import JOB_TIMEOUT_NAME

if TYPE_CHECKING:
    from typedtiger.runner import BaseRunner
    from typedtiger.task import Task

__all__ = [
    "ConcurrentExecutor",
    "Executor",
    "Failed",
    "ForkExecutor",
    "Job",
    "Outcome",
    "RunningJob",
    "Succeeded",
    "SyncExecutor",
    "run_job",
]

_log = structlog.get_logger("typedtiger.executor")


@attrs.frozen(kw_only=True)
class Job:
    """One unit of work: a single task, or a batch of one ``batch=True`` function.

    ``func`` None: the function is resolved from ``serialized_func`` by ``resolve`` where the
    job runs (a forked child imports its module, so that a module that hangs or exits on import
    costs this job, not the worker). Such a job has one task (run as a batch of one if the
    function turns out to be a batch function), or several with ``batch`` when an earlier job
    showed it is one; its outcome's ``batch_function`` says what the import showed.
    """

    queue: str
    tasks: tuple[Task, ...]
    func: Callable[..., object] | None
    serialized_func: str
    batch: bool
    hard_timeout: float
    runner: BaseRunner
    context_managers: tuple[Callable[[], AbstractContextManager[object]], ...] = ()
    store_traceback: bool = True
    clock: Clock
    resolve: Callable[[str], tuple[Callable[..., object], bool]] | None = None


class Executor(Protocol):
    """Runs a Job and reports how it ended. Never raises for a failing task."""

    def execute(
        self, job: Job, heartbeat: Callable[[], None], heartbeat_interval: float
    ) -> Outcome:
        """Run ``job``, calling ``heartbeat`` every ``heartbeat_interval`` seconds meanwhile."""
        ...

    def close(self) -> None:
        """Release what the executor holds (e.g. reap exiting children); called at shutdown."""
        ...


class RunningJob(Protocol):
    """A job started by a ConcurrentExecutor."""

    def wait(self, heartbeat: Callable[[], None], heartbeat_interval: float) -> Outcome:
        """Block until the job ends, calling ``heartbeat`` meanwhile; never raises for it."""
        ...


@runtime_checkable
class ConcurrentExecutor(Executor, Protocol):
    """An executor that can run several jobs at once (``Worker(concurrency=N)``)."""

    def start(self, job: Job) -> RunningJob:
        """Start ``job`` and return at once (called from the worker's main thread)."""
        ...


def _class_name(cls: type) -> str:
    if cls is JobTimeoutException:
        return JOB_TIMEOUT_NAME
    return f"{cls.__module__}:{cls.__qualname__}"


def failed_from_exception(
    exc: BaseException, time_started: float, time_failed: float, store_traceback: bool
) -> Failed:
    """The Failed outcome describing ``exc``."""
    names = tuple(_class_name(cls) for cls in type(exc).__mro__)
    shown: BaseException = exc
    retry = isinstance(exc, RetryException)
    if isinstance(exc, RetryException) and exc.original_traceback and exc.__context__ is not None:
        shown = exc.__context__
    return Failed(
        time_started=time_started,
        time_failed=time_failed,
        exception_name=names[0],
        exception_mro=names,
        message=str(exc),
        traceback="".join(traceback.format_exception(shown)) if store_traceback else None,
        retry_requested=retry,
        retry_method=exc.method if isinstance(exc, RetryException) else None,
        log_error=exc.log_error if isinstance(exc, RetryException) else True,
    )


def timeout_failure(time_started: float, time_failed: float, hard_timeout: float) -> Failed:
    """The Failed outcome of a task stopped at its hard timeout."""
    return failed_from_exception(
        JobTimeoutException(f"the task exceeded its hard timeout of {hard_timeout:g} s"),
        time_started,
        time_failed,
        store_traceback=False,
    )


def run_job(job: Job) -> Outcome:
    """Run ``job`` in this process (inside its context managers) and describe how it ended."""
    started = job.clock.now()
    task_ids = [task.id for task in job.tasks]
    learned: bool | None = None  # what the import here showed, for the worker
    try:
        func, batch = _function_of(job)
        learned = batch if job.func is None else None
        with ExitStack() as stack:
            for factory in job.context_managers:
                stack.enter_context(factory())
            stack.enter_context(running(job.tasks, batch, job.serialized_func))
            func = sync_only(func, job.serialized_func)
            if batch:
                job.runner.run_batch_tasks(job.tasks, func, job.hard_timeout)
            else:
                job.runner.run_single_task(job.tasks[0], func, job.hard_timeout)
    except (Exception, SystemExit) as exc:
        _log.debug("task raised", task_ids=task_ids, exception=type(exc).__name__)
        failed = failed_from_exception(exc, started, job.clock.now(), job.store_traceback)
        return failed if learned is None else attrs.evolve(failed, batch_function=learned)
    return Succeeded(time_started=started, time_finished=job.clock.now(), batch_function=learned)


def _function_of(job: Job) -> tuple[Callable[..., object], bool]:
    """The job's function and whether it runs as a batch (importing it if the job says so)."""
    if job.func is not None:
        return job.func, job.batch
    if job.resolve is None:
        raise ValueError("a job whose function is resolved where it runs needs resolve")
    func, batch = job.resolve(job.serialized_func)
    if len(job.tasks) > 1 and not batch:  # (the worker batched it as it ran before)
        raise TaskImportError(f"{job.serialized_func!r} is no longer a batch function")
    return func, batch


#: The hard timeout armed now, if any: what ``_on_alarm`` reports.
_armed: list[float] = []


def _on_alarm(_signum: int, _frame: FrameType | None) -> None:
    if _armed:
        raise JobTimeoutException(f"the task exceeded its hard timeout of {_armed[0]:g} s")


@contextmanager
def _hard_timeout_alarm(seconds: float) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield  # signals only reach the main thread: no hard timeout here
        return
    # The handler stays installed between jobs (it raises only while a timeout is armed): two
    # sigaction calls less per job. A task that installed its own is overridden at the next.
    if signal.getsignal(signal.SIGALRM) is not _on_alarm:
        signal.signal(signal.SIGALRM, _on_alarm)
    _armed[:] = [seconds]
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        _armed.clear()


class _Heartbeats:
    """One long-lived thread that calls the current job's heartbeat every interval.

    Starting a thread per task would cost more than a short task itself.
    """

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._beat: Callable[[], None] | None = None
        self._interval = 0.0
        self._next = 0.0
        self._thread: threading.Thread | None = None
        #: How long the idle thread waits (None: until told): it wakes at least once per
        #: interval, so a job's start need not wake it (a thread switch on the task's path).
        self._idle_wait: float | None = None

    @contextmanager
    def during(self, heartbeat: Callable[[], None], interval: float) -> Iterator[None]:
        """Call ``heartbeat`` every ``interval`` seconds while the block runs."""
        with self._condition:
            self._beat, self._interval = heartbeat, interval
            self._next = time.monotonic() + interval
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="typedtiger-heartbeat", daemon=True
                )
                self._thread.start()
            if self._idle_wait is None or self._idle_wait > interval:
                self._condition.notify()  # else it wakes by itself before the first beat
        try:
            yield
        finally:
            with self._condition:
                self._beat = None

    def _run(self) -> None:
        while True:
            with self._condition:
                while self._beat is None or time.monotonic() < self._next:
                    if self._beat is None:
                        timeout = self._idle_wait = self._interval or None
                    else:
                        timeout = self._next - time.monotonic()
                    self._condition.wait(timeout)
                beat = self._beat
                self._next = time.monotonic() + self._interval
            try:
                beat()
            except Exception:
                _log.exception("heartbeat failed")


class SyncExecutor:
    """Runs tasks in the worker process itself: no fork, no isolation.

    The hard timeout is a SIGALRM that raises JobTimeoutException in the task: it works only
    when the worker runs in the main thread, and cannot interrupt code blocked in C (a task that
    holds the GIL in a C call, or ignores the exception, runs on). A task that crashes the
    process takes the worker with it; its task is requeued when its heartbeat expires.
    """

    def __init__(self) -> None:
        self._heartbeats = _Heartbeats()

    def close(self) -> None:
        """Nothing to release (the heartbeat thread is a daemon and idles between tasks)."""

    def execute(
        self, job: Job, heartbeat: Callable[[], None], heartbeat_interval: float
    ) -> Outcome:
        started = job.clock.now()
        try:
            with (
                self._heartbeats.during(heartbeat, heartbeat_interval),
                _hard_timeout_alarm(job.hard_timeout),
            ):
                return run_job(job)
        except JobTimeoutException:  # the alarm fired after the task returned, before its reset
            return timeout_failure(started, job.clock.now(), job.hard_timeout)


from typedtiger._fork import ForkExecutor  # noqa: E402  (_fork builds on the definitions above)
