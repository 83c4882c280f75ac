"""Fixtures shared by the suite: every conformance test runs on FakeBackend and on real Redis.

Real Redis is at $TYPEDTIGER_TEST_REDIS_URL (default redis://127.0.0.1:6379/15), flushed around
each test: name a database the tests may empty. When it cannot be reached the redis-backed tests
fail if $TYPEDTIGER_REQUIRE_REDIS is set (scripts/test sets it) and are skipped otherwise. Tests
that restart Redis get a redis-server of their own (``own_redis``, tests/redis_server.py).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Final, NoReturn, cast

import pytest
import redis
from redis.cluster import RedisCluster

from tests import tasks
from tests.redis_cluster import cluster_url, own_redis_cluster
from tests.redis_server import RedisServer, RedisServerError, own_redis_server
from tests.waiting import TIME_SCALE_VARIABLE, load_scale, time_scale
from typedtiger import Config, Tiger
from typedtiger.backends._redis_connect import client_from_url
from typedtiger.backends.fake import FakeBackend
from typedtiger.backends.redis import RedisBackend
from typedtiger.clock import ManualClock
from typedtiger.executor import SyncExecutor

REDIS_URL = os.environ.get("TYPEDTIGER_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def pytest_configure(config: pytest.Config) -> None:
    # Fixed once for the session and exported, so worker processes wait by the same scale.
    if not os.environ.get(TIME_SCALE_VARIABLE):
        os.environ[TIME_SCALE_VARIABLE] = f"{load_scale():.1f}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselects the cluster variants (``backend[cluster]``) of the tests of every module not
    in CLUSTER_CONFORMANCE. Then per-test timeouts (pytest-timeout: the ini's, or a module's
    mark) grow with the time scale like the waits inside the tests; a --timeout given on the
    command line is kept."""
    kept = [
        item
        for item in items
        if "[cluster" not in item.nodeid
        or item.module.__name__.rpartition(".")[2] in CLUSTER_CONFORMANCE  # type: ignore[attr-defined]
    ]
    if len(kept) < len(items):
        config.hook.pytest_deselected(items=[item for item in items if item not in kept])
        items[:] = kept
    scale = time_scale()
    if scale == 1 or config.getoption("timeout", None) is not None:
        return
    default = float(config.getini("timeout") or 0)
    for item in items:
        marker = item.get_closest_marker("timeout")
        seconds = float(marker.args[0]) if marker is not None and marker.args else default
        if seconds > 0:
            item.add_marker(pytest.mark.timeout(seconds * scale), append=False)


def pytest_report_header(config: pytest.Config) -> str:
    return f"time scale for waits: {time_scale():g} (${TIME_SCALE_VARIABLE}, tests/waiting.py)"


def unavailable(message: str) -> NoReturn:
    """Fail when $TYPEDTIGER_REQUIRE_REDIS is set (scripts/test sets it), else skip."""
    if os.environ.get("TYPEDTIGER_REQUIRE_REDIS"):
        pytest.fail(message)
    pytest.skip(message)


