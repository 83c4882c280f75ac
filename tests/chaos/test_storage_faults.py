"""Storage faults and poisoned data under 3 workers: none may stop a worker or lose a task.

- maxmemory: the workers' Redis refuses every write (maxmemory 1 byte, noeviction) for 30 s,
  then gets its memory back;
- wrong-type keys: keys of the wrong Redis type planted under the prefix (a queue's scheduled
  list, queued string, active hash, and one queued task whose payload key is a list);
- READONLY: the workers' Redis turns into a replica (of a master that never answers, so it keeps
  its data and answers READONLY to every write) for 10 s, then is a primary again.

(Poisoned payloads between good tasks: tests/chaos/test_poisoned.py.)

Each prints ``lost=0 stuck=0 worker_crashes=0``: no good task lost or left pending, no worker
exited before it was told to stop. Duplicates are allowed (at-least-once): a task that ran while
its heartbeat could not be written may be requeued and run again.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import attrs
import pytest
import redis

from tests import chaos_tasks
from tests.chaos.conftest import Report
from tests.chaos.harness import Figures, Ledger, WorkerPool, error_details, measure, pending
from tests.redis_server import RedisServer
from tests.waiting import scaled
from typedtiger import Task, TaskSpec, TaskState, Tiger
from typedtiger.exceptions import BackendUnavailable

pytestmark = [pytest.mark.chaos, pytest.mark.redis, pytest.mark.timeout(300)]

QUEUE = "default"
WORKERS = 3
BOUND_S = scaled(90.0)  # longer on a busy machine (tests/waiting.py)
#: How long each fault lasts: the issue's figures (a full Redis for 30 s, a replica for 10 s).
FULL_S = 30.0
READONLY_S = 10.0


def _pending_or_none(tiger: Tiger) -> int | None:
    try:
        return pending(tiger, QUEUE)
    except BackendUnavailable:
        return None


def _client(server: RedisServer) -> redis.Redis[str]:
    assert server.client is not None, "the server is started"
    return server.client


def _drain(tiger: Tiger, pool: WorkerPool, started: float) -> float:
    """Wait until nothing is pending (or every worker has exited); the seconds since start."""
    while _pending_or_none(tiger) != 0 and time.monotonic() - started < BOUND_S and pool.alive():
        time.sleep(0.1)
    return time.monotonic() - started


def _enqueue(tiger: Tiger, ledger: Ledger, count: int, seconds: float = 0.05) -> list[str]:
    items = [f"i{n}" for n in range(count)]
    tiger.enqueue_many(
        [TaskSpec.of(chaos_tasks.run, str(ledger.path), item, seconds) for item in items]
    )
    return items


def _wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + BOUND_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@contextmanager
def _workers(url: str, logs: Path) -> Iterator[WorkerPool]:
    pool = WorkerPool(url, logs)
    try:
        for _ in range(WORKERS):
            pool.start()
        pool.wait_ready()
        yield pool
    finally:
        pool.close()


def _finish(
    scenario: str,
    tiger: Tiger,
    ledger: Ledger,
    pool: WorkerPool,
    items: list[str],
    drain_s: float,
    report: Report,
) -> Figures:
    """Stop the workers, print the scenario's line, assert nothing lost, stuck or crashed."""
    crashed = sum(process.poll() is not None for process in pool.started)
    codes = pool.stop_all()
    crashed += sum(code != 0 for code in codes)
    measured = measure(scenario, tiger, QUEUE, ledger, items, drain_s)
    figures = attrs.evolve(measured, worker_crashes=crashed)
    report(figures)
    detail = f"{figures.line}\n{error_details(tiger, QUEUE)}\n{pool.log_tail()}"
    assert figures.lost == 0 and figures.stuck == 0 and crashed == 0, detail
    return figures


def test_redis_at_maxmemory_for_30_seconds(
    own_redis: RedisServer, own_tiger: Tiger, ledger: Ledger, tmp_path: Path, report: Report
) -> None:
    items = _enqueue(own_tiger, ledger, 300, 0.1)
    with _workers(own_redis.url(), tmp_path) as pool:
        started = time.monotonic()
        _wait_for(lambda: len(ledger.ends()) >= 30, "some tasks to finish")
        _client(own_redis).config_set("maxmemory-policy", "noeviction")
        _client(own_redis).config_set("maxmemory", 1)
        with pytest.raises(redis.exceptions.ResponseError, match="maxmemory"):
            _client(own_redis).set("probe", "x")  # the fault is real
        time.sleep(FULL_S)
        _client(own_redis).config_set("maxmemory", 0)
        drain_s = _drain(own_tiger, pool, started)
        figures = _finish("maxmemory_30s", own_tiger, ledger, pool, items, drain_s, report)
    assert figures.errors == 0, error_details(own_tiger, QUEUE)


@contextmanager
def _unreachable_port() -> Iterator[int]:
    """A loopback port nothing answers on while the block runs (bound, never listened on)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def test_readonly_replica_in_place_of_the_primary_for_10_seconds(
    own_redis: RedisServer, own_tiger: Tiger, ledger: Ledger, tmp_path: Path, report: Report
) -> None:
    items = _enqueue(own_tiger, ledger, 200, 0.1)
    with _workers(own_redis.url(), tmp_path) as pool, _unreachable_port() as port:
        started = time.monotonic()
        _wait_for(lambda: len(ledger.ends()) >= 30, "some tasks to finish")
        # A replica keeps its data until a sync with its master succeeds, which never happens.
        _client(own_redis).replicaof("127.0.0.1", port)
        with pytest.raises(redis.exceptions.ReadOnlyError):
            _client(own_redis).set("probe", "x")  # the fault is real
        time.sleep(READONLY_S)
        _client(own_redis).replicaof("NO", "ONE")
        drain_s = _drain(own_tiger, pool, started)
        figures = _finish("readonly_10s", own_tiger, ledger, pool, items, drain_s, report)
    assert figures.errors == 0, error_details(own_tiger, QUEUE)


def _task_ids(tiger: Tiger, state: TaskState) -> set[str]:
    _total, tasks = Task.tasks_from_queue(tiger, QUEUE, state, limit=1000)
    return {task.id for task in tasks}


def test_wrong_type_keys_under_the_prefix(
    own_redis: RedisServer, own_tiger: Tiger, ledger: Ledger, tmp_path: Path, report: Report
) -> None:
    client = _client(own_redis)
    items = _enqueue(own_tiger, ledger, 100)
    poisoned = own_tiger.enqueue(TaskSpec.of(chaos_tasks.run, str(ledger.path), "poisoned"))
    client.delete(f"t:task:{poisoned.id}")
    client.rpush(f"t:task:{poisoned.id}", "junk")
    client.rpush("t:scheduled:x", "junk")
    client.sadd("t:scheduled", "x")
    client.set("t:queued:y", "junk")
    client.sadd("t:queued", "y")
    client.hset("t:active:z", "field", "junk")
    client.sadd("t:active", "z")
    with _workers(own_redis.url(), tmp_path) as pool:
        started = time.monotonic()
        drain_s = _drain(own_tiger, pool, started)
        figures = _finish("wrong_type_keys", own_tiger, ledger, pool, items, drain_s, report)
    assert _task_ids(own_tiger, TaskState.ERROR) == {poisoned.id}, error_details(own_tiger, QUEUE)
    assert figures.errors == 1
