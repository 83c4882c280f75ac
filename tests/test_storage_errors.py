"""Storage errors: each class of Redis error, and what a worker does about it (issue 17).

An outage (unreachable, read-only replica, maxmemory, loading, ...) is waited out with backoff,
up to ``Config.storage_retry_deadline``; bad data in one key or task is skipped or quarantined
and the worker serves everything else. The cases that matter run real Redis servers of the
test's own (tests/redis_server.py: on a free port, ``$TYPEDTIGER_TEST_PORTS`` picks the range)
and real worker processes.
"""

from __future__ import annotations

import contextlib
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar, cast

import pytest
import redis
import redis.sentinel
import structlog
import structlog.testing
from redis.cluster import RedisCluster

from tests import tasks, test_worker_process, worker_tasks
from tests.keys import layout, stored_keys
from tests.redis_server import RedisServer, free_port, own_redis_server
from tests.test_worker_process import REPO, lines
from tests.waiting import scaled, wait_until
from tests.worker_main import FAST
from typedtiger import Config, Task, TaskSpec, TaskState, Tiger
from typedtiger.backends._scripts import SHAS
from typedtiger.backends.base import ClaimTicket, Completion, Failure
from typedtiger.backends.fake import FakeBackend
from typedtiger.backends.redis import RedisBackend, translate_error
from typedtiger.clock import ManualClock
from typedtiger.exceptions import (
    BackendUnavailable,
    StorageDataError,
    StorageGaveUp,
    TypedTigerError,
)
from typedtiger.executor import SyncExecutor
from typedtiger.worker import Worker
from typedtiger.worker.outage import FIRST_WAIT, MAX_WAIT, STOP_GRACE, StorageOutage

pytestmark = pytest.mark.timeout(120)

#: Worker processes (tests/worker_main.py) logging to tmp_path/worker-N.log; killed at the end.
workers = test_worker_process.workers

# --- classification ----------------------------------------------------------------------

_E = redis.exceptions


@pytest.mark.parametrize(
    "error",
    [
        _E.ConnectionError("Error 111 connecting to 127.0.0.1:1. Connection refused."),
        _E.TimeoutError("Timeout reading from socket"),
        _E.BusyLoadingError("Redis is loading the dataset in memory"),
        _E.ReadOnlyError("You can't write against a read only replica."),
        _E.OutOfMemoryError("command not allowed when used memory > 'maxmemory'."),  # type: ignore[attr-defined]
        _E.MasterDownError("Link with MASTER is down and replica-serve-stale-data is set to 'no'."),
        _E.ResponseError("BUSY Redis is busy running a script."),
        _E.ResponseError("MISCONF Redis is configured to save RDB snapshots, but it's currently"),
        _E.ResponseError("NOREPLICAS Not enough good replicas to write."),
        _E.ResponseError("LOADING Redis is loading the dataset in memory"),
        _E.ResponseError("READONLY You can't write against a read only replica."),
        _E.ResponseError("OOM command not allowed when used memory > 'maxmemory'."),
        _E.ResponseError("command not allowed when used memory > 'maxmemory'. script: 1f0e"),
        _E.ResponseError("TRYAGAIN Multiple keys request during rehashing of slot"),
        _E.ResponseError("CLUSTERDOWN The cluster is down"),
    ],
    ids=lambda error: str(error)[:24],
)
def test_an_outage_is_backend_unavailable(error: redis.exceptions.RedisError) -> None:
    assert type(translate_error(error)) is BackendUnavailable


@pytest.mark.parametrize(
    "message",
    [
        "WRONGTYPE Operation against a key holding the wrong kind of value",
        "WRONGTYPE Operation against a key holding the wrong kind of value script: 1f, on @x:9.",
        "value is not an integer or out of range",
        "value is not a valid float",
        "user_script:12: attempt to perform arithmetic on a nil value script: 1f",
        "Error running script (call to f_1f): @user_script:?: attempt to compare nil with number",
        "TASKDATA task abc: executions_count is not a number",
    ],
)
def test_bad_data_is_a_storage_data_error(message: str) -> None:
    assert type(translate_error(_E.ResponseError(message))) is StorageDataError


