"""Fixtures of the chaos suite, and the terminal summary that shows each scenario's figures.

Scenarios run against real Redis: $TYPEDTIGER_CHAOS_REDIS_URL, else the suite's
$TYPEDTIGER_TEST_REDIS_URL (see tests/conftest.py), flushed around each test. The Redis restart
scenario starts a redis-server of its own (AOF, everysec) on a free loopback port
(tests/redis_server.py) and shuts down only that one.

pytest captures the stdout of passing tests, so every scenario line is also collected here and
printed in a "chaos scenarios" section of the terminal summary (always shown, CI logs included).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from tests import chaos_tasks
from tests.chaos.harness import Figures, Ledger, WorkerPool
from tests.conftest import REDIS_URL, redis_client
from tests.redis_server import RedisServer
from tests.worker_main import FAST
from typedtiger import Tiger
from typedtiger.backends.redis import RedisBackend

CHAOS_REDIS_URL = os.environ.get("TYPEDTIGER_CHAOS_REDIS_URL", REDIS_URL)

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


@pytest.fixture
def chaos_redis() -> Iterator[redis.Redis[str]]:
    """The chaos suite's Redis database, empty."""
    client = redis_client(CHAOS_REDIS_URL)
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


@pytest.fixture
def own_tiger(own_redis: RedisServer) -> Tiger:
    """A Tiger on the test's own redis-server (the ``own_redis`` fixture of tests/conftest.py)."""
    assert own_redis.client is not None
    return _tiger(own_redis.client)
