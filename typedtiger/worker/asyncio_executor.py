"""AsyncioExecutor: async tasks awaited side by side on one event loop, in a child of the worker.

The child's side is in ``asyncio_child``; this is the parent's: it sends jobs to the loop's
process, one thread of its own reads the outcomes back and watches the hard timeouts.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import threading
import time
from collections.abc import Callable
from typing import Final

import structlog

from typedtiger.exceptions import ChildProcessDied
from typedtiger.worker.asyncio_child import LINE_END, parse_report, serve
from typedtiger.worker.executor import (
    DEFAULT_KILL_GRACE,
    ExecutorSettings,
    RunJob,
    check_kill_grace,
)
from typedtiger.worker.job import (
    Job,
    Outcome,
    decode_outcome,
    encode_job,
    failed_from_exception,
    timeout_failure,
    warm,
)
from typedtiger.worker.process import (
    WatchedChild,
    exit_reason,
    fork_process,
    kill_group,
    write_all,
)

__all__ = ["AsyncioExecutor", "AsyncioJob"]

_log = structlog.get_logger("typedtiger.executor")

#: Longest wait of the watch thread between two looks at the clock and the child.
_WATCH_TICK: Final = 0.5


class AsyncioExecutor:
    """Runs ``async def`` tasks side by side on one event loop, in one child of the worker.

    Process model:

    - One child process, forked from the worker at the first job (set up like ForkExecutor's:
      a session of its own, dies with the worker, SIGTERM/SIGINT left to the worker, the
      worker's storage connections closed), runs an asyncio event loop. Every job the worker
      starts (up to its concurrency, ``-c N``) is sent to it through a pipe and awaited there as
      an asyncio task, through the worker's ``Resolver.arun_job`` (``ExecutorSettings.run_async``)
      and the runner's ``arun_single_task`` / ``arun_batch_tasks``.
    - Async tasks only: a plain function fails with TypeError (it would block every other task
      on the loop; serve its queue with a fork or prefork worker).
    - Hard timeout: the coroutine is cancelled at ``hard_timeout`` (``asyncio.timeout``) and the
      task fails with JobTimeoutException. A coroutine that blocks the loop (sync code inside)
      cannot be cancelled: when a job is still running ``kill_grace`` seconds after its hard
      timeout, a watchdog kills the loop's process (and its process group); that job fails with
      JobTimeoutException, the others running on the loop with ChildProcessDied (retried under
      their retry policies), and the next job forks a new loop.
    - A loop process that dies fails its running jobs with ChildProcessDied.
    - ``close`` tells the loop to exit (EOF on its pipe) once the worker has drained its jobs,
      and reaps it (killed past ``kill_grace``).
    """

    side_by_side = True

    def __init__(self, *, kill_grace: float | None = None) -> None:
        self._kill_grace_given = kill_grace is not None
        self._kill_grace = check_kill_grace(
            DEFAULT_KILL_GRACE if kill_grace is None else kill_grace
        )
        self._settings = ExecutorSettings(kill_grace=self._kill_grace)
        self._loop: LoopProcess | None = None
        self._sequence = itertools.count(1)

    def __repr__(self) -> str:
        return f"AsyncioExecutor(kill_grace={self._kill_grace:g})"

    @property
    def kill_grace(self) -> float:
        """Seconds between a job's hard timeout and the watchdog's kill of a blocked loop."""
        return self._kill_grace

    def bind(self, settings: ExecutorSettings) -> None:
        """Take the worker's ``run_async``, clock, what the child closes first, and its kill
        grace unless one was given to the constructor."""
        if not self._kill_grace_given:
            self._kill_grace = check_kill_grace(settings.kill_grace)
        self._settings = settings

    def pid(self) -> int | None:
        """The loop process's pid (None: none was forked yet), for tests and diagnostics."""
        loop = self._loop
        return None if loop is None else loop.pid

    def start(self, job: Job, run: RunJob) -> AsyncioJob:
        """Send ``job`` to the loop (forking it first if none runs); return at once. Call from
        the worker's main thread. ``run`` is not used: the loop awaits jobs with the worker's
        ``run_async``."""
        started = AsyncioJob(job, self._settings.now(), self._kill_grace)
        data = encode_job(job).encode("utf-8") + LINE_END
        sequence = next(self._sequence)
        loop = self._loop
        if loop is None or not loop.take(sequence, started):
            if loop is not None:
                loop.close_job_pipe()  # (only this thread writes to it and closes it)
            loop = self._loop = self._fork()
            loop.take(sequence, started)
        with contextlib.suppress(OSError):  # it died: its watch thread fails the job
            write_all(loop.job_fd, str(sequence).encode() + b" " + data)
        return started

    def _fork(self) -> LoopProcess:
        run_async = self._settings.run_async
        if run_async is None:
            raise RuntimeError("AsyncioExecutor runs jobs for a worker: bind it to one first")
        warm()  # the codec's hooks, built once here rather than in the child
        job_read, job_write = os.pipe()
        report_read, report_write = os.pipe()
        try:
            main = functools.partial(serve, run_async, self._settings.now, job_read, report_write)
            pid = fork_process(main, [job_write, report_read], self._settings.close_inherited)
        except BaseException:
            os.close(job_write)
            os.close(report_read)
            raise
        finally:
            os.close(job_read)
            os.close(report_write)
        _log.debug("event loop process forked", pid=pid)
        loop = LoopProcess(pid, job_write, report_read, self._settings.now)
        threading.Thread(target=loop.watch, name="typedtiger-asyncio", daemon=True).start()
        return loop

    def close(self) -> None:
        """Tell the loop to exit once its jobs are done and reap it (killed past
        ``kill_grace``)."""
        loop, self._loop = self._loop, None
        if loop is not None:
            loop.finish(self._kill_grace)


class AsyncioJob:
    """A job sent to the loop (see ``AsyncioExecutor.start``)."""

    def __init__(self, job: Job, started: float, kill_grace: float) -> None:
        self.job = job
        self.started = started
        #: When the watchdog kills the loop if the job still runs (time.monotonic).
        self.deadline = time.monotonic() + job.hard_timeout + kill_grace
        self._outcome: Outcome | None = None
        self._ended = threading.Event()
        self._lock = threading.Lock()
        self._callback: Callable[[Outcome], None] | None = None

    def end(self, outcome: Outcome) -> None:
        """Its outcome is known (the first one given counts): to the callback, if any."""
        with self._lock:
            if self._ended.is_set():
                return
            self._outcome = outcome
            self._ended.set()
            callback = self._callback
        if callback is not None:
            callback(outcome)

    def when_ended(self, callback: Callable[[Outcome], None]) -> None:
        """Hand the outcome to ``callback`` once it is known (now, if it is)."""
        with self._lock:
            outcome = self._outcome
            if outcome is None:
                self._callback = callback
        if outcome is not None:
            callback(outcome)

    def wait(self, timeout: float | None) -> Outcome | None:
        """The outcome once the loop has reported it or the job was stopped, or None after
        ``timeout`` seconds (None: no limit)."""
        self._ended.wait(timeout)
        return self._outcome


class LoopProcess(WatchedChild):
    """The parent's handle on the loop's process: its pipes, the jobs it runs, its watch."""

    def __init__(self, pid: int, job_fd: int, report_fd: int, now: Callable[[], float]) -> None:
        super().__init__(pid, report_fd)
        self.job_fd = job_fd
        self._now = now
        self._lock = threading.Lock()
        self._jobs: dict[int, AsyncioJob] = {}
        self._open = True  # False once it was killed or died: it takes no more jobs

    def take(self, sequence: int, job: AsyncioJob) -> bool:
        """Count ``job`` as running here; False if this process takes no more jobs."""
        with self._lock:
            if self._open:
                self._jobs[sequence] = job
            return self._open

    def watch(self) -> None:
        """The watch thread: hand each reported outcome to its job, kill the loop when a job
        passes its deadline, fail what runs when it dies; return once it is gone."""
        while not self.reaped:
            with self._lock:
                deadlines = [job.deadline for job in self._jobs.values()]
            wait = min([_WATCH_TICK, *(d - time.monotonic() for d in deadlines)])
            exited = self.poll(max(0.0, wait))
            self._deliver()
            overdue = self._overdue()
            if overdue is not None:
                self._kill_for(overdue)
            elif (exited or self.eof) and self.reap(block=False):
                self.drain()
                self._deliver()
                self._died(exit_reason(self.status))
        self._close_fds()

    def _deliver(self) -> None:
        while (end := self.received.find(LINE_END)) >= 0:
            line, self.received = self.received[:end], self.received[end + 1 :]
            try:
                sequence, data = parse_report(line)
                outcome = decode_outcome(data)
            except Exception as exc:  # never expected: the child encoded it
                _log.error("event loop sent an undecodable outcome", error=str(exc))
                continue
            with self._lock:
                job = self._jobs.pop(sequence, None)
            if job is not None:
                job.end(outcome)

    def _overdue(self) -> AsyncioJob | None:
        now = time.monotonic()
        with self._lock:
            return next((job for job in self._jobs.values() if now >= job.deadline), None)

    def _kill_for(self, overdue: AsyncioJob) -> None:
        job = overdue.job
        _log.warning(
            "hard timeout: the event loop is blocked, killing its process",
            pid=self.pid, queue=job.queue, func=job.func, hard_timeout=job.hard_timeout,
        )  # fmt: skip
        with self._lock:
            self._open = False
        kill_group(self.pid)
        self.reap(block=True)
        overdue.end(timeout_failure(overdue.started, self._now(), job.hard_timeout))
        self._died(
            f"the event loop's process was killed: {job.func} blocked it past its hard timeout "
            f"of {job.hard_timeout:g} s"
        )

    def _died(self, reason: str) -> None:
        """Fail every job still counted here with ChildProcessDied(``reason``)."""
        with self._lock:
            self._open = False
            jobs, self._jobs = list(self._jobs.values()), {}
        if jobs:
            _log.error("event loop process ended with jobs running", pid=self.pid, reason=reason)
        now = self._now()
        for job in jobs:
            job.end(failed_from_exception(ChildProcessDied(reason), job.started, now, False))

    def finish(self, kill_grace: float) -> None:
        """Close its job pipe (it exits once its jobs are done); kill it if it is still there
        ``kill_grace`` seconds later, and wait for the watch thread to see it go."""
        with self._lock:
            self._open = False
        self.close_job_pipe()
        until = time.monotonic() + kill_grace
        while not self.reaped and time.monotonic() < until:
            time.sleep(0.01)
        if not self.reaped:
            kill_group(self.pid)
            self.reap(block=True)

    def close_job_pipe(self) -> None:
        """Close the job pipe (EOF: the loop exits once its jobs are done). The thread that
        starts jobs is the only one to write to it and to close it."""
        fd, self.job_fd = self.job_fd, -1
        if fd >= 0:
            os.close(fd)

    def _close_fds(self) -> None:
        """The watch thread's own descriptors (the report pipe, the pidfd), once it is reaped."""
        self.close_pidfd()
        os.close(self.report_fd)