@pytest.mark.parametrize(
    "error",
    [
        _E.ResponseError("unknown command 'NOPE', with args beginning with: "),
        _E.ResponseError("wrong number of arguments for 'zadd' command"),
        _E.NoPermissionError("this user has no permissions to run the 'evalsha' command"),
    ],
    ids=lambda error: str(error)[:24],
)
def test_anything_else_is_a_plain_typedtiger_error(error: redis.exceptions.RedisError) -> None:
    assert type(translate_error(error)) is TypedTigerError


def test_a_backend_without_retries_fails_at_once_and_leaves_the_original_alone() -> None:
    client: redis.Redis[str] = redis.Redis(port=free_port(), decode_responses=True)
    backend = RedisBackend(client)
    quick = backend.without_retries()
    assert quick.client is not client and quick.prefix == backend.prefix
    started = time.monotonic()
    with pytest.raises(BackendUnavailable):
        quick.queues_with_tasks(TaskState.QUEUED)
    assert time.monotonic() - started < scaled(1.0)  # redis-py's default retry takes seconds
    retry = client.connection_pool.connection_kwargs["retry"]
    assert retry.get_retries() > 0
    client.close()
    quick.client.close()


@pytest.mark.parametrize("kind", ["plain", "blocking", "sentinel"])
def test_a_backend_without_retries_keeps_the_kind_of_pool(kind: str) -> None:
    client: redis.Redis[str]
    if kind == "sentinel":  # (no I/O until a command is sent)
        sentinel = redis.sentinel.Sentinel([("127.0.0.1", free_port())], socket_timeout=0.1)
        client = sentinel.master_for("mymaster", decode_responses=True)
    else:
        kinds = {"plain": redis.ConnectionPool, "blocking": redis.BlockingConnectionPool}
        pool = kinds[kind](port=free_port(), decode_responses=True, max_connections=7)
        client = redis.Redis(connection_pool=pool, decode_responses=True)
    quick = RedisBackend(client).without_retries()
    fresh = quick.client.connection_pool
    assert type(fresh) is type(client.connection_pool) and fresh is not client.connection_pool
    assert fresh.connection_kwargs["retry"].get_retries() == 0
    assert fresh.max_connections == client.connection_pool.max_connections
    if isinstance(fresh, redis.sentinel.SentinelConnectionPool):
        assert fresh.service_name == "mymaster"
        proxy = fresh.connection_kwargs["connection_pool"]  # its own, not the original's
        assert proxy is getattr(fresh, "proxy")  # noqa: B009 (types-redis lacks it)


def test_closing_a_backend_without_retries_closes_the_client_it_made(
    redis_db: redis.Redis[str],
) -> None:
    backend = RedisBackend(redis_db)
    quick = backend.without_retries()
    quick.queues_with_tasks(TaskState.QUEUED)
    backend.queues_with_tasks(TaskState.QUEUED)
    quick.close()
    backend.close()
    pools = quick.client.connection_pool, redis_db.connection_pool
    assert [c for c in pools[0]._available_connections if c._sock is not None] == []
    assert [c for c in pools[1]._available_connections if c._sock is not None] != []


# --- StorageOutage, on a clock of the test's own -----------------------------------------


