"""ForkExecutor: each job runs in a forked child; the parent watches it, heartbeats and reports.

``typedtiger.executor`` imports this module at its end and re-exports ``ForkExecutor``. The names
this module needs from ``executor`` are therefore imported inside functions, so that importing
either module first works.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import gc
import math
import os
import select
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Final, NoReturn, Protocol

import attrs
import structlog

from typedtiger._outcome import Outcome
from typedtiger.exceptions import ChildProcessDied
from typedtiger.serialization import decode_outcome, encode_outcome

if TYPE_CHECKING:
    from typedtiger.clock import Clock
    from typedtiger.executor import Job

__all__ = ["ForkExecutor", "ForkedJob", "JobCodec"]

_log = structlog.get_logger("typedtiger.executor")

_PR_SET_PDEATHSIG = 1
_READ_SIZE = 1 << 16
#: Without a pidfd, how often the parent checks whether the child exited while the pipe is open
#: (a grandchild may hold its write end) and once the pipe has reached EOF.
_EXIT_CHECK_OPEN = 0.5
#: Signals a worker may have Python handlers for: blocked across the fork (blocking every
#: signal would cost a round of enum conversions per task for nothing).
_GUARDED_SIGNALS: Final = frozenset(
    {
        signal.SIGTERM,
        signal.SIGINT,
        signal.SIGALRM,
        signal.SIGHUP,
        signal.SIGQUIT,
        signal.SIGUSR1,
        signal.SIGUSR2,
        signal.SIGCHLD,
    }
)
_EXIT_CHECK_EOF = 0.01

_Prctl = Callable[..., int]


class ForkExecutor:
    """Runs each job in a child process of its own, forked from the worker.

    Process model:

    - One child per job (a single task or a batch), forked with ``os.fork``; the worker's
      imported modules and registrations are simply inherited.
    - The child never outlives its worker: on Linux it asks for ``PR_SET_PDEATHSIG`` = SIGKILL
      right after the fork (and exits if the worker is already gone). It takes SIGTERM's default
      action and ignores SIGINT: a Ctrl-C sent to the process group stops the worker (which then
      finishes the current task), not the task itself.
    - Hard timeout: in the child a SIGALRM raises ``JobTimeoutException`` inside the task after
      ``hard_timeout`` seconds, so the recorded traceback shows where the task was. A task that
      does not stop (it ignores the signal or is stuck in C) is SIGKILLed by the parent
      ``kill_grace`` seconds later and reported as a timeout without a traceback.
    - The child reports its outcome to the parent through a pipe, as JSON (never pickle), and
      then exits; it never writes to storage. The parent calls ``heartbeat`` every
      ``heartbeat_interval`` seconds while it waits, and always reaps the child.
    - A child that exits or dies without reporting (``os._exit``, a segfault, the OOM killer)
      becomes a ``ChildProcessDied`` failure naming its exit code or signal.
    """

    def __init__(self, *, kill_grace: float = 5.0) -> None:
        if not kill_grace >= 0 or math.isinf(kill_grace):
            raise ValueError(f"kill_grace must be a finite number >= 0, not {kill_grace!r}")
        self._kill_grace = float(kill_grace)
        #: Children that reported their outcome and are exiting: (pid, when it reported).
        self._exiting: list[tuple[int, float]] = []
        self._lock = threading.Lock()
        self._wire: JobCodec | None = None
        self._spare: _Spare | None = None
        self._last_sent = b""

    @property
    def kill_grace(self) -> float:
        """Seconds between the in-task SIGALRM and the parent's SIGKILL."""
        return self._kill_grace

    def __repr__(self) -> str:
        return f"ForkExecutor(kill_grace={self._kill_grace:g})"

    def close(self) -> None:
        """Let the spare child go and reap every child still exiting (the worker calls this
        when it stops)."""
        spare, self._spare = self._spare, None
        if spare is not None:
            spare.discard()
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
                reaped, _status = os.waitpid(pid, 0 if block and not late else os.WNOHANG)
            except ChildProcessError:
                continue
            if reaped:
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

    def use_spares(self, wire: JobCodec) -> None:
        """Keep one child forked ahead of the next job, waiting for it (the Worker does this).

        The fork then happens while the previous job runs or the worker waits, off the path
        from claim to start. The worker sends each job through a pipe with ``wire.encode``;
        the spare rebuilds it with ``wire.decode`` and runs it like any child.
        """
        self._wire = wire

    def start(self, job: Job) -> ForkedJob:
        """Start the child that runs ``job`` and return at once; ``wait`` on the result.

        Call from the thread that owns the worker's state (children are forked from it); the
        ``wait`` may happen in another thread.
        """
        self._reap_exiting(block=False)
        wire = self._wire
        if wire is None:
            pid, read_fd = self._fork(functools.partial(_run_in_child, job), ())
            return self._started(job, pid, read_fd)
        data = wire.encode(job)
        self._last_sent = data
        spare, self._spare = self._spare, None
        if spare is None:
            spare = self._fork_spare(wire)
        try:
            _write_all(spare.job_fd, data)
        except OSError:  # the spare died (e.g. a signal sent to the worker's process group)
            spare.discard()
            spare = self._fork_spare(wire)
            try:
                _write_all(spare.job_fd, data)
            except BaseException:
                spare.discard()
                raise
        os.close(spare.job_fd)
        forked = self._started(job, spare.pid, spare.outcome_fd)
        try:
            self._spare = self._fork_spare(wire)
        except OSError as exc:  # no spare this time (too many processes?): the job runs on
            _log.warning("could not fork a spare child", error=str(exc))
        return forked

    def _started(self, job: Job, pid: int, read_fd: int) -> ForkedJob:
        deadline = time.monotonic() + job.hard_timeout + self._kill_grace
        return ForkedJob(self, job, pid, read_fd, job.clock.now(), deadline)

    def _fork_spare(self, wire: JobCodec) -> _Spare:
        job_read, job_write = os.pipe()
        try:
            pid, outcome_fd = self._fork(
                functools.partial(_run_sent_job, job_read, wire, self._last_sent), (job_write,)
            )
        except BaseException:
            os.close(job_write)
            raise
        finally:
            os.close(job_read)
        return _Spare(pid, job_write, outcome_fd)

    def _fork(
        self, run: Callable[[], Outcome | None], close_in_child: Sequence[int]
    ) -> tuple[int, int]:
        """Fork a child that calls ``run`` and reports its outcome; its pid and the read end
        of its outcome pipe."""
        prctl = _load_prctl()  # resolved before the fork: the child only calls it
        parent_pid = os.getpid()
        _flush_std_streams()  # or buffered output would be written twice, once by the child
        read_fd, write_fd = os.pipe()
        try:
            # Signals stay blocked across the fork so that no Python signal handler can run in
            # the child before it has set up its own dispositions (and raise into our caller).
            mask = signal.pthread_sigmask(signal.SIG_BLOCK, _GUARDED_SIGNALS)
            try:
                pid = os.fork()
                if pid == 0:
                    close = (read_fd, *close_in_child)
                    _child_main(run, close, write_fd, parent_pid, mask, prctl)
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        return pid, read_fd

    def _exited_later(self, pid: int) -> None:
        with self._lock:
            self._exiting.append((pid, time.monotonic()))


