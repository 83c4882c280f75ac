"""ForkExecutor: each job runs in a process forked for it; the parent watches it and reports.

The forked process's side is in ``child`` (and ``process`` forks and ends processes).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time

import structlog

from typedtiger.exceptions import ChildProcessDied
from typedtiger.worker.child import fork_job_process
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
    failed_from_exception,
    timeout_failure,
    warm,
)
from typedtiger.worker.process import WatchedChild, exit_reason, kill_group, reap

__all__ = ["ChildWatch", "ForkExecutor", "ForkedJob"]

_log = structlog.get_logger("typedtiger.executor")

#: Without a pidfd, how often the parent checks whether the child exited while the pipe is open
#: (a grandchild may hold its write end) and once the pipe has reached EOF.
_EXIT_CHECK_OPEN = 0.5
_EXIT_CHECK_EOF = 0.01


class ForkExecutor:
    """Runs each job in a child process of its own, forked from the worker.

    Process model:

    - One child per job (a single task or a batch), forked with ``os.fork`` by this process
      when the job starts, as TaskTiger does: a copy of the worker as it is at that moment
      (its imported modules, registrations and configuration), never reused for another job,
      and nothing of another job runs in it. The child first calls the ``close_inherited``
      the worker bound (its storage connections) and closes the executor's pipes and pidfds of
      other jobs.
    - The child never outlives its worker: on Linux it asks for ``PR_SET_PDEATHSIG`` = SIGKILL
      right after the fork (and exits if its parent is already gone). It leads a session
      (and process group) of its own: when it exits or is killed, whatever it left running
      in its group is SIGKILLed before it is reaped. SIGTERM and
      SIGINT are caught and do nothing there: a stop sent to the worker's process group or to
      every process of the service stops the worker, which lets the task finish.
    - Hard timeout: in the child a SIGALRM raises ``JobTimeoutException`` inside the task after
      ``hard_timeout`` seconds, so the recorded traceback shows where the task was. A task that
      does not stop (it ignores the signal or is stuck in C) is SIGKILLed by the parent
      ``kill_grace`` seconds later and reported as a timeout without a traceback. Unless given
      here, ``kill_grace`` is the worker's ``Config.hard_timeout_kill_grace`` (2 s by default),
      which ``bind`` brings.
    - The child reports its outcome to the parent through a pipe, as JSON (never pickle), and
      then exits; it never writes to storage. Every child is reaped.
    - A child that exits or dies without reporting (``os._exit``, a segfault, the OOM killer)
      becomes a ``ChildProcessDied`` failure naming its exit code or signal.
    """

    side_by_side = True

    def __init__(self, *, kill_grace: float | None = None) -> None:
        self._kill_grace_given = kill_grace is not None
        self._kill_grace = check_kill_grace(
            DEFAULT_KILL_GRACE if kill_grace is None else kill_grace
        )
        self._settings = ExecutorSettings(kill_grace=self._kill_grace)
        #: Children that reported their outcome and are exiting: (pid, when it reported).
        self._exiting: list[tuple[int, float]] = []
        self._lock = threading.Lock()
        #: Jobs started and not yet waited for (their pipes and pidfds stay here).
        self._running: set[ForkedJob] = set()

    @property
    def kill_grace(self) -> float:
        """Seconds between the in-task SIGALRM and the parent's SIGKILL."""
        return self._kill_grace

    def bind(self, settings: ExecutorSettings) -> None:
        """Take the worker's clock, what its children close first, and its kill grace unless
        one was given to the constructor."""
        if not self._kill_grace_given:
            self._kill_grace = check_kill_grace(settings.kill_grace)
        self._settings = settings

    def __repr__(self) -> str:
        return f"ForkExecutor(kill_grace={self._kill_grace:g})"

    def close(self) -> None:
        """Reap every child still exiting (the worker calls this when it stops)."""
        self._reap_exiting(block=True)

    def _reap_exiting(self, block: bool) -> None:
        # A child that reported is exiting; it is reaped here, off the task's critical path.
        # One still around after kill_grace (stuck in an atexit-free exit?) is killed.
        with self._lock:
            exiting, self._exiting = self._exiting, []
        still = []
        for pid, since in exiting:
            late = time.monotonic() - since > self._kill_grace
            try:
                if reap(pid, block=block and not late) is not None:
                    continue
            except ChildProcessError:
                continue
            if late:
                _kill_and_reap(pid)
            else:
                still.append((pid, since))
        with self._lock:
            self._exiting.extend(still)

    def start(self, job: Job, run: RunJob) -> ForkedJob:
        """Fork the child that runs ``job`` (calling ``run``) and return at once.

        Call from the thread that owns the worker's state (children are forked from it); the
        ``wait`` may happen in another thread.
        """
        self._reap_exiting(block=False)
        warm()  # the outcome codec's hooks, built once here rather than in every child
        now = self._settings.now
        read_fd, write_fd = os.pipe()
        held = (read_fd, *self._held_fds())
        try:
            pid = fork_job_process(job, run, now, write_fd, held, self._settings.close_inherited)
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        deadline = time.monotonic() + job.hard_timeout + self._kill_grace
        forked = ForkedJob(self, job, pid, read_fd, now(), deadline)
        with self._lock:
            self._running.add(forked)
        return forked

    def _held_fds(self) -> list[int]:
        """The descriptors this executor holds: no child it forks may keep them (a task
        could read another job's outcome)."""
        with self._lock:
            running = list(self._running)
        fds: list[int] = []
        for job in running:
            fds += job.fds()
        return fds

    def forget(self, job: ForkedJob) -> None:
        """``job`` is over: its descriptors are closed."""
        with self._lock:
            self._running.discard(job)

    def exited_later(self, pid: int) -> None:
        """Child ``pid`` reported and is exiting: reap it later (kill it if it takes too
        long)."""
        with self._lock:
            self._exiting.append((pid, time.monotonic()))

    def now(self) -> float:
        """The worker's clock (the times of outcomes made here)."""
        return self._settings.now()