class _Time:
    """A monotonic clock that moves only when slept on."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []
        self.stop = False
        self.stop_after: float | None = None

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        if self.stop_after is not None and self.now >= self.stop_after:
            self.stop = True


def _outage(clock: _Time, deadline: float, jitter: float = 1.0) -> StorageOutage:
    return StorageOutage(
        deadline,
        structlog.get_logger("test"),
        monotonic=lambda: clock.now,
        sleep=clock.sleep,
        jitter=lambda: jitter,
    )


def test_waits_double_up_to_the_cap_and_an_outage_ends_past_its_deadline() -> None:
    clock = _Time()
    outage = _outage(clock, deadline=60.0)
    waits = []
    with pytest.raises(StorageGaveUp, match=r"storage_retry_deadline \(60 s\) passed"):
        while True:
            before = clock.now
            outage.failed(BackendUnavailable("down"), lambda: clock.stop)
            waits.append(round(clock.now - before, 6))
    assert waits[:4] == [FIRST_WAIT, 2 * FIRST_WAIT, 4 * FIRST_WAIT, 8 * FIRST_WAIT]
    assert max(waits) == MAX_WAIT
    assert clock.now == pytest.approx(160.0)  # the last wait is cut to the deadline
    assert max(clock.sleeps) <= 0.1  # slept in slices, to notice a stop


def test_jitter_shortens_each_wait_by_up_to_half() -> None:
    clock = _Time()
    outage = _outage(clock, deadline=60.0, jitter=0.0)
    outage.failed(BackendUnavailable("down"), lambda: clock.stop)
    assert clock.now - 100.0 == pytest.approx(FIRST_WAIT / 2)


def test_a_call_that_succeeds_ends_the_outage() -> None:
    clock = _Time()
    outage = _outage(clock, deadline=1.0)
    for _ in range(3):
        outage.failed(BackendUnavailable("down"), lambda: clock.stop)
    outage.succeeded()
    assert not outage.ongoing
    clock.now += 10  # a new outage gets a deadline of its own
    before = clock.now
    outage.failed(BackendUnavailable("down again"), lambda: clock.stop)
    assert clock.now - before == pytest.approx(FIRST_WAIT)


def test_a_stop_request_ends_an_outage_within_the_grace() -> None:
    clock = _Time()
    outage = _outage(clock, deadline=300.0)
    clock.stop_after = 105.0
    with pytest.raises(StorageGaveUp, match="a stop was requested"):
        while True:
            outage.failed(BackendUnavailable("down"), lambda: clock.stop)
    assert clock.now <= 105.0 + 0.1 + STOP_GRACE


# --- redis-servers of the test's own -------------------------------------------------------


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Callable[[], RedisServer]]:
    """Start redis-servers of the test's own (tests/redis_server.py); stopped at the end."""
    with contextlib.ExitStack() as stack:
        started = 0

        def start() -> RedisServer:
            nonlocal started
            started += 1
            return stack.enter_context(own_redis_server(tmp_path / f"redis-{started}"))

        yield start


def _client(server: RedisServer) -> redis.Redis[str]:
    assert server.client is not None
    return server.client


#: Clients the tests below open, closed after each test: a socket left open in this process
#: would be inherited by the task children of later tests.
_opened: list[redis.Redis[str]] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _opened:
        _opened.pop().close()


def _tiger(url: str, config: Config = FAST) -> Tiger:
    backend = RedisBackend.from_url(url)
    _opened.append(backend.client)
    tiger = Tiger(backend, config)
    tiger.adopt(worker_tasks.tiger)
    return tiger


def _log_of(tmp_path: Path, number: int = 0) -> str:
    return (tmp_path / f"worker-{number}.log").read_text()


def _stop(worker: subprocess.Popen[bytes]) -> int:
    worker.send_signal(signal.SIGTERM)
    return worker.wait(timeout=scaled(20))


def test_a_full_redis_is_an_outage_the_worker_survives(
    servers: Callable[[], RedisServer],
    workers: Callable[..., subprocess.Popen[bytes]],
    tmp_path: Path,
) -> None:
    server = servers()
    tiger = _tiger(server.url())
    ledger = tmp_path / "ledger.txt"
    tiger.enqueue_many([TaskSpec.of(worker_tasks.record, str(ledger), str(n)) for n in range(3)])
    tiger.enqueue(TaskSpec.of(worker_tasks.exit_with, 3))  # its failure must be recorded
    _client(server).config_set("maxmemory-policy", "noeviction")
    _client(server).config_set("maxmemory", 1)  # below what is used: every denyoom write fails
    with pytest.raises(BackendUnavailable, match="maxmemory"):
        tiger.enqueue(TaskSpec.of(worker_tasks.record, str(ledger), "refused"))

    worker = workers(url=server.url())
    wait_until(lambda: "backend unavailable" in _log_of(tmp_path), 20, "the outage to be seen")
    time.sleep(0.5)  # (several backoff rounds)
    assert worker.poll() is None, _log_of(tmp_path)

    _client(server).config_set("maxmemory", 0)
    wait_until(lambda: tiger.get_queue_stats() == {"default": {"error": 1}}, 20, "the queue")
    assert sorted(lines(ledger)[1::2]) == ["0", "1", "2"]
    _, (failed,) = Task.tasks_from_queue(tiger, "default", TaskState.ERROR, load_executions=1)
    assert "ChildProcessDied" in str(failed.executions[-1].exception_name)
    assert worker.poll() is None
    assert _stop(worker) == 0


