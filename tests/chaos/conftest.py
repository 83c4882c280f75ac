"""Fixtures of the chaos suite, and the terminal summary that shows each scenario's figures.

Scenarios run against real Redis: $TYPEDTIGER_CHAOS_REDIS_URL, else the suite's
$TYPEDTIGER_TEST_REDIS_URL (see tests/conftest.py), flushed around each test. The Redis restart
scenario starts a redis-server of its own (AOF, everysec) on another loopback port.

pytest captures the stdout of passing tests, so every scenario line is also collected here and
printed in a "chaos scenarios" section of the terminal summary (always shown, CI logs included).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn

import pytest
import redis

from tests import chaos_tasks
from tests.chaos.harness import Figures, Ledger, WorkerPool, wait_until
from tests.conftest import REDIS_URL
from tests.worker_main import FAST
from typedtiger import Tiger
from typedtiger.backends.redis import RedisBackend

CHAOS_REDIS_URL = os.environ.get("TYPEDTIGER_CHAOS_REDIS_URL", REDIS_URL)
#: The port the restart scenario's own redis-server prefers (a free one if it is taken).
OWN_REDIS_PORT = 6393

_LINES = pytest.StashKey[list[str]]()


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config
) -> None:
    lines = config.stash.get(_LINES, [])
    if lines:
        terminalreporter.section("chaos scenarios")
        for line in lines:
            terminalreporter.write_line(line)


Report = Callable[[Figures], None]


@pytest.fixture
def report(request: pytest.FixtureRequest) -> Report:
    """Print a scenario's line and keep it for the terminal summary."""

    def emit(figures: Figures) -> None:
        print(figures.line)
        request.config.stash.setdefault(_LINES, []).append(figures.line)

    return emit


def _unavailable(message: str) -> NoReturn:
    """Fail when $TYPEDTIGER_REQUIRE_REDIS is set (scripts/test sets it), else skip."""
    if os.environ.get("TYPEDTIGER_REQUIRE_REDIS"):
        pytest.fail(message)
    pytest.skip(message)


def _client(url: str) -> redis.Redis[str]:
    client: redis.Redis[str] = redis.Redis.from_url(url, decode_responses=True)
    try:
        client.ping()
    except redis.exceptions.ConnectionError as exc:
        client.close()
        _unavailable(f"the chaos suite needs Redis at {url}: {exc}")
    return client


@pytest.fixture
def chaos_redis() -> Iterator[redis.Redis[str]]:
    """The chaos suite's Redis database, empty."""
    client = _client(CHAOS_REDIS_URL)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


def _tiger(client: redis.Redis[str]) -> Tiger:
    tiger = Tiger(RedisBackend(client), FAST)
    tiger.adopt(chaos_tasks.tiger)
    return tiger


@pytest.fixture
def tiger(chaos_redis: redis.Redis[str]) -> Tiger:
    """A Tiger on the chaos database, with the workers' FAST timings."""
    return _tiger(chaos_redis)


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    return Ledger(tmp_path / "ledger.txt")


@pytest.fixture
def pool(tmp_path: Path) -> Iterator[WorkerPool]:
    """Worker processes on the chaos database; all killed at the end of the test."""
    pool = WorkerPool(CHAOS_REDIS_URL, tmp_path)
    yield pool
    pool.close()


# --- a redis-server of the test's own ------------------------------------------------------


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    if _port_free(OWN_REDIS_PORT):
        return OWN_REDIS_PORT
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class OwnRedis:
    """A redis-server with AOF (fsync everysec) on a loopback port, owned by one test."""

    def __init__(self, data: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            _unavailable("the Redis restart scenario needs redis-server on PATH")
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._data = data
        self._command = [
            binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(data),
            "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
            "--logfile", str(data / "redis.log"),
        ]  # fmt: skip
        self._process: subprocess.Popen[bytes] | None = None
        self.client: redis.Redis[str] = redis.Redis(
            host="127.0.0.1", port=self.port, decode_responses=True, socket_timeout=5
        )

    def _ready(self) -> bool:
        try:
            return bool(self.client.ping())
        except redis.exceptions.ConnectionError:
            return False

    def start(self) -> None:
        self._process = subprocess.Popen(self._command, stdout=subprocess.DEVNULL)
        wait_until(self._ready, 30, f"redis-server on port {self.port} to start")

    def shutdown(self) -> None:
        """SHUTDOWN (the AOF is fsynced first) and wait for the process to exit."""
        assert self._process is not None
        with contextlib.suppress(redis.exceptions.ConnectionError):
            self.client.shutdown()
        self._process.wait(timeout=30)
        self.client.connection_pool.disconnect()

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            self._process.wait(timeout=30)
        self.client.close()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    data = tmp_path / "redis-data"
    data.mkdir()
    server = OwnRedis(data)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def own_tiger(own_redis: OwnRedis) -> Tiger:
    return _tiger(own_redis.client)
