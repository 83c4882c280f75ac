"""ForkExecutor: each job runs in a forked child; the parent watches it, heartbeats and reports.

``typedtiger.executor`` imports this module at its end and re-exports ``ForkExecutor``. The names
this module needs from ``executor`` are therefore imported inside functions, so that importing
either module first works. The children's side is in ``_child``.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import select
import signal
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar, Final

import structlog

from typedtiger._child import (
    READ_SIZE,
    fork_job_child,
    kill_group,
    reap,
    run_in_child,
)
from typedtiger._outcome import Outcome
from typedtiger.exceptions import ChildProcessDied
from typedtiger.serialization import decode_outcome

if TYPE_CHECKING:
    from typedtiger.executor import Job

__all__ = ["ForkExecutor", "ForkedJob"]

_log = structlog.get_logger("typedtiger.executor")

#: Without a pidfd, how often the parent checks whether the child exited while the pipe is open
#: (a grandchild may hold its write end) and once the pipe has reached EOF.
_EXIT_CHECK_OPEN = 0.5
_EXIT_CHECK_EOF = 0.01
#: Without a worker's Config (an executor used alone): Config's own default.
_DEFAULT_KILL_GRACE: Final = 2.0


def _check_grace(seconds: float) -> float:
    if not seconds >= 0 or math.isinf(seconds):
        raise ValueError(f"kill_grace must be a finite number >= 0, not {seconds!r}")
    return float(seconds)


class ForkExecutor:
    """Runs each job in a child process of its own, forked from the worker.

    Process model:

    - One child per job (a single task or a batch), forked with ``os.fork`` by this process
      when the job starts, as TaskTiger does: a copy of the worker as it is at that moment
      (its imported modules, registrations and configuration), never reused for another job,
      and nothing of another job runs in it.
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
      here, ``kill_grace`` is the worker's ``Config.hard_timeout_kill_grace`` (2 s by default).
    - The child reports its outcome to the parent through a pipe, as JSON (never pickle), and
      then exits; it never writes to storage. The parent calls ``heartbeat`` every
      ``heartbeat_interval`` seconds while it waits, and every child is reaped.
    - A child that exits or dies without reporting (``os._exit``, a segfault, the OOM killer)
      becomes a ``ChildProcessDied`` failure naming its exit code or signal.
    """

    def __init__(self, *, kill_grace: float | None = None) -> None:
        self._kill_grace_given = kill_grace is not None
        self._kill_grace = _check_grace(_DEFAULT_KILL_GRACE if kill_grace is None else kill_grace)
        #: Children that reported their outcome and are exiting: (pid, when it reported).
        self._exiting: list[tuple[int, float]] = []
        self._lock = threading.Lock()
        #: What a forked process calls first to let go of the worker's storage connections.
        self._cleanup: Callable[[], None] | None = None
        #: Jobs started and not yet waited for (their pipes and pidfds stay here).
        self._running: set[ForkedJob] = set()

    @property
    def kill_grace(self) -> float:
        """Seconds between the in-task SIGALRM and the parent's SIGKILL."""
        return self._kill_grace

    def use_config_grace(self, seconds: float) -> None:
        """Take the worker's ``Config.hard_timeout_kill_grace``, unless one was given to the
        constructor (the Worker calls this)."""
        if not self._kill_grace_given:
            self._kill_grace = _check_grace(seconds)

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

    def execute(
        self, job: Job, heartbeat: Callable[[], None], heartbeat_interval: float
    ) -> Outcome:
        """Run ``job`` in a forked child, calling ``heartbeat`` meanwhile; never raises for it.

        Exceptions raised in this process while waiting (KeyboardInterrupt...) propagate after
        the child has been killed and reaped.
        """
        if not heartbeat_interval > 0:
            raise ValueError(f"heartbeat_interval must be > 0, not {heartbeat_interval!r}")
        return self.start(job).wait(heartbeat, heartbeat_interval)

    def close_in_children(self, cleanup: Callable[[], None]) -> None:
        """Have every child this executor forks call ``cleanup`` first: the Worker passes its
        storage's ``close_inherited``, so that no task can write to (or read from) the
        worker's connections. The executor's own pipes
        and pidfds are closed there in any case."""
        self._cleanup = cleanup

    def start(self, job: Job) -> ForkedJob:
        """Start the child that runs ``job`` and return at once; ``wait`` on the result.

        Call from the thread that owns the worker's state (children are forked from it); the
        ``wait`` may happen in another thread.
        """
        self._reap_exiting(block=False)
        return self._fork_here(job)

    def _fork_here(self, job: Job) -> ForkedJob:
        read_fd, write_fd = os.pipe()
        held = (read_fd, *self._held_fds())
        try:
            run = functools.partial(run_in_child, job)
            pid = fork_job_child(run, write_fd, held, self._cleanup)
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        return self._started(job, pid, read_fd)

    def _held_fds(self) -> list[int]:
        """The descriptors this executor holds: no child it forks may keep them (a task
        could read another job's outcome)."""
        fds: list[int] = []
        with self._lock:
            running = list(self._running)
        for job in running:
            fds += job.fds()
        return fds

    def _started(self, job: Job, pid: int, read_fd: int) -> ForkedJob:
        deadline = time.monotonic() + job.hard_timeout + self._kill_grace
        forked = ForkedJob(self, job, pid, read_fd, job.clock.now(), deadline)
        with self._lock:
            self._running.add(forked)
        return forked

    def _waited(self, job: ForkedJob) -> None:
        with self._lock:
            self._running.discard(job)

    def _exited_later(self, pid: int) -> None:
        with self._lock:
            self._exiting.append((pid, time.monotonic()))


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
        self._watch: _Watch | None = None

    def fds(self) -> list[int]:
        """The descriptors held for this job: its outcome pipe, its child's pidfd."""
        watch = self._watch
        pidfd = None if watch is None else watch.pidfd
        return [self._read_fd] if pidfd is None else [self._read_fd, pidfd]

    def wait(self, heartbeat: Callable[[], None], heartbeat_interval: float) -> Outcome:
        """Wait for the outcome, calling ``heartbeat`` meanwhile; the child is dealt with."""
        from typedtiger.executor import failed_from_exception, timeout_failure

        job, deadline = self._job, self._deadline
        watch: _Watch | None = None
        try:
            watch = _ChildWatch(self.pid, self._read_fd)
            self._watch = watch
            # (binding a logger costs more than a short task: context goes in at each call)
            log = {"pid": self.pid, "queue": job.queue, "func": job.serialized_func}
            if not watch.wait(deadline, heartbeat, heartbeat_interval, log):
                _log.warning(
                    "hard timeout: killing child",
                    hard_timeout=job.hard_timeout,
                    kill_grace=self._executor.kill_grace,
                    **log,
                )
                watch.kill()
                return timeout_failure(self._started, job.clock.now(), job.hard_timeout)
            outcome = _decode(watch.data(), log)
            if outcome is not None:
                if watch.status is not None and watch.status != 0:
                    _log.warning(
                        "child reported, then exited abnormally", reason=watch.reason(), **log
                    )
                exiting = watch.detach()
                if exiting is not None:
                    self._executor._exited_later(exiting)
                return outcome
            if not watch.wait(deadline, heartbeat, heartbeat_interval, log, until_exit=True):
                watch.kill()
            reason = watch.reason()
            _log.error("child died", reason=reason, **log)
            return failed_from_exception(
                ChildProcessDied(reason), self._started, job.clock.now(), store_traceback=False
            )
        finally:
            # On an exception (KeyboardInterrupt...), the child must not outlive this call.
            self._executor._waited(self)
            if watch is not None:
                watch.close()
            else:
                _kill_and_reap(self.pid)
            os.close(self._read_fd)


