"""The fork server: a copy of the worker, forked once, that forks the spare children for it.

Forking the worker for every task makes the worker pay for each fork twice: the fork itself
(copying the page tables of the whole process) and then a copy-on-write fault for every page
it touches while a child shares it, which with a spare child always alive is every page its
task loop touches. The server is forked from the worker once, when the first job starts, with
the worker's modules, registrations and configuration; it then forks each spare child, so the
worker forks nothing and owns its pages.

Protocol, over a Unix stream socket pair:

- worker -> server: a spawn request, the length of a rehearsal job (4 bytes, big-endian), a
  flag byte and the job's bytes, carrying two file descriptors (SCM_RIGHTS): the read end of
  the spare's job pipe and the write end of its outcome pipe. With the flag set (the first
  time the worker shows this server a job of a function), the server rebuilds the job, which
  imports its function here once rather than in every spare. It forks the spare and answers
  with its pid (4 bytes). The worker reads that answer when it hands the spare a job.
- server -> worker, through each spare's outcome pipe: when the server reaps the spare, it
  appends a NUL byte and the spare's wait status (4 bytes) after whatever the spare wrote
  there, and closes its end. A spare that reported wrote its outcome and OUTCOME_END before.
- The worker closing its end of the socket stops the server: it kills the spares left and
  exits. The server dies with the worker (``PR_SET_PDEATHSIG``) and its spares with it.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import select
import signal
import socket
import struct
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Final

import structlog

from typedtiger._child import fork_job_child, fork_process, reap_any, run_sent_job

if TYPE_CHECKING:
    from typedtiger._child import JobCodec

__all__ = ["STATUS_MARK", "STATUS_SIZE", "ForkServer", "ForkServerGone", "ServedSpare"]

_log = structlog.get_logger("typedtiger.executor")

_INT: Final = struct.Struct("!i")
_HEADER: Final = struct.Struct("!I?")  # the rehearsal's length, whether to rebuild it here
#: Starts the wait status the server appends to a spare's outcome pipe (JSON has no NUL).
STATUS_MARK: Final = b"\0"
STATUS_SIZE: Final = _INT.size
#: Spares asked for whose pid has not been read, at most: each answer waits in the socket's
#: buffer, and a server whose answers fill it stops reading requests.
_MAX_UNANSWERED: Final = 32
#: Signals the server ignores: sent to the worker's process group (a Ctrl-C, a service
#: manager's stop), they are the worker's to handle; the server goes when the worker does.
_IGNORED: Final = (signal.SIGTERM, signal.SIGINT)


class ForkServerGone(OSError):
    """The fork server exited (it was killed, or failed): start a new one."""


class ForkServer:
    """The worker's handle on its fork server."""

    def __init__(self, pid: int, sock: socket.socket) -> None:
        self.pid = pid
        self._sock = sock
        self._reaped = False
        #: Spares asked for whose pid has not been read yet, oldest first (answers come in
        #: the order of the requests).
        self._unanswered: deque[ServedSpare] = deque()

    @classmethod
    def start(
        cls,
        wire: JobCodec,
        close_in_child: Sequence[int] = (),
        cleanup: Callable[[], None] | None = None,
    ) -> ForkServer:
        """Fork the server from this process (call from the thread that owns the worker).

        The server closes ``close_in_child`` and calls ``cleanup`` (see ``fork_process``), and
        so does each spare it forks."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            serve = functools.partial(_serve, theirs, wire, cleanup)
            close = (ours.fileno(), *close_in_child)
            pid = fork_process(serve, close, cleanup=cleanup)
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        return cls(pid, ours)

    def spawn(self, rehearsal: bytes, load: bool) -> ServedSpare:
        """Ask for a spare child that rehearses ``rehearsal`` (and with ``load``, for the
        server to rebuild it first, loading its function); returns at once."""
        if len(self._unanswered) >= _MAX_UNANSWERED:  # or the server may block answering
            self.read_pid(self._unanswered[0])
        job_read, job_write = os.pipe()
        outcome_read, outcome_write = os.pipe()
        try:
            message = _HEADER.pack(len(rehearsal), load) + rehearsal
            sent = socket.send_fds(self._sock, [message], [job_read, outcome_write])
            self._sock.sendall(message[sent:])
        except OSError as exc:
            os.close(job_write)
            os.close(outcome_read)
            raise ForkServerGone(f"the fork server is gone: {exc}") from exc
        finally:
            os.close(job_read)
            os.close(outcome_write)
        spare = ServedSpare(self, job_write, outcome_read)
        self._unanswered.append(spare)
        return spare

    def read_pid(self, spare: ServedSpare) -> int:
        """``spare``'s pid, read (with those of the spares asked for before it) from the
        server's answers: minus an errno if the server could not fork it."""
        while spare.known_pid is None:
            self._unanswered.popleft().known_pid = self._read_answer()
        return spare.known_pid

    def _read_answer(self) -> int:
        data = b""
        while len(data) < _INT.size:
            try:
                chunk = self._sock.recv(_INT.size - len(data))
            except OSError as exc:
                raise ForkServerGone(f"the fork server is gone: {exc}") from exc
            if not chunk:
                raise ForkServerGone("the fork server exited")
            data += chunk
        pid: int = _INT.unpack(data)[0]
        return pid

    def fileno(self) -> int:
        """The worker's end of the socket to the server."""
        return self._sock.fileno()

    def exited(self) -> bool:
        """Whether the server has exited (it is then reaped)."""
        if not self._reaped:
            try:
                self._reaped = os.waitpid(self.pid, os.WNOHANG)[0] != 0
            except ChildProcessError:
                self._reaped = True
        return self._reaped

    def close(self) -> None:
        """Stop the server (it kills its spares) and reap it."""
        self._sock.close()
        if not self._reaped:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self.pid, 0)
            self._reaped = True


