"""PreforkExecutor: a pool of long-lived children, forked from the worker, each running jobs one
at a time; the parent hands them Jobs and reads their Outcomes through pipes, as JSON.

The child's side is in ``prefork_child`` (``process`` forks and ends processes).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from typing import Final

import structlog

from typedtiger.exceptions import ChildProcessDied
from typedtiger.serialization import JOB_TIMEOUT_NAME
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
from typedtiger.worker.prefork_child import LINE_END, fork_pool_child, parse_report
from typedtiger.worker.process import WatchedChild, exit_reason, kill_group, reap, write_all

__all__ = ["PreforkExecutor", "PreforkedJob"]

_log = structlog.get_logger("typedtiger.executor")

#: Without a pidfd, how often the parent checks whether a busy child is still there.
_EXIT_CHECK: Final = 0.2
#: How often ``close`` looks again at children told to exit.
_REAP_CHECK: Final = 0.01


class PreforkExecutor:
    """Runs jobs in a pool of long-lived child processes forked from the worker.

    Process model:

    - Up to N children (N: the worker's concurrency; ``start`` never has more jobs running), each
      forked from the worker when a job finds no idle child (so the first ones at the first
      jobs), with the same setup as ForkExecutor's (``process.fork_process``): a session of its
      own, dies with the worker (``PR_SET_PDEATHSIG``), SIGTERM/SIGINT left to the worker, the
      worker's storage connections (``close_inherited``) and the executor's other pipes closed.
    - A child runs one job at a time: it reads the Job as JSON from its pipe, runs it with the
      ``run`` it was forked with under the hard-timeout alarm, and writes the Outcome back as JSON
      with its resident set size. ``run`` must be the same for every job (the worker passes
      ``Resolver.run_job``); ``start`` refuses another.
    - A child is replaced (told to exit by closing its pipe, then reaped; killed if it is still
      there ``kill_grace`` seconds later) after ``max_tasks_per_child`` jobs (None, the default:
      no limit), once its resident set passes ``max_memory_per_child`` bytes after a job (None,
      the default: no limit), and after a job its hard-timeout alarm interrupted (the task
      stopped at an arbitrary point; its module state may be half-changed).
    - Hard timeout: the alarm raises JobTimeoutException in the task after ``hard_timeout``
      seconds; a child that has not reported ``kill_grace`` seconds later is SIGKILLed (with its
      process group) and replaced, and the task fails with JobTimeoutException. Other children
      go on.
    - A child that dies mid-job (``os._exit``, a signal, the OOM killer) fails that job with
      ``ChildProcessDied`` naming its exit code or signal, and is replaced by the next ``start``.
    - ``close`` tells every idle child to exit and reaps it (the worker drains its jobs first).

    Not isolated between the jobs a child runs one after the other: module state (globals,
    caches, monkeypatches), memory a task kept, threads and descriptors it left open. Jobs that
    run at once are in different processes.
    """

    side_by_side = True

    def __init__(
        self,
        *,
        max_tasks_per_child: int | None = None,
        max_memory_per_child: int | None = None,
        kill_grace: float | None = None,
    ) -> None:
        if max_tasks_per_child is not None and max_tasks_per_child < 1:
            raise ValueError(f"max_tasks_per_child must be >= 1, not {max_tasks_per_child!r}")
        if max_memory_per_child is not None and max_memory_per_child < 1:
            raise ValueError(
                f"max_memory_per_child must be >= 1 byte, not {max_memory_per_child!r}"
            )
        self.max_tasks_per_child = max_tasks_per_child
        self.max_memory_per_child = max_memory_per_child
        self._kill_grace_given = kill_grace is not None
        self._kill_grace = check_kill_grace(
            DEFAULT_KILL_GRACE if kill_grace is None else kill_grace
        )
        self._settings = ExecutorSettings(kill_grace=self._kill_grace)
        self._run: RunJob | None = None
        self._lock = threading.Lock()
        self._idle: list[PoolChild] = []
        #: Every child not yet told to exit (idle or busy): their descriptors.
        self._children: set[PoolChild] = set()
        #: Children told to exit: (pid, since when).
        self._exiting: list[tuple[int, float]] = []
        self._closed = False

    @property
    def kill_grace(self) -> float:
        """Seconds between the in-task SIGALRM and the parent's SIGKILL."""
        return self._kill_grace

    def __repr__(self) -> str:
        return (
            f"PreforkExecutor(max_tasks_per_child={self.max_tasks_per_child!r}, "
            f"max_memory_per_child={self.max_memory_per_child!r}, "
            f"kill_grace={self._kill_grace:g})"
        )

    def bind(self, settings: ExecutorSettings) -> None:
        """Take the worker's clock, what its children close first, and its kill grace unless
        one was given to the constructor."""
        if not self._kill_grace_given:
            self._kill_grace = check_kill_grace(settings.kill_grace)
        self._settings = settings

    def pids(self) -> list[int]:
        """The pids of the pool's children (idle or busy), for tests and diagnostics."""
        with self._lock:
            return sorted(child.pid for child in self._children)

    def start(self, job: Job, run: RunJob) -> PreforkedJob:
        """Hand ``job`` to an idle child, forking one if none is; return at once.

        Call from the thread that owns the worker's state (children are forked from it).
        """
        if self._run is None:
            self._run = run
        elif run != self._run:
            raise ValueError(
                "PreforkExecutor runs every job with the RunJob its children were forked with; "
                "start was given another"
            )
        self._reap_exiting(block=False)
        data = encode_job(job).encode("utf-8") + LINE_END
        child = self._idle_child()
        if child is not None:
            try:
                write_all(child.job_fd, data)
            except OSError:  # it died after the check: the job goes to a new child
                self.discard(child, kill=True)
                child = None
        if child is None:
            child = self._fork(run)
            with contextlib.suppress(OSError):  # if it died already, wait reports it
                write_all(child.job_fd, data)
        deadline = time.monotonic() + job.hard_timeout + self._kill_grace
        return PreforkedJob(self, child, job, self._settings.now(), deadline)

    def _idle_child(self) -> PoolChild | None:
        while True:
            with self._lock:
                if not self._idle:
                    return None
                child = self._idle.pop()
            if child.alive():
                return child
            _log.warning("idle pool child died", pid=child.pid, reason=exit_reason(child.status))
            self.discard(child, kill=False)

    def _fork(self, run: RunJob) -> PoolChild:
        warm()  # the codec's hooks, built once here rather than in every child
        job_read, job_write = os.pipe()
        report_read, report_write = os.pipe()
        with self._lock:
            held = [job_write, report_read]
            for other in self._children:
                held += other.fds()
        try:
            pid = fork_pool_child(
                run,
                self._settings.now,
                job_read,
                report_write,
                held,
                self._settings.close_inherited,
            )
        except BaseException:
            os.close(job_write)
            os.close(report_read)
            raise
        finally:
            os.close(job_read)
            os.close(report_write)
        child = PoolChild(pid, job_write, report_read)
        with self._lock:
            self._children.add(child)
        _log.debug("pool child forked", pid=pid)
        return child

    def finished(self, child: PoolChild, outcome: Outcome, resident: int) -> None:
        """``child`` reported ``outcome``: back to the pool, or replaced."""
        child.jobs += 1
        why = None
        if self.max_tasks_per_child is not None and child.jobs >= self.max_tasks_per_child:
            why = "max_tasks_per_child"
        elif self.max_memory_per_child is not None and resident > self.max_memory_per_child:
            why = "max_memory_per_child"
        elif getattr(outcome, "exception_name", None) == JOB_TIMEOUT_NAME:
            why = "hard timeout"
        with self._lock:
            keep = why is None and not self._closed
            if keep:
                self._idle.append(child)
        if not keep:
            if why is not None:
                _log.info(
                    "replacing pool child", pid=child.pid, reason=why, jobs=child.jobs,
                    resident_bytes=resident,
                )  # fmt: skip
            self._retire(child)

    def _retire(self, child: PoolChild) -> None:
        """Tell ``child`` to exit (EOF on its job pipe); it is reaped later."""
        with self._lock:
            self._children.discard(child)
            self._exiting.append((child.pid, time.monotonic()))
        child.close_fds()

    def discard(self, child: PoolChild, kill: bool) -> None:
        """``child`` is dead (or, with ``kill``, is killed now) and reaped; never reused."""
        with self._lock:
            self._children.discard(child)
        try:
            if kill:
                child.kill()
            else:
                child.reap(block=True)
        finally:
            child.close_fds()

    def close(self) -> None:
        """Tell every idle child to exit and reap it (killed past ``kill_grace``); a child
        still busy (the worker drains its jobs before this) is killed."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
            busy = self._children - set(idle)
        for child in idle:
            self._retire(child)
        for child in busy:
            child.kill_group()
        self._reap_exiting(block=True)

    def _reap_exiting(self, block: bool) -> None:
        while True:
            with self._lock:
                exiting, self._exiting = self._exiting, []
            still = []
            for pid, since in exiting:
                late = time.monotonic() - since > self._kill_grace
                try:
                    if reap(pid, block=False) is not None:
                        continue
                except ChildProcessError:
                    continue
                if late:
                    kill_group(pid)
                    with contextlib.suppress(ChildProcessError):
                        reap(pid, block=True)
                else:
                    still.append((pid, since))
            with self._lock:
                self._exiting.extend(still)
            if not (block and still):
                return
            time.sleep(_REAP_CHECK)

    def now(self) -> float:
        """The worker's clock (the times of outcomes made here)."""
        return self._settings.now()


class PoolChild(WatchedChild):
    """The parent's handle on one pool child: its pipes, its pidfd, how many jobs it ran."""

    def __init__(self, pid: int, job_fd: int, report_fd: int) -> None:
        super().__init__(pid, report_fd)
        self.job_fd = job_fd
        self.jobs = 0

    def fds(self) -> list[int]:
        """The descriptors the parent holds for this child."""
        fds = [self.job_fd, self.report_fd]
        return fds if self.pidfd is None else [*fds, self.pidfd]

    def alive(self) -> bool:
        """Whether it has not exited (if it has, it is reaped)."""
        return not self.reap(block=False)

    def report(self, timeout: float) -> bytes | bool | None:
        """Its report line (bytes), False once it has exited without one (it is reaped), or
        None if neither happened within ``timeout`` seconds."""
        if self.pidfd is None:
            timeout = min(timeout, _EXIT_CHECK)
        exited = self.poll(timeout)
        line = self._line()
        if line is not None:
            return line
        if (exited or self.eof) and self.reap(block=False):
            self.drain()
            line = self._line()
            return False if line is None else line
        return None

    def _line(self) -> bytes | None:
        end = self.received.find(LINE_END)
        if end < 0:
            return None
        line, self.received = self.received[:end], self.received[end + 1 :]
        return line

    def kill_group(self) -> None:
        """SIGKILL it and its process group, unless reaped already."""
        if not self.reaped:
            kill_group(self.pid)

    def close_fds(self) -> None:
        """Close the descriptors held for it (its job pipe's EOF tells it to exit)."""
        fds, self.job_fd, self.report_fd, self.pidfd = self.fds(), -1, -1, None
        for fd in fds:
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)


