"""A redis-server of a test's own, for tests that restart, fill or reconfigure Redis.

It listens on 127.0.0.1 on a port checked free (from $TYPEDTIGER_TEST_PORTS, e.g.
``27000-31999``, when set, else one the kernel hands out), keeps its files in a directory of its
own and persists nothing unless asked (AOF for restart tests). Only the process this module
started is ever stopped or sent SHUTDOWN: a server already on the port is never touched.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import redis

from tests.waiting import scaled

PORTS_VARIABLE = "TYPEDTIGER_TEST_PORTS"
#: How many ports to try when another process takes the one picked before the server binds it.
_ATTEMPTS = 20


class RedisServerError(RuntimeError):
    """redis-server is missing or would not start."""


def port_is_free(port: int) -> bool:
    """Whether nothing listens on (or holds) 127.0.0.1:``port`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _port_range() -> range | None:
    spec = os.environ.get(PORTS_VARIABLE, "").strip()
    if not spec:
        return None
    low, _, high = spec.partition("-")
    try:
        ports = range(int(low), int(high or low) + 1)
    except ValueError:
        raise RedisServerError(f"${PORTS_VARIABLE} is {spec!r}, not LOW-HIGH") from None
    if not ports or ports.start < 1024 or ports.stop > 65536:
        raise RedisServerError(f"${PORTS_VARIABLE} is {spec!r}: ports from 1024 to 65535")
    return ports


def free_port() -> int:
    """A loopback port nothing holds now: from $TYPEDTIGER_TEST_PORTS if set, else the kernel's."""
    ports = _port_range()
    if ports is None:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        return port
    for _ in range(200):
        candidate = random.choice(ports)
        if port_is_free(candidate):
            return candidate
    raise RedisServerError(f"no free port in ${PORTS_VARIABLE}={os.environ[PORTS_VARIABLE]}")


def _death_signal_setter() -> Callable[[], None] | None:
    """What the server runs before exec so that it gets SIGTERM when the test run dies (killed
    outright, a CI timeout): no server left behind. Linux only; built here, not in the child,
    where an import could deadlock on a lock another thread held at fork."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    pr_set_pdeathsig = 1

    def set_death_signal() -> None:
        prctl(pr_set_pdeathsig, signal.SIGTERM)

    return set_death_signal


class RedisServer:
    """One redis-server process on 127.0.0.1, started and stopped by its owner only."""

    def __init__(
        self, directory: Path, *, appendonly: bool = False, extra: Sequence[str] = ()
    ) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RedisServerError("redis-server is not on PATH")
        self._binary = binary
        self.directory = directory
        self._appendonly = appendonly
        #: More options (cluster mode, a replica's primary); with "--sentinel" first, the
        #: process is a sentinel (its config file, sentinel.conf in ``directory``, is made here).
        self._extra = list(extra)
        self._process: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.client: redis.Redis[str] | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def _command(self) -> list[str]:
        if self._extra[:1] == ["--sentinel"]:
            config = self.directory / "sentinel.conf"
            if not config.exists():
                config.write_text("")
            return [
                self._binary, str(config), "--sentinel", "--port", str(self.port),
                "--bind", "127.0.0.1", "--dir", str(self.directory), "--logfile", "redis.log",
                *self._extra[1:],
            ]  # fmt: skip
        persistence = ["--appendonly", "yes", "--appendfsync", "everysec"]
        return [
            self._binary, "--port", str(self.port), "--bind", "127.0.0.1",
            "--dir", str(self.directory), "--logfile", "redis.log", "--save", "",
            *(persistence if self._appendonly else ["--appendonly", "no"]), *self._extra,
        ]  # fmt: skip

    def _ours_answers(self) -> bool:
        """Whether the process we started answers (a server of someone else's does not count)."""
        assert self.client is not None and self._process is not None
        try:
            info = self.client.info("server")
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
            return False
        return int(info["process_id"]) == self._process.pid

    def _launch(self) -> bool:
        """Start on self.port; False if the process exits first (the port was taken)."""
        if self.client is None:
            # One client for the server's life: it reconnects after a restart.
            self.client = redis.Redis(port=self.port, decode_responses=True, socket_timeout=5)
        self._process = subprocess.Popen(
            self._command(),
            cwd=self.directory,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_death_signal_setter(),  # noqa: PLW1509 (one C call, no Python locks)
        )
        deadline = time.monotonic() + scaled(30)
        while not self._ours_answers():
            if self._process.poll() is not None:
                return False
            if time.monotonic() > deadline:
                self.stop()
                raise RedisServerError(f"redis-server gave no answer on port {self.port}")
            time.sleep(0.02)
        return True

    def start(self) -> None:
        """Start the server: on a new free port the first time, on the same port afterwards."""
        if self.port:
            if not self._launch():
                raise RedisServerError(f"redis-server did not restart on port {self.port}")
            return
        for _ in range(_ATTEMPTS):
            self.port = free_port()
            if self._launch():
                return
            assert self.client is not None
            self.client.close()
            self.client = None
        raise RedisServerError(f"redis-server did not start; see {self.directory / 'redis.log'}")

    def shutdown(self) -> None:
        """SHUTDOWN (an AOF is fsynced first) and wait for the process to exit."""
        assert self._process is not None and self.client is not None
        if not self._ours_answers():
            raise RedisServerError(f"the server on port {self.port} is not the one started here")
        with contextlib.suppress(redis.exceptions.ConnectionError):
            self.client.shutdown()
        self._process.wait(timeout=scaled(30))
        self.client.connection_pool.disconnect()

    def kill(self) -> None:
        """SIGKILL the process started here (a crash: nothing is saved) and reap it."""
        assert self._process is not None
        self._process.kill()
        self._process.wait(timeout=scaled(30))

    def stop(self) -> None:
        """Terminate the process started here, if it still runs."""
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=scaled(30))
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self.client is not None:
            self.client.close()


@contextlib.contextmanager
def own_redis_server(
    directory: Path | None = None, *, appendonly: bool = False, extra: Sequence[str] = ()
) -> Iterator[RedisServer]:
    """A started RedisServer (in ``directory``, else a temporary one), stopped on exit."""
    with contextlib.ExitStack() as stack:
        if directory is None:
            directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="redis-")))
        directory.mkdir(parents=True, exist_ok=True)
        server = RedisServer(directory, appendonly=appendonly, extra=extra)
        stack.callback(server.stop)
        server.start()
        yield server