class ServedSpare:
    """A spare child asked of the fork server, blocked reading its job from ``job_fd``."""

    def __init__(self, server: ForkServer, job_fd: int, outcome_fd: int) -> None:
        self.job_fd = job_fd  # the write end of its job pipe
        self.outcome_fd = outcome_fd  # the read end of its outcome pipe
        self.known_pid: int | None = None
        self._server = server

    @property
    def pid(self) -> int:
        """Its pid, read from the server the first time: ForkServerGone if the server exited,
        OSError if it could not fork this spare."""
        pid = self.known_pid if self.known_pid is not None else self._server.read_pid(self)
        if pid < 0:
            raise OSError(-pid, f"the fork server could not fork a spare: {os.strerror(-pid)}")
        return pid

    def discard(self) -> None:
        """Kill it (the server reaps it); close its pipes (the job pipe may be closed)."""
        try:
            pid: int | None = self.pid
        except OSError:  # never forked, or its server is gone (and it with it)
            pid = None
        # Its outcome pipe readable: the server has reaped it (and its pid may be reused).
        if pid is not None and not _readable(self.outcome_fd):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            os.close(self.job_fd)
        os.close(self.outcome_fd)


def _serve(sock: socket.socket, wire: JobCodec, cleanup: Callable[[], None] | None) -> int:
    """The server's life: fork spares on request, report their exits; 0 when told to stop."""
    for signum in _IGNORED:
        signal.signal(signum, signal.SIG_IGN)
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_read, False)
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, _note_child_exit)
    spares: dict[int, int] = {}  # pid -> the write end of its outcome pipe
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    poller.register(wake_read, select.POLLIN)
    while True:
        for fd, _event in poller.poll():
            if fd == wake_read:
                with contextlib.suppress(BlockingIOError):
                    while os.read(wake_read, 512):
                        pass
                _reap(spares)
                continue
            request = _receive(sock)
            if request is None:  # the worker is done with us
                for pid in spares:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                while spares:
                    _reap(spares, block=True)
                return 0
            job_read, outcome_write, rehearsal, load = request
            if load:  # imports its function here once, not in every spare
                with contextlib.suppress(Exception, SystemExit):
                    wire.decode(rehearsal)
                # (an imported module may have set its own: exits must still wake us)
                signal.set_wakeup_fd(wake_write)
                signal.signal(signal.SIGCHLD, _note_child_exit)
            close = (sock.fileno(), wake_read, wake_write, *spares.values())
            run = functools.partial(run_sent_job, job_read, wire, rehearsal)
            try:
                pid = fork_job_child(run, outcome_write, close, cleanup)
            except OSError as exc:  # e.g. EAGAIN: the worker is told, we serve on (exiting
                # would kill the children running tasks)
                _log.error("fork server could not fork a spare", error=str(exc))
                os.close(job_read)
                os.close(outcome_write)
                sock.sendall(_INT.pack(-(exc.errno or errno.EIO)))
                continue
            os.close(job_read)
            spares[pid] = outcome_write
            sock.sendall(_INT.pack(pid))


def _note_child_exit(_signum: int, _frame: object) -> None:
    """SIGCHLD's handler: the wakeup fd, written by the signal itself, does the work."""


def _receive(sock: socket.socket) -> tuple[int, int, bytes, bool] | None:
    """The next spawn request: job pipe's read end, outcome pipe's write end, rehearsal and
    whether to rebuild it here."""
    try:
        header, fds, _flags, _address = socket.recv_fds(sock, _HEADER.size, 2)
    except ConnectionResetError:  # the worker closed its end with our answers unread
        return None
    if not header:
        return None
    if len(fds) != 2:
        raise RuntimeError(f"fork server: a spawn request came with {len(fds)} descriptors")
    while len(header) < _HEADER.size:
        header += _recv_exactly(sock, _HEADER.size - len(header))
    length, load = _HEADER.unpack(header)
    return fds[0], fds[1], _recv_exactly(sock, length), load


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    chunks = []
    while size:
        chunk = sock.recv(min(size, 1 << 16))
        if not chunk:
            raise RuntimeError("fork server: the worker closed the socket mid-request")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _ready(fd: int, event: int) -> bool:
    """Whether ``fd`` is ready for ``event`` (or in error) right now."""
    poller = select.poll()
    poller.register(fd, event)
    return bool(poller.poll(0))


def _readable(fd: int) -> bool:
    return _ready(fd, select.POLLIN)


def _tell_status(outcome_write: int, status: int) -> None:
    # Never blocks the server: a pipe with room for PIPE_BUF bytes takes these 5 at once, and
    # one without room belongs to a worker that stopped reading (it then sees EOF alone).
    if _ready(outcome_write, select.POLLOUT):
        with contextlib.suppress(OSError):  # the worker closed its end
            os.write(outcome_write, STATUS_MARK + _INT.pack(status))


def _reap(spares: dict[int, int], block: bool = False) -> None:
    """Reap exited spares (and kill what each left in its process group); tell the worker each
    one's wait status through its outcome pipe."""
    while True:
        try:
            reaped = reap_any(block)
        except ChildProcessError:  # none left (reaped elsewhere: SIGCHLD set to be ignored)
            for write_end in spares.values():
                os.close(write_end)
            spares.clear()
            return
        if reaped is None:
            return
        pid, status = reaped
        outcome_write = spares.pop(pid, None)
        if outcome_write is not None:
            _tell_status(outcome_write, status)
            os.close(outcome_write)
        if block:
            return