def test_a_read_only_replica_is_an_outage_until_it_is_promoted(
    servers: Callable[[], RedisServer],
    workers: Callable[..., subprocess.Popen[bytes]],
    tmp_path: Path,
) -> None:
    primary, replica = servers(), servers()
    ledger = tmp_path / "ledger.txt"
    _tiger(primary.url()).enqueue_many(
        [TaskSpec.of(worker_tasks.record, str(ledger), str(n)) for n in range(3)]
    )
    _client(replica).replicaof("127.0.0.1", primary.port)
    wait_until(lambda: _client(replica).zcard("t:queued:default") == 3, 20, "replication")

    worker = workers(url=replica.url())  # as after a failover that left it pointing at a replica
    wait_until(lambda: "READONLY" in _log_of(tmp_path) or "read only" in _log_of(tmp_path), 20,
               "the replica's refusal")  # fmt: skip
    assert worker.poll() is None, _log_of(tmp_path)
    assert lines(ledger) == []

    _client(replica).replicaof("NO", "ONE")  # the failover completes: it is the primary now
    tiger = _tiger(replica.url())
    wait_until(lambda: tiger.get_queue_stats() == {}, 20, "the tasks to run on the new primary")
    assert sorted(lines(ledger)[1::2]) == ["0", "1", "2"]
    assert _stop(worker) == 0


def test_the_cli_gives_up_past_the_deadline_with_one_clear_line() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "typedtiger.cli", "worker", "--url", url,
         "--storage-retry-deadline", "1", "--exit-after", "idle"],
        cwd=REPO, capture_output=True, text=True, timeout=scaled(60), check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert time.monotonic() - started < scaled(30)
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: gave up on the storage after 1.")
    assert "storage_retry_deadline (1 s) passed" in last
    assert "Traceback" not in result.stderr