class _Watch:
    """The parent's view of one child: its outcome pipe and, once known, its exit status."""

    #: What ``reason`` says when the child is gone but its exit status is unknown.
    unknown_status: ClassVar[str]

    def __init__(self, pid: int, read_fd: int) -> None:
        self.pid = pid
        self.status: int | None = None  # the wait status, once known (None: unknown)
        self.pidfd: int | None = None  # a pidfd of the child, while there is one
        self._read_fd = read_fd
        self._poller = select.poll()
        self._poller.register(read_fd, select.POLLIN)

    def wait(
        self,
        deadline: float,
        heartbeat: Callable[[], None],
        interval: float,
        log: dict[str, object],
        until_exit: bool = False,
    ) -> bool:
        """Read the pipe until the child has reported or exited (True), or ``deadline``
        passes (False). With ``until_exit``, wait for the exit itself."""
        next_beat = time.monotonic() + interval
        while True:
            now = time.monotonic()
            if now >= deadline:
                return False
            if now >= next_beat:
                _call_heartbeat(heartbeat, log)
                next_beat += interval
                now = time.monotonic()
                if next_beat <= now:  # the heartbeat itself took longer than the interval
                    next_beat = now + interval
                continue  # re-check the deadline
            if self._poll(min(next_beat, deadline) - now, until_exit):
                return True

    def reason(self) -> str:
        """How the child ended, in words."""
        status = self.status
        if status is None:
            return self.unknown_status
        if os.WIFSIGNALED(status):
            number = os.WTERMSIG(status)
            return f"the task's process was killed by signal {_signal_label(number)}"
        if os.WIFEXITED(status):
            return f"the task's process exited with code {os.WEXITSTATUS(status)}"
        return f"the task's process ended with wait status {status}"

    def _poll(self, timeout: float, until_exit: bool) -> bool:
        """Wait up to ``timeout`` seconds for the pipe or the exit; whether ``wait`` is done."""
        raise NotImplementedError

    def data(self) -> bytes:
        """What the child reported (empty if nothing complete)."""
        raise NotImplementedError

    def detach(self) -> int | None:
        """Stop watching a child that has reported; its pid if it still has to be reaped."""
        raise NotImplementedError

    def kill(self) -> None:
        """SIGKILL the child if it is still there, and wait for its exit."""
        raise NotImplementedError

    def close(self) -> None:
        """Kill the child if needed; release what the watch holds (the pipe is the caller's)."""
        raise NotImplementedError