def redis_client(url: str = REDIS_URL) -> redis.Redis[str]:
    """A client on ``url``, or a failure/skip when Redis is unreachable."""
    client: redis.Redis[str] = redis.Redis.from_url(url, decode_responses=True)
    try:
        client.ping()
    except redis.exceptions.ConnectionError as exc:
        client.close()
        unavailable(f"no Redis at {url}: {exc}")
    return client


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own (AOF, fsync everysec), stopped at the end."""
    with contextlib.ExitStack() as stack:
        try:
            server = stack.enter_context(own_redis_server(tmp_path / "redis", appendonly=True))
        except RedisServerError as exc:
            unavailable(f"this test needs a redis-server of its own: {exc}")
        yield server


@pytest.fixture
def redis_db() -> Iterator[redis.Redis[str]]:
    """The real Redis test database, empty."""
    client = redis_client()
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


#: The conformance modules that also run on a Redis Cluster of the run's own (3 primaries), in
#: the per-queue layout: their tests go through the Backend protocol, or name keys through the
#: backend's layout (tests/keys.py); the others still read keys by their classic names.
CLUSTER_CONFORMANCE: Final = frozenset(
    {
        "test_admin_output",
        "test_allowlist",
        "test_async",
        "test_async_client",
        "test_asyncio_executor",
        "test_batches",
        "test_core",
        "test_dashboard",
        "test_dependencies",
        "test_inspection",
        "test_inspection_overview",
        "test_killed_child",
        "test_metrics",
        "test_multi_claim",
        "test_numbers",
        "test_options",
        "test_otel",
        "test_poisoned_payloads",
        "test_priorities",
        "test_queues",
        "test_races",
        "test_recovery",
        "test_results",
        "test_runners",
        "test_status",
        "test_storage_errors",
        "test_worker_registry",
    }
)


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a Redis Cluster of this run's own (3 primaries on loopback)."""
    with contextlib.ExitStack() as stack:
        try:
            nodes = stack.enter_context(own_redis_cluster(tmp_path_factory.mktemp("cluster")))
        except (RedisServerError, OSError, subprocess.CalledProcessError) as exc:
            unavailable(f"no Redis Cluster of this run's own: {exc}")
        yield cluster_url(nodes)


@pytest.fixture
def cluster_client(redis_cluster: str) -> Iterator[RedisCluster[str]]:
    """A client on the run's Redis Cluster, its primaries flushed around."""
    client = cast("RedisCluster[str]", client_from_url(redis_cluster))
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture(params=["fake", "redis", "cluster"])
def backend(request: pytest.FixtureRequest) -> Iterator[RedisBackend]:
    """Each backend in turn, on a ManualClock ("cluster": per queue, on the run's cluster)."""
    clock = ManualClock()
    if request.param == "fake":
        yield FakeBackend(clock)
        return
    if request.param == "cluster":
        differs = request.node.get_closest_marker("across_queues")
        if differs is not None:
            pytest.skip(f"per queue, by design (docs/scaling.md): {differs.args[0]}")
        yield RedisBackend(request.getfixturevalue("cluster_client"), clock=clock)
        return
    client = request.getfixturevalue("redis_db")
    yield RedisBackend(client, clock=clock)


@pytest.fixture
def clock(backend: RedisBackend) -> ManualClock:
    """The backend's ManualClock."""
    assert isinstance(backend.clock, ManualClock)
    return backend.clock


@pytest.fixture
def tiger(backend: RedisBackend) -> Tiger:
    """A Tiger on each backend, with the test tasks registered; the tests also run unregistered
    functions of the ``tests`` package by name."""
    tiger = Tiger(backend, Config(allowed_task_modules=("tests",)))
    tiger.adopt(tasks.tiger)
    return tiger


@pytest.fixture(autouse=True)
def _reset_task_records() -> Iterator[None]:
    tasks.CALLS.clear()
    yield
    tasks.CALLS.clear()


def run_worker(tiger: Tiger, **options: object) -> None:
    """Run a sync worker until nothing is due."""
    tiger.run_worker(executor=SyncExecutor(), once=True, **options)  # type: ignore[arg-type]


#: The name every throwaway module of ``module_dir`` starts with (they are unloaded after).
THROWAWAY_PREFIX = "tt_throwaway_"


@pytest.fixture
def module_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A directory on sys.path (children inherit it) for modules of ``throwaway_module``."""
    folder = tmp_path / "modules"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    before = set(sys.modules)
    yield folder
    for name in set(sys.modules) - before:
        if name.startswith(THROWAWAY_PREFIX):
            del sys.modules[name]


def throwaway_module(folder: Path, body: str) -> str:
    """Write a module of ``body`` with a fresh name into ``folder``; its name."""
    name = f"{THROWAWAY_PREFIX}{uuid.uuid4().hex[:8]}"
    (folder / f"{name}.py").write_text(body)
    return name