class JobCodec(Protocol):
    """How a job travels to a spare child: encoded in the worker, rebuilt in the child."""

    @property
    def clock(self) -> Clock:
        """The jobs' clock (it times a job that cannot be rebuilt)."""
        ...

    def encode(self, job: Job) -> bytes: ...

    def decode(self, data: bytes) -> Job: ...


@attrs.frozen
class _Spare:
    """A child forked ahead, blocked reading its job from ``job_fd``."""

    pid: int
    job_fd: int  # the write end of its job pipe
    outcome_fd: int  # the read end of its outcome pipe

    def discard(self) -> None:
        """Kill and reap it; close its pipes (the job pipe may already be closed)."""
        _kill_and_reap(self.pid)
        with contextlib.suppress(OSError):
            os.close(self.job_fd)
        os.close(self.outcome_fd)


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

    def wait(self, heartbeat: Callable[[], None], heartbeat_interval: float) -> Outcome:
        """Wait for the outcome, calling ``heartbeat`` meanwhile; the child is dealt with."""
        from typedtiger.executor import failed_from_exception, timeout_failure

        job, deadline = self._job, self._deadline
        watch: _ChildWatch | None = None
        try:
            watch = _ChildWatch(self.pid, self._read_fd)
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
            if watch is not None:
                watch.close()
            else:
                _kill_and_reap(self.pid)
            os.close(self._read_fd)


