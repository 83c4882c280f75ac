"""Forking a job's process and ending it: what the ForkExecutor's parent side needs of processes.

``fork_process`` forks a process that sets itself up as a task's process (session of its own,
dies with its parent, signals left to the worker) and runs a function; ``kill_group`` and
``reap`` end it and what it left running.
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
from collections.abc import Callable, Sequence
from typing import Final, NoReturn

import structlog

__all__ = [
    "READ_SIZE",
    "WatchedChild",
    "exit_reason",
    "flush_std_streams",
    "fork_process",
    "kill_group",
    "open_pidfd",
    "reap",
    "write_all",
]

_log = structlog.get_logger("typedtiger.executor")

#: How much of a child's report pipe is read at once.
READ_SIZE: Final = 1 << 16

_PR_SET_PDEATHSIG = 1
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

_Prctl = Callable[..., int]


def fork_process(
    main: Callable[[], int],
    close_in_child: Sequence[int],
    cleanup: Callable[[], None],
) -> int:
    """Fork a task's process, which sets itself up, calls ``main`` and exits with what it
    returns; its pid.

    The child leads a session (and process group) of its own, which ``kill_group`` kills with
    whatever the task left running in it. It dies with this process (``PR_SET_PDEATHSIG`` on
    Linux; it exits at once if this process is already gone), closes ``close_in_child``, takes
    SIGCHLD's default action and leaves SIGTERM and SIGINT to the worker: a stop sent to every
    process of a service (systemd's default KillMode, an init in a container) or a Ctrl-C must
    not end the task the worker is letting finish. It catches them with a handler that does
    nothing rather than ignoring them, as an ignored signal would stay ignored in the programs a
    task runs.

    ``close_in_child`` are descriptors of this process's own (pipes, pidfds): the child closes
    each one that is still the same file when it starts (another thread may have closed one
    meanwhile, and its number been reused). ``cleanup`` then lets go of what else the child must
    not touch (the worker's storage connections), before ``main``.
    """
    prctl = _load_prctl()  # resolved before the fork: the child only calls it
    close = _identified(close_in_child)
    parent_pid = os.getpid()
    flush_std_streams()  # or buffered output would be written twice, once by the child
    # Signals stay blocked across the fork so that no Python signal handler can run in the
    # child before it has set up its own dispositions (and raise into our caller).
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, _GUARDED_SIGNALS)
    try:
        pid = os.fork()
        if pid == 0:
            _process_main(main, close, cleanup, parent_pid, mask, prctl)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    return pid


#: A descriptor and the file it is (st_dev, st_ino).
_Identified = tuple[int, int, int]


def _identified(fds: Sequence[int]) -> list[_Identified]:
    identified = []
    for fd in fds:
        with contextlib.suppress(OSError):  # closed already: nothing to close in the child
            stat = os.fstat(fd)
            identified.append((fd, stat.st_dev, stat.st_ino))
    return identified


def _close_identified(fds: Sequence[_Identified]) -> None:
    for fd, dev, ino in fds:
        with contextlib.suppress(OSError):
            stat = os.fstat(fd)
            if (stat.st_dev, stat.st_ino) == (dev, ino):
                os.close(fd)


def _process_main(
    main: Callable[[], int],
    close_fds: Sequence[_Identified],
    cleanup: Callable[[], None],
    parent_pid: int,
    mask: set[int | signal.Signals],
    prctl: _Prctl | None,
) -> NoReturn:
    """A forked process's whole life: set up, ``main``, exit. Never returns."""
    code = 1
    try:
        os.setsid()  # first: until then a kill_group reaches only the child itself
        if prctl is not None:
            prctl(
                ctypes.c_int(_PR_SET_PDEATHSIG),
                ctypes.c_ulong(signal.SIGKILL),
                ctypes.c_ulong(0),
                ctypes.c_ulong(0),
                ctypes.c_ulong(0),
            )
        if os.getppid() == parent_pid:  # else the parent died before PDEATHSIG was set
            # The child's garbage collections skip what it inherited: scanning those objects
            # would copy (fault in) the parent's pages for nothing.
            gc.freeze()
            _close_identified(close_fds)
            try:
                cleanup()
            except Exception:  # the task runs all the same: say so
                _log.exception("child could not close what it inherited")
            signal.signal(signal.SIGTERM, _leave_to_the_worker)
            signal.signal(signal.SIGINT, _leave_to_the_worker)
            if signal.getsignal(signal.SIGCHLD) is not signal.SIG_DFL:
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            with contextlib.suppress(ValueError):
                signal.set_wakeup_fd(-1)  # the parent's wakeup fd is not ours to write to
            signal.pthread_sigmask(signal.SIG_SETMASK, mask - {signal.SIGALRM, signal.SIGTERM})
            code = main()
    except BaseException:
        with contextlib.suppress(BaseException):
            _log.exception("child failed to run its job or to report")
    finally:
        try:
            flush_std_streams()
        finally:
            os._exit(code)


def _leave_to_the_worker(_signum: int, _frame: object) -> None:
    """SIGTERM's and SIGINT's handler in a child: the worker stops, its task finishes."""


def kill_group(pid: int) -> None:
    """SIGKILL the process group child ``pid`` leads (see ``fork_process``), else ``pid``.

    Call only while ``pid`` is not reaped (running, or a zombie): until then no other group
    can have its id.
    """
    try:
        os.killpg(pid, signal.SIGKILL)
    # (no such group: it has not made its session yet; refused: the group holds a setuid
    # program a task ran) the child itself, then
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def reap(pid: int, block: bool) -> int | None:
    """Reap child ``pid`` once it has exited, SIGKILLing what is left in its process group
    first (a task's leftover processes): its wait status, or None while it runs (without
    ``block``). ChildProcessError if it is not there to reap."""
    flags = os.WEXITED | os.WNOWAIT | (0 if block else os.WNOHANG)
    if os.waitid(os.P_PID, pid, flags) is None:
        return None
    _kill_leftovers(pid)
    return os.waitpid(pid, 0)[1]


def _kill_leftovers(pid: int) -> None:
    # The exited leader, not yet reaped, still holds its group's id.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd``."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def flush_std_streams() -> None:
    """Flush sys.stdout and sys.stderr (errors ignored)."""
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            with contextlib.suppress(Exception):
                stream.flush()


@functools.cache
def _load_prctl() -> _Prctl | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl: _Prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return prctl


def exit_reason(status: int | None) -> str:
    """How a task's process ended, in words, from its wait status (None: unknown)."""
    if status is None:
        return "the task's process ended, but its exit status was collected elsewhere"
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        return f"the task's process was killed by signal {_signal_label(number)}"
    if os.WIFEXITED(status):
        return f"the task's process exited with code {os.WEXITSTATUS(status)}"
    return f"the task's process ended with wait status {status}"


def _signal_label(number: int) -> str:
    """Like ``SIGSEGV (11)``; just the number for a signal without a name."""
    try:
        return f"{signal.Signals(number).name} ({number})"
    except ValueError:
        return str(number)


def open_pidfd(pid: int) -> int | None:
    """A pidfd of child ``pid`` (readable once it exits), or None where there is none."""
    pidfd_open = getattr(os, "pidfd_open", None)
    if pidfd_open is None:
        return None
    try:
        fd: int = pidfd_open(pid)
    except OSError:  # an old kernel, or a sandbox that forbids it
        return None
    return fd


class WatchedChild:
    """The parent's view of one child of this process: what it writes to its report pipe, its
    pidfd when the kernel gives one (readable once it exits), and its wait status once reaped.
    The report pipe is the caller's to close; the pidfd is closed by ``close_pidfd``."""

    def __init__(self, pid: int, report_fd: int) -> None:
        self.pid = pid
        self.report_fd = report_fd
        self.status: int | None = None  # its wait status once reaped here (None: unknown)
        self.received = b""  # what it wrote and nobody took yet
        self.eof = False
        self.reaped = False
        self.pidfd = open_pidfd(pid)
        self._poller = select.poll()
        self._poller.register(report_fd, select.POLLIN)
        if self.pidfd is not None:
            self._poller.register(self.pidfd, select.POLLIN)

    def poll(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for output or the exit, reading what came; whether it
        may have exited (its pidfd is readable, or there is no pidfd to tell)."""
        exited = self.pidfd is None
        for fd, _event in self._poller.poll(math.ceil(timeout * 1000)):
            if fd == self.report_fd:
                self._read()
            else:
                exited = True
        return exited

    def drain(self) -> None:
        """Read what the exited child left in the pipe (a grandchild may keep it open)."""
        if self.eof:
            return
        os.set_blocking(self.report_fd, False)
        with contextlib.suppress(BlockingIOError):
            while not self.eof:
                self._read()

    def reap(self, block: bool) -> bool:
        """Reap it once it has exited (with ``block``, wait for that); whether it is reaped."""
        if self.reaped:
            return True
        try:
            status = reap(self.pid, block)
        except ChildProcessError:  # reaped by someone else (SIGCHLD ignored, waitpid(-1)...)
            self.reaped = True
            return True
        if status is None:
            return False
        self.reaped = True
        self.status = status
        return True

    def kill(self) -> None:
        """SIGKILL it and its process group unless it is reaped already, and reap it."""
        if not self.reaped:
            kill_group(self.pid)
        self.reap(block=True)

    def close_pidfd(self) -> None:
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None

    def _read(self) -> None:
        chunk = os.read(self.report_fd, READ_SIZE)
        if chunk:
            self.received += chunk
        else:
            self.eof = True
            self._poller.unregister(self.report_fd)