def test_the_cli_gives_up_past_the_deadline_when_running_for_good() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    result = subprocess.run(
        [sys.executable, "-m", "typedtiger.cli", "worker", "--url", url,
         "--storage-retry-deadline", "0.5"],
        cwd=REPO, capture_output=True, text=True, timeout=scaled(60), check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert "storage_retry_deadline (0.5 s) passed" in result.stderr.splitlines()[-1]


def _worker_on(url: str, deadline: float) -> tuple[Tiger, Worker]:
    config = Config(storage_retry_deadline=deadline, allowed_task_modules=("tests.worker_tasks",))
    tiger = _tiger(url, config)
    return tiger, Worker(tiger, executor=SyncExecutor())


class _InThread:
    """A worker's run() in a thread of the test; what it raised is in ``errors``."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.worker.run()
        except BaseException as exc:
            self.errors.append(exc)

    def stop(self, timeout: float) -> float:
        """Stop the worker and wait for run() to return; how long that took."""
        stopped = time.monotonic()
        self.worker.stop()
        self.thread.join(timeout=timeout)
        assert not self.thread.is_alive()
        return time.monotonic() - stopped


@pytest.fixture
def in_thread() -> Iterator[Callable[[Worker], _InThread]]:
    started: list[_InThread] = []

    def start(worker: Worker) -> _InThread:
        started.append(_InThread(worker))
        return started[-1]

    yield start
    for running in started:  # (a failed test's worker must not outlive it)
        running.worker.stop()
        running.thread.join(timeout=scaled(10))


def test_run_once_gives_up_past_the_deadline() -> None:
    _, worker = _worker_on(f"redis://127.0.0.1:{free_port()}/0", deadline=0.3)
    started = time.monotonic()
    with pytest.raises(StorageGaveUp):
        worker.run(once=True)
    assert time.monotonic() - started < scaled(5)


def test_a_stop_during_an_outage_returns_promptly(
    in_thread: Callable[[Worker], _InThread],
) -> None:
    _, worker = _worker_on(f"redis://127.0.0.1:{free_port()}/0", deadline=300)
    running = in_thread(worker)
    time.sleep(0.3)  # (in the outage's backoff)
    assert running.stop(timeout=scaled(10)) < scaled(1.0)
    assert running.errors == []  # nothing was in flight: a plain stop


def test_an_outcome_pending_at_a_stop_during_an_outage_is_given_up_on_after_the_grace(
    servers: Callable[[], RedisServer],
    in_thread: Callable[[Worker], _InThread],
    tmp_path: Path,
) -> None:
    server = servers()
    ledger = tmp_path / "ledger.txt"
    tiger, worker = _worker_on(server.url(), deadline=300)
    tiger.enqueue(TaskSpec.of(worker_tasks.record, str(ledger), "a", 0.5))
    running = in_thread(worker)
    wait_until(lambda: len(lines(ledger)) == 1, 20, "the task to start")
    server.stop()  # the outcome cannot be recorded
    assert running.stop(timeout=scaled(20)) < 0.5 + STOP_GRACE + scaled(1.5)
    assert lines(ledger)[-1] == "a"
    assert len(running.errors) == 1, running.errors
    assert isinstance(running.errors[0], StorageGaveUp), running.errors
    assert "a stop was requested" in str(running.errors[0])


# --- keys of another type under the prefix ------------------------------------------------


def _plant(backend: RedisBackend, state: TaskState, queue: str) -> str:
    """A list where a state's sorted set of ``queue`` belongs, named in the state's set (per
    queue: and in the registry); its name."""
    keys = layout(backend)
    backend.client.rpush(keys.state(state, queue), "junk")
    backend.client.sadd(keys.names(state, queue), queue)
    if keys.sharded:
        backend.client.sadd(keys.registry(), queue)
    return keys.state(state, queue)


def _dumps(backend: RedisBackend) -> dict[str, object]:
    return {key: backend.client.dump(key) for key in stored_keys(backend)}


def _sizes(tiger: Tiger, queue: str = "default") -> dict[TaskState, int]:
    return {state: n for state, n in tiger.get_queue_sizes(queue, with_errors=True).items() if n}


def test_a_scheduled_key_of_another_type_skips_its_queue_only(
    tiger: Tiger, backend: RedisBackend, clock: ManualClock
) -> None:
    tiger.enqueue(TaskSpec.of(tasks.simple, 1), when=timedelta(seconds=1))
    planted = _plant(backend, TaskState.SCHEDULED, "x")
    clock.advance(2)
    with pytest.raises(StorageDataError, match=re.escape(f"{planted} is a Redis list, not a zset")):
        backend.move_due_scheduled(clock.now(), 100)
    assert _sizes(tiger) == {TaskState.QUEUED: 1}  # the other queue's task moved all the same


def test_an_active_key_of_another_type_skips_its_queue_only_when_requeueing(
    tiger: Tiger, backend: RedisBackend, clock: ManualClock
) -> None:
    tiger.enqueue(TaskSpec.of(tasks.simple, 1))
    assert len(backend.claim("default", clock.now(), 10)) == 1
    planted = _plant(backend, TaskState.ACTIVE, "x")
    clock.advance(60)
    with pytest.raises(StorageDataError, match=re.escape(f"{planted} is a Redis list")):
        backend.requeue_expired(clock.now(), 20, 100, 3, "{}", 5)
    assert _sizes(tiger) == {TaskState.QUEUED: 1}


@pytest.mark.parametrize("state", ["queued", "active", "scheduled", "error"])
def test_a_claim_refuses_a_queue_with_a_key_of_another_type_before_any_change(
    tiger: Tiger, backend: RedisBackend, clock: ManualClock, state: str
) -> None:
    tiger.enqueue(TaskSpec.of(tasks.simple, 1).evolve(queue="x"))
    key = layout(backend).state(TaskState(state), "x")
    backend.client.delete(key)
    backend.client.rpush(key, "junk")
    before = _dumps(backend)
    with pytest.raises(StorageDataError, match=re.escape(f"{key} is a Redis list")):
        backend.claim("x", clock.now(), 10)
    assert _dumps(backend) == before


@pytest.mark.parametrize("which", ["the queue's sorted set", "the set of queue names"])
def test_an_enqueue_into_a_key_of_another_type_writes_nothing(
    tiger: Tiger, backend: RedisBackend, which: str
) -> None:
    keys = layout(backend)
    tiger.enqueue(TaskSpec.of(tasks.simple, 0).evolve(queue="y"))
    if keys.sharded:  # the registry names a queue before its first enqueue (docs/scaling.md)
        backend.client.sadd(keys.registry(), "x")
    key = keys.names(TaskState.QUEUED, "x")
    if which == "the queue's sorted set":
        key = keys.state(TaskState.QUEUED, "x")
    backend.client.delete(key)
    backend.client.rpush(key, "junk")
    before = _dumps(backend)
    refused = re.escape(f"'{key}' holds another type")
    with pytest.raises(StorageDataError, match=refused):
        tiger.enqueue(TaskSpec.of(tasks.simple, 1).evolve(queue="x"))
    assert _dumps(backend) == before
    with pytest.raises(StorageDataError, match=refused):
        tiger.enqueue_many(
            [
                TaskSpec.of(tasks.simple, 2).evolve(queue="y"),
                TaskSpec.of(tasks.simple, 3).evolve(queue="x"),
            ]
        )
    if not keys.sharded:
        assert _dumps(backend) == before
        return
    # Per queue, one call per queue, atomic per queue only (docs/scaling.md): y's task, named
    # first, is stored; nothing of x's is.
    assert tiger.get_queue_sizes("y")[TaskState.QUEUED] == 2
    others = keys.base("y") + ":"
    assert {k: v for k, v in _dumps(backend).items() if not k.startswith(others)} == {
        k: v for k, v in before.items() if not k.startswith(others)
    }


def test_an_enqueue_refused_twice_names_its_first_task_s_refusal(
    tiger: Tiger, backend: RedisBackend
) -> None:
    # A batch whose first task meets a key of another type and whose second a full queue is
    # refused for the first (the type of the first sorted set is checked by the first write).
    tiger.enqueue(TaskSpec.of(tasks.simple, 0).evolve(queue="full", max_queue_size=1))
    key = layout(backend).state(TaskState.QUEUED, "x")
    backend.client.rpush(key, "junk")
    with pytest.raises(StorageDataError, match=re.escape(f"'{key}' holds another type")):
        tiger.enqueue_many(
            [
                TaskSpec.of(tasks.simple, 1).evolve(queue="x"),
                TaskSpec.of(tasks.simple, 2).evolve(queue="full", max_queue_size=1),
            ]
        )
    assert backend.client.lrange(key, 0, -1) == ["junk"]
    assert _sizes(tiger, "full") == {TaskState.QUEUED: 1}


def test_a_failure_is_not_recorded_half_way_into_a_queue_with_a_key_of_another_type(
    tiger: Tiger, backend: RedisBackend, clock: ManualClock
) -> None:
    tiger.enqueue(TaskSpec.of(tasks.simple, 1).evolve(queue="x"))
    (claimed,) = backend.claim("x", clock.now(), 10)
    keys = layout(backend)
    backend.client.rpush(keys.state(TaskState.ERROR, "x"), "junk")
    failure = Failure(execution="{}", to_state=TaskState.ERROR, when=clock.now())
    refused = re.escape(f"{keys.state(TaskState.ERROR, 'x')} is a Redis list")
    with pytest.raises(StorageDataError, match=refused):
        backend.fail("x", [claimed.id], [], failure)
    active = keys.state(TaskState.ACTIVE, "x")
    assert backend.client.zscore(active, claimed.id) is not None  # still active


def test_a_worker_keeps_serving_other_queues_past_keys_of_another_type(
    redis_db: redis.Redis[str],
    workers: Callable[..., subprocess.Popen[bytes]],
    tmp_path: Path,
) -> None:
    tiger = Tiger(RedisBackend(redis_db), FAST)
    tiger.adopt(worker_tasks.tiger)
    ledger = tmp_path / "ledger.txt"
    for state, queue in [("scheduled", "s"), ("queued", "q"), ("active", "a"), ("error", "e")]:
        _plant(cast(RedisBackend, tiger.backend), TaskState(state), queue)
    tiger.enqueue(TaskSpec.of(worker_tasks.record, str(ledger), "a-task").evolve(queue="a"))
    poisoned = tiger.enqueue(TaskSpec.of(worker_tasks.record, str(ledger), "never"))
    redis_db.delete(f"t:task:{poisoned.id}")
    redis_db.rpush(f"t:task:{poisoned.id}", "junk")  # the task key itself of another type
    tiger.enqueue(TaskSpec.of(worker_tasks.record, str(ledger), "now"))
    tiger.enqueue(TaskSpec.of(worker_tasks.record, str(ledger), "later"), when=timedelta(seconds=1))

    worker = workers()  # at start the bad keys are met at once: it must not exit
    wait_until(lambda: {"now", "later"} <= set(lines(ledger)), 30, "the good tasks to run")
    time.sleep(1)  # (a few more passes over the bad keys)
    log = _log_of(tmp_path)
    assert worker.poll() is None, log
    assert "t:scheduled:s is a Redis list" in log and "t:active:a is a Redis list" in log
    assert "never" not in lines(ledger) and "a-task" not in lines(ledger)
    assert _sizes(tiger)[TaskState.ERROR] == 1  # the poisoned task, quarantined
    assert _stop(worker) == 0

    once = workers("--exit-after", "idle")
    assert once.wait(timeout=scaled(30)) == 0, _log_of(tmp_path, 1)


# --- a claim whose reply is lost ----------------------------------------------------------


def test_a_claim_sent_again_with_its_ticket_gets_the_same_tasks(
    tiger: Tiger, backend: RedisBackend, clock: ManualClock
) -> None:
    tiger.enqueue_many([TaskSpec.of(tasks.simple, n) for n in range(5)])
    ticket = ClaimTicket("worker-1", "7", remember_for=10)
    first = [item.id for item in backend.claim("default", clock.now(), 2, ticket=ticket)]
    clock.advance(1)
    again = backend.claim("default", clock.now(), 2, ticket=ticket)
    assert [item.id for item in again] == first
    assert all(item.payload is not None for item in again)
    for task_id in first:  # renewed: the heartbeat starts from the resend
        active = layout(backend).state(TaskState.ACTIVE, "default")
        assert backend.client.zscore(active, task_id) == clock.now()
    backend.complete(Completion("default", (first[0],)), backend.clock.now())
    assert [item.id for item in backend.claim("default", clock.now(), 2, ticket=ticket)] == [
        first[1]
    ]  # only what is still active
    fresh = backend.claim("default", clock.now(), 2, ticket=ClaimTicket("worker-1", "8", 10))
    assert len(fresh) == 2 and not {item.id for item in fresh} & set(first)
    assert _sizes(tiger) == {TaskState.QUEUED: 1, TaskState.ACTIVE: 3}


def test_a_claim_ticket_is_forgotten_after_its_time(
    tiger: Tiger, backend: RedisBackend, clock: ManualClock
) -> None:
    tiger.enqueue_many([TaskSpec.of(tasks.simple, n) for n in range(2)])
    ticket = ClaimTicket("worker-1", "7", remember_for=10)
    backend.claim("default", clock.now(), 1, ticket=ticket)
    assert 0 < backend.client.pttl(layout(backend).claim("default", "worker-1")) <= 10_000


class _LosesAClaimReply(redis.Connection):
    """Loses the reply (and its socket) of the next claim while ``armed``, once the script ran."""

    armed = False
    shas: ClassVar[set[bytes]] = {SHAS["claim"].encode(), SHAS["complete_claim"].encode()}

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        packed = b"".join(command) if isinstance(command, list) else command
        self._claiming = any(sha in packed[:100] for sha in self.shas)
        super().send_packed_command(command, check_health)

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        reply = super().read_response(*args, **kwargs)
        if type(self).armed and getattr(self, "_claiming", False):
            type(self).armed = False
            self.disconnect()
            raise redis.exceptions.ConnectionError("connection lost before the reply (test)")
        return reply


def test_a_worker_whose_claim_reply_is_lost_runs_the_claimed_tasks_at_once(
    redis_db: redis.Redis[str],
) -> None:
    pool = redis.ConnectionPool(
        connection_class=_LosesAClaimReply, **redis_db.connection_pool.connection_kwargs
    )
    client: redis.Redis[str] = redis.Redis(connection_pool=pool, decode_responses=True)
    _opened.append(client)
    tiger = Tiger(RedisBackend(client), Config(allowed_task_modules=("tests.tasks",)))
    tiger.enqueue_many([TaskSpec.of(tasks.simple, n) for n in range(3)])
    _LosesAClaimReply.armed = True

    Worker(tiger, executor=SyncExecutor()).run(once=True)

    assert not _LosesAClaimReply.armed  # a reply was lost
    assert sorted(str(call[1]) for call in tasks.CALLS) == ["0", "1", "2"]  # each once, at once
    assert _sizes(tiger) == {}  # none left active for the expiry requeue


def test_a_heartbeat_during_an_outage_is_a_warning_not_a_traceback() -> None:
    tiger = _tiger(f"redis://127.0.0.1:{free_port()}/0")
    worker = Worker(tiger, executor=SyncExecutor())
    beat = worker._claimed.beat("default", ["id"], [""], None, structlog.get_logger("test"))
    with structlog.testing.capture_logs() as logs:
        beat()  # must not raise: the executor's thread would log a traceback per beat
    assert [(entry["log_level"], entry["event"]) for entry in logs] == [
        ("warning", "heartbeat not recorded: backend unavailable")
    ]
    worker._backend.close()


@pytest.mark.parametrize("state", ["queued", "scheduled", "active"])
def test_a_set_of_queue_names_of_another_type_is_logged_and_a_run_once_still_ends(
    tiger: Tiger, backend: RedisBackend, clock: ManualClock, state: str
) -> None:
    key = layout(backend).names(TaskState(state), "default")
    if layout(backend).sharded:
        # Per queue a queue's set of names is read by its own scripts, once it holds a task in
        # the state (the registry is what finds the queue: see the test below).
        later = timedelta(seconds=1) if state == "scheduled" else None
        tiger.enqueue(TaskSpec.of(tasks.simple, 1), when=later)
        if state == "active":
            assert backend.claim("default", clock.now(), 1)
            clock.advance(3600)
    backend.client.delete(key)
    backend.client.rpush(key, "junk")
    _a_run_once_logs_and_ends(tiger, key)


def test_a_registry_of_queue_names_of_another_type_is_logged_and_a_run_once_still_ends(
    cluster_client: RedisCluster[str],
) -> None:
    # Per queue the registry is what finds the queues (docs/scaling.md).
    backend = RedisBackend(cluster_client, clock=ManualClock())
    tiger = Tiger(backend, Config(allowed_task_modules=("tests",)))
    tiger.enqueue(TaskSpec.of(tasks.simple, 1))
    backend.client.delete(layout(backend).registry())
    backend.client.rpush(layout(backend).registry(), "junk")
    _a_run_once_logs_and_ends(tiger, layout(backend).registry())


def _a_run_once_logs_and_ends(tiger: Tiger, key: str) -> None:
    with structlog.testing.capture_logs() as logs:
        tiger.run_worker(executor=SyncExecutor(), once=True)
    errors = [entry for entry in logs if entry["log_level"] == "error"]
    named = (f"{key} is a Redis list", f"(key {key})")
    assert errors and all(any(n in entry["error"] for n in named) for entry in errors), errors
    assert any(entry["event"] == "stopped" for entry in logs)


def test_waits_never_pass_the_max_wait() -> None:
    clock = _Time()
    outage = StorageOutage(
        300.0,
        structlog.get_logger("test"),
        max_wait=0.25,
        monotonic=lambda: clock.now,
        sleep=clock.sleep,
        jitter=lambda: 1.0,
    )
    waits = []
    for _ in range(5):
        before = clock.now
        outage.failed(BackendUnavailable("down"), lambda: False)
        waits.append(round(clock.now - before, 6))
    assert waits == [0.1, 0.2, 0.25, 0.25, 0.25]


def test_the_first_pass_after_an_outage_requeues_nothing() -> None:
    clock = ManualClock()
    backend = FakeBackend(clock)
    tiger = Tiger(backend, Config())
    tiger.enqueue(TaskSpec.of(tasks.simple, 1))
    backend.claim("default", clock.now(), 1)  # another worker's task
    clock.advance(60)  # its heartbeat as stale as everyone's after an outage
    worker = Worker(tiger, executor=SyncExecutor())
    worker._outage.failed(BackendUnavailable("down"), lambda: False)  # an outage goes on

    worker._maintain(force=True)  # the first pass that reaches storage again
    assert _sizes(tiger) == {TaskState.ACTIVE: 1}  # its owner gets a timeout to beat again

    worker._outage.succeeded()
    clock.advance(Config().active_task_update_timeout)
    worker._maintain(force=False)
    assert _sizes(tiger) == {TaskState.QUEUED: 1}