class _ChildWatch:
    """The parent's view of one child: its pipe, its pidfd when there is one, its exit status."""

    def __init__(self, pid: int, read_fd: int) -> None:
        self.pid = pid
        self.status: int | None = None  # the wait status, once reaped (None: unknown)
        self._read_fd = read_fd
        self._chunks: list[bytes] = []
        self._eof = False
        self._reaped = False
        self._poller = select.poll()
        self._poller.register(read_fd, select.POLLIN)
        self._pidfd = _open_pidfd(pid)
        if self._pidfd is not None:
            self._poller.register(self._pidfd, select.POLLIN)

    def wait(
        self,
        deadline: float,
        heartbeat: Callable[[], None],
        interval: float,
        log: dict[str, object],
        until_exit: bool = False,
    ) -> bool:
        """Read the pipe until the child has reported (EOF after its outcome) or exited (True),
        or ``deadline`` passes (False). With ``until_exit``, wait for the exit itself."""
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
            timeout = min(next_beat, deadline) - now
            if self._pidfd is None:
                timeout = min(timeout, _EXIT_CHECK_EOF if self._eof else _EXIT_CHECK_OPEN)
            exited = self._pidfd is None
            for fd, _event in self._poller.poll(math.ceil(timeout * 1000)):
                if fd == self._read_fd:
                    self._read()
                else:
                    exited = True
            if exited and self._reap(os.WNOHANG):
                self._drain()
                return True
            if self._eof and self._chunks and not until_exit:
                return True

    def detach(self) -> int | None:
        """Stop watching a child that has reported; its pid if it still has to be reaped."""
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None
        if self._reaped:
            return None
        self._reaped = True  # from now on the executor reaps it
        return self.pid

    def kill(self) -> None:
        """SIGKILL the child if it has not been reaped yet, and reap it."""
        if self._reaped:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        self._reap(0)

    def close(self) -> None:
        """Kill and reap the child if needed; release the pidfd (the pipe is the caller's)."""
        try:
            self.kill()
        finally:
            if self._pidfd is not None:
                os.close(self._pidfd)
                self._pidfd = None

    def data(self) -> bytes:
        return b"".join(self._chunks)

    def reason(self) -> str:
        """How the child ended, in words."""
        status = self.status
        if status is None:
            return "the task's process ended, but its exit status was collected elsewhere"
        if os.WIFSIGNALED(status):
            number = os.WTERMSIG(status)
            return f"the task's process was killed by signal {_signal_label(number)}"
        if os.WIFEXITED(status):
            return f"the task's process exited with code {os.WEXITSTATUS(status)}"
        return f"the task's process ended with wait status {status}"

    def _read(self) -> None:
        chunk = os.read(self._read_fd, _READ_SIZE)
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

    def _reap(self, options: int) -> bool:
        try:
            pid, status = os.waitpid(self.pid, options)
        except ChildProcessError:  # reaped by someone else (SIGCHLD ignored, waitpid(-1)...)
            self._reaped = True
            return True
        if pid == 0:
            return False
        self._reaped = True
        self.status = status
        return True


