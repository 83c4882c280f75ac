"""The executor protocol: how the worker hands a Job to whatever runs it.

The worker calls ``bind`` once with its settings, then ``start(job, run)`` for each job and
``wait`` on what it returns; ``close`` when it stops. ``run`` is the worker's way to run a job
in the current process (``resolve.Resolver.run_job``): an executor calls it where the job is to
run (the worker's process, a forked child...) under the job's hard timeout, and never gets a
backend, a Tiger or a heartbeat. The worker owns heartbeats and records outcomes.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Final, Protocol, runtime_checkable

import attrs

from typedtiger.exceptions import JobTimeoutException
from typedtiger.worker.job import Job, Outcome, timeout_failure

__all__ = [
    "DEFAULT_KILL_GRACE",
    "Executor",
    "ExecutorSettings",
    "Finished",
    "Notifying",
    "RunJob",
    "RunJobAsync",
    "Running",
    "check_kill_grace",
    "hard_timeout_alarm",
    "run_under_alarm",
]

#: Runs a job in the current process and describes how it ended (never raises for the task).
RunJob = Callable[[Job], Outcome]
#: Runs a job on the current thread's event loop, awaiting its coroutine (``RunJob``'s twin).
RunJobAsync = Callable[[Job], Awaitable[Outcome]]


#: Config's default hard_timeout_kill_grace: what an executor used alone (not bound to a
#: worker) waits between a hard timeout's alarm and the kill.
DEFAULT_KILL_GRACE: Final = 2.0


def check_kill_grace(seconds: float) -> float:
    """``seconds`` as a kill grace; ValueError unless finite and >= 0."""
    if not seconds >= 0 or math.isinf(seconds):
        raise ValueError(f"kill_grace must be a finite number >= 0, not {seconds!r}")
    return float(seconds)


def _nothing() -> None:
    pass


@attrs.frozen(kw_only=True)
class ExecutorSettings:
    """What a worker tells its executor before the first job (``Executor.bind``)."""

    #: Config.hard_timeout_kill_grace: seconds between a hard timeout's alarm in the task and
    #: its process being killed (an executor given its own at construction keeps it).
    kill_grace: float = DEFAULT_KILL_GRACE
    #: What a process forked to run a job calls first: let go of the worker's storage
    #: connections, which a task must not use (an executor that runs jobs in the worker's own
    #: process never calls it).
    close_inherited: Callable[[], None] = _nothing
    #: The worker's clock (epoch seconds), for the times of outcomes an executor makes itself.
    now: Callable[[], float] = time.time
    #: The worker's way to run a job on an event loop (``Resolver.arun_job``), for an executor
    #: that awaits async tasks (None: the executor was not bound to a worker).
    run_async: RunJobAsync | None = None


class Running(Protocol):
    """A job started by an executor."""

    def wait(self, timeout: float | None) -> Outcome | None:
        """The job's outcome once it has ended (its process dealt with), or None if it has not
        within ``timeout`` seconds (None: wait for it). Never raises for the task; an exception
        raised here while waiting (KeyboardInterrupt...) propagates after the job was stopped.
        An executor that runs the job in the waiting thread returns its outcome in any case."""
        ...


@runtime_checkable
class Notifying(Running, Protocol):
    """A Running that can hand its outcome to a callback when it ends, so that nobody needs to
    block in ``wait`` for it (the worker then spares a thread per job)."""

    def when_ended(self, callback: Callable[[Outcome], None]) -> None:
        """Call ``callback(outcome)`` once the job has ended, from whatever thread learns it
        (at once, in this thread, if it has ended already). Called at most once per job."""
        ...


class Executor(Protocol):
    """Runs Jobs and reports their Outcomes; never touches storage."""

    #: Whether several jobs may run at once (``Worker(concurrency=N)`` needs it).
    side_by_side: bool

    def bind(self, settings: ExecutorSettings) -> None:
        """Take the worker's settings; called once, before the first ``start``."""
        ...

    def start(self, job: Job, run: RunJob) -> Running:
        """Start ``job`` (``run`` runs it where it is to run); called from the worker's main
        thread. Wait on the result, from this thread or another."""
        ...

    def close(self) -> None:
        """Release what the executor holds (e.g. reap exiting children); called at shutdown."""
        ...


@attrs.frozen
class Finished:
    """A Running whose outcome is known already."""

    outcome: Outcome

    def wait(self, timeout: float | None) -> Outcome:
        """The outcome."""
        return self.outcome


#: The hard timeout armed now, if any: what ``_on_alarm`` reports.
_armed: list[float] = []


def _on_alarm(_signum: int, _frame: FrameType | None) -> None:
    if _armed:
        raise JobTimeoutException(f"the task exceeded its hard timeout of {_armed[0]:g} s")


@contextmanager
def hard_timeout_alarm(seconds: float) -> Iterator[None]:
    """Raise JobTimeoutException in this thread after ``seconds`` (a SIGALRM: only in the main
    thread; elsewhere no timeout is enforced here)."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signals only reach the main thread: no hard timeout here
        return
    # The handler stays installed between jobs (it raises only while a timeout is armed), so
    # that arming one costs no sigaction calls. A task that installed its own is overridden at
    # the next job.
    if signal.getsignal(signal.SIGALRM) is not _on_alarm:
        signal.signal(signal.SIGALRM, _on_alarm)
    _armed[:] = [seconds]
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        _armed.clear()


def run_under_alarm(job: Job, run: RunJob, now: Callable[[], float]) -> Outcome:
    """``run(job)`` under the job's hard-timeout alarm. Raises only what ``run`` lets through
    (KeyboardInterrupt...): a task's own exceptions are in its outcome."""
    started = now()
    try:
        with hard_timeout_alarm(job.hard_timeout):
            return run(job)
    except JobTimeoutException:  # the alarm rang after the task returned, before its reset
        return timeout_failure(started, now(), job.hard_timeout)