class PreforkedJob:
    """A job handed to a pool child (see ``PreforkExecutor.start``)."""

    def __init__(
        self,
        executor: PreforkExecutor,
        child: PoolChild,
        job: Job,
        started: float,
        deadline: float,
    ) -> None:
        self.pid = child.pid
        self._executor = executor
        self._child = child
        self._job = job
        self._started = started
        self._deadline = deadline
        self._outcome: Outcome | None = None
        self._log = {"pid": child.pid, "queue": job.queue, "func": job.func}

    def wait(self, timeout: float | None) -> Outcome | None:
        """The outcome once the child has reported or died (then it is replaced), or None
        after ``timeout`` seconds (None: no limit). An exception raised here while waiting
        (KeyboardInterrupt...) propagates after the child has been killed and reaped."""
        if self._outcome is not None:
            return self._outcome
        until = None if timeout is None else time.monotonic() + timeout
        try:
            outcome = self._wait(until)
        except BaseException:
            self._executor.discard(self._child, kill=True)
            raise
        if outcome is not None:
            self._outcome = outcome
        return outcome

    def _wait(self, until: float | None) -> Outcome | None:
        child, job, executor = self._child, self._job, self._executor
        while True:
            now = time.monotonic()
            if now >= self._deadline:
                _log.warning(
                    "hard timeout: killing pool child",
                    hard_timeout=job.hard_timeout,
                    kill_grace=executor.kill_grace,
                    **self._log,
                )
                executor.discard(child, kill=True)
                return timeout_failure(self._started, executor.now(), job.hard_timeout)
            end = self._deadline if until is None else min(self._deadline, until)
            report = child.report(max(0.0, end - now))
            if isinstance(report, bytes):
                return self._reported(report)
            if report is False:
                reason = exit_reason(child.status)
                _log.error("pool child died", reason=reason, **self._log)
                executor.discard(child, kill=False)
                return failed_from_exception(
                    ChildProcessDied(reason), self._started, executor.now(), store_traceback=False
                )
            if until is not None and time.monotonic() >= until:
                return None

    def _reported(self, line: bytes) -> Outcome:
        child, executor = self._child, self._executor
        try:
            resident, data = parse_report(line)
            outcome = decode_outcome(data)
        except Exception as exc:
            _log.error("pool child sent an undecodable outcome", error=str(exc), **self._log)
            executor.discard(child, kill=True)
            return failed_from_exception(
                ChildProcessDied("the task's process sent an undecodable outcome"),
                self._started,
                executor.now(),
                store_traceback=False,
            )
        if child.alive():
            executor.finished(child, outcome, resident)
        else:  # it reported, then died (between jobs)
            executor.discard(child, kill=False)
        return outcome