def _child_main(
    run: Callable[[], Outcome | None],
    close_fds: Sequence[int],
    write_fd: int,
    parent_pid: int,
    mask: set[int | signal.Signals],
    prctl: _Prctl | None,
) -> NoReturn:
    """The child's whole life: ``run``, send its outcome (if any), exit. Never returns."""
    code = 1
    try:
        if prctl is not None:
            prctl(
                ctypes.c_int(_PR_SET_PDEATHSIG),
                ctypes.c_ulong(signal.SIGKILL),
                ctypes.c_ulong(0),
                ctypes.c_ulong(0),
                ctypes.c_ulong(0),
            )
        if os.getppid() == parent_pid:  # else the worker died before PDEATHSIG was set
            # The child's garbage collections skip what it inherited: scanning those objects
            # would copy (fault in) the worker's pages for nothing.
            gc.freeze()
            for fd in close_fds:
                os.close(fd)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            with contextlib.suppress(ValueError):
                signal.set_wakeup_fd(-1)  # the worker's wakeup fd is not ours to write to
            signal.pthread_sigmask(signal.SIG_SETMASK, mask - {signal.SIGALRM, signal.SIGTERM})
            outcome = run()
            if outcome is not None:
                _write_all(write_fd, encode_outcome(outcome).encode("utf-8"))
            os.close(write_fd)  # EOF now: the parent need not wait for the exit to finish
            code = 0
    except BaseException:
        with contextlib.suppress(BaseException):
            _log.exception("child failed to run its job or to report")
    finally:
        try:
            _flush_std_streams()
        finally:
            os._exit(code)


def _run_sent_job(job_fd: int, wire: JobCodec, rehearsal: bytes) -> Outcome | None:
    """A spare child's job: read it from the worker, rebuild it and run it (None: the worker
    closed the pipe without sending one, it no longer needs this spare).

    While it waits, the spare rehearses ``rehearsal``, the job sent before: it rebuilds it and
    runs typedtiger's side of it (runner, hard-timeout alarm, outcome) around a function that
    does nothing, so that the worker's pages all this writes to are copied now rather than when
    its own job is due. The task itself never runs, nor application code (context managers, a
    custom runner class).
    """
    from typedtiger.executor import failed_from_exception

    if rehearsal:
        with contextlib.suppress(Exception):
            _rehearse(wire.decode(rehearsal))
    data = _read_all(job_fd)
    os.close(job_fd)
    if not data:
        return None
    try:
        job = wire.decode(data)
    except Exception as exc:  # e.g. its function's module fails to import here
        now = wire.clock.now()
        return failed_from_exception(exc, now, now, store_traceback=True)
    return _run_in_child(job)


def _rehearse(job: Job) -> None:
    from typedtiger.runner import DefaultRunner

    if type(job.runner) is DefaultRunner:
        encode_outcome(_run_in_child(attrs.evolve(job, func=_do_nothing, context_managers=())))


def _do_nothing(*_args: object, **_kwargs: object) -> None:
    pass


def _run_in_child(job: Job) -> Outcome:
    from typedtiger.executor import _hard_timeout_alarm, failed_from_exception, run_job

    started = job.clock.now()
    try:
        with _hard_timeout_alarm(job.hard_timeout):
            return run_job(job)
    except BaseException as exc:  # the alarm fired just outside run_job, or a BaseException
        return failed_from_exception(exc, started, job.clock.now(), job.store_traceback)


def _kill_and_reap(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, _READ_SIZE):
        chunks.append(chunk)
    return b"".join(chunks)


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


@functools.cache
def _load_prctl() -> _Prctl | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl: _Prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return prctl


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


def _flush_std_streams() -> None:
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            with contextlib.suppress(Exception):
                stream.flush()