class _ChildWatch(_Watch):
    """A child of this process: its pipe, its pidfd when there is one; reaped here."""

    unknown_status = "the task's process ended, but its exit status was collected elsewhere"

    def __init__(self, pid: int, read_fd: int) -> None:
        super().__init__(pid, read_fd)
        self._chunks: list[bytes] = []
        self._eof = False
        self._reaped = False
        self.pidfd = _open_pidfd(pid)
        if self.pidfd is not None:
            self._poller.register(self.pidfd, select.POLLIN)

    def _poll(self, timeout: float, until_exit: bool) -> bool:
        # Done once the child has exited, or it reported (EOF after its outcome).
        if self.pidfd is None:
            timeout = min(timeout, _EXIT_CHECK_EOF if self._eof else _EXIT_CHECK_OPEN)
        exited = self.pidfd is None
        for fd, _event in self._poller.poll(math.ceil(timeout * 1000)):
            if fd == self._read_fd:
                self._read()
            else:
                exited = True
        if exited and self._reap(block=False):
            self._drain()
            return True
        return self._eof and bool(self._chunks) and not until_exit

    def detach(self) -> int | None:
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None
        if self._reaped:
            return None
        self._reaped = True  # from now on the executor reaps it
        return self.pid

    def kill(self) -> None:
        if self._reaped:
            return
        kill_group(self.pid)
        self._reap(block=True)

    def close(self) -> None:
        try:
            self.kill()
        finally:
            if self.pidfd is not None:
                os.close(self.pidfd)
                self.pidfd = None

    def data(self) -> bytes:
        return b"".join(self._chunks)

    def _read(self) -> None:
        chunk = os.read(self._read_fd, READ_SIZE)
        if chunk:
            self._chunks.append(chunk)
        else:
            self._eof = True
            self._poller.unregister(self._read_fd)

    def _drain(self) -> None:
        """Read what the exited child left in the pipe (a grandchild may keep it open)."""
        if self._eof:
            return
        os.set_blocking(self._read_fd, False)
        with contextlib.suppress(BlockingIOError):
            while not self._eof:
                self._read()

    def _reap(self, block: bool) -> bool:
        try:
            status = reap(self.pid, block)
        except ChildProcessError:  # reaped by someone else (SIGCHLD ignored, waitpid(-1)...)
            self._reaped = True
            return True
        if status is None:
            return False
        self._reaped = True
        self.status = status
        return True


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


def _call_heartbeat(heartbeat: Callable[[], None], log: dict[str, object]) -> None:
    try:
        heartbeat()
    except Exception:
        _log.exception("heartbeat failed", **log)


def _open_pidfd(pid: int) -> int | None:
    pidfd_open = getattr(os, "pidfd_open", None)
    if pidfd_open is None:
        return None
    try:
        fd: int = pidfd_open(pid)
    except OSError:  # an old kernel, or a sandbox that forbids it
        return None
    return fd


def _signal_label(number: int) -> str:
    """Like ``SIGSEGV (11)``; just the number for a signal without a name."""
    try:
        return f"{signal.Signals(number).name} ({number})"
    except ValueError:
        return str(number)