class ForkedJob:
    """A job running in its child process (see ``ForkExecutor.start``)."""

    def __init__(
        self,
        executor: ForkExecutor,
        job: Job,
        pid: int,
        read_fd: int,
        started: float,
        deadline: float,
    ) -> None:
        self.pid = pid
        self._executor = executor
        self._job = job
        self._read_fd = read_fd
        self._started = started
        self._deadline = deadline
        self._watch = ChildWatch(pid, read_fd)  # (its pidfd is held from now on, see fds)
        #: The child closed its pipe without a readable outcome: waiting for its exit.
        self._reported_nothing = False
        self._outcome: Outcome | None = None
        self._log = {"pid": pid, "queue": job.queue, "func": job.func}

    def fds(self) -> list[int]:
        """The descriptors held for this job: its outcome pipe, its child's pidfd."""
        pidfd = self._watch.pidfd
        return [self._read_fd] if pidfd is None else [self._read_fd, pidfd]

    def wait(self, timeout: float | None) -> Outcome | None:
        """The outcome once the child has reported or died (then it is dealt with), or None
        after ``timeout`` seconds (None: no limit). An exception raised here while waiting
        (KeyboardInterrupt...) propagates after the child has been killed and reaped."""
        if self._outcome is not None:
            return self._outcome
        until = None if timeout is None else time.monotonic() + timeout
        try:
            outcome = self._wait(self._watch, until)
        except BaseException:
            self._finish()
            raise
        if outcome is not None:
            self._outcome = outcome
            self._finish()
        return outcome

    def _wait(self, watch: ChildWatch, until: float | None) -> Outcome | None:
        job, log, now = self._job, self._log, self._executor.now
        if not self._reported_nothing:
            done = watch.wait(self._deadline, until)
            if done is None:
                return None
            if not done:
                _log.warning(
                    "hard timeout: killing child",
                    hard_timeout=job.hard_timeout,
                    kill_grace=self._executor.kill_grace,
                    **log,
                )
                watch.kill()
                return timeout_failure(self._started, now(), job.hard_timeout)
            outcome = _decode(watch.received, log)
            if outcome is not None:
                if watch.status is not None and watch.status != 0:
                    _log.warning(
                        "child reported, then exited abnormally", reason=watch.reason(), **log
                    )
                exiting = watch.detach()
                if exiting is not None:
                    self._executor.exited_later(exiting)
                return outcome
            self._reported_nothing = True
        done = watch.wait(self._deadline, until, until_exit=True)
        if done is None:
            return None
        if not done:
            watch.kill()
        reason = watch.reason()
        _log.error("child died", reason=reason, **log)
        return failed_from_exception(
            ChildProcessDied(reason), self._started, now(), store_traceback=False
        )

    def _finish(self) -> None:
        """The child must not outlive the wait: kill it if needed, release its descriptors."""
        self._executor.forget(self)
        try:
            self._watch.close()
        finally:
            os.close(self._read_fd)


class ChildWatch(WatchedChild):
    """The parent's view of one job's child: its outcome pipe, its pidfd when there is one, and
    its exit status once known; the child is reaped here."""

    def wait(self, deadline: float, until: float | None, until_exit: bool = False) -> bool | None:
        """Read the pipe until the child has reported or exited (True), ``deadline`` passes
        (False) or ``until`` does (None). With ``until_exit``, wait for the exit itself."""
        while True:
            now = time.monotonic()
            if now >= deadline:
                return False
            end = deadline if until is None else min(deadline, until)
            if self._poll(max(0.0, end - now), until_exit):
                return True
            if until is not None and time.monotonic() >= until:
                return None

    def reason(self) -> str:
        """How the child ended, in words."""
        return exit_reason(self.status)

    def _poll(self, timeout: float, until_exit: bool) -> bool:
        # Done once the child has exited, or it reported (EOF after its outcome).
        if self.pidfd is None:
            timeout = min(timeout, _EXIT_CHECK_EOF if self.eof else _EXIT_CHECK_OPEN)
        if self.poll(timeout) and self.reap(block=False):
            self.drain()
            return True
        return self.eof and bool(self.received) and not until_exit

    def detach(self) -> int | None:
        """Stop watching a child that has reported; its pid if it still has to be reaped."""
        self.close_pidfd()
        if self.reaped:
            return None
        self.reaped = True  # from now on the executor reaps it
        return self.pid

    def close(self) -> None:
        """Kill the child if needed; release its pidfd (the pipe is the caller's)."""
        try:
            self.kill()
        finally:
            self.close_pidfd()


def _kill_and_reap(pid: int) -> None:
    kill_group(pid)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def _decode(data: bytes, log: dict[str, object]) -> Outcome | None:
    if not data:
        return None
    try:
        return decode_outcome(data)
    except Exception as exc:
        _log.error("child sent an undecodable outcome", error=str(exc), size=len(data), **log)
        return None
