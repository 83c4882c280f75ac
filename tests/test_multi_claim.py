"""Multi-task claims, on every backend: a worker with N free slots claims up to N tasks of a
non-batch queue in one claim, each run as a job of its own; what a lost worker claimed that way
is requeued whole, ``-M`` still limits, and a stop runs or returns each claimed task."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests import async_tasks
from tests.conftest import REDIS_URL
from tests.test_round_trips import CountingConnection, _counting_tiger
from tests.waiting import scaled, wait_until
from tests.worker_main import FAST
from typedtiger import Config, TaskState, Tiger, Worker
from typedtiger.backends.base import Claims, ClaimTicket, Completion
from typedtiger.backends.redis import RedisBackend
from typedtiger.clock import ManualClock
from typedtiger.executor import AsyncioExecutor
from typedtiger.worker.events import Ended
from typedtiger.worker.executor import ExecutorSettings, RunJob, Running
from typedtiger.worker.job import Job

MODULES = ("tests.async_tasks", "tests.tasks")
REPO = Path(__file__).resolve().parent.parent
TIMEOUT = 20


@pytest.fixture
def app(backend: RedisBackend) -> Tiger:
    config = Config(
        allowed_task_modules=MODULES, active_task_update_timeout=TIMEOUT, active_task_update_timer=5
    )
    tiger = Tiger(backend, config)
    tiger.adopt(async_tasks.tiger)
    return tiger


@pytest.fixture
def executor() -> Iterator[AsyncioExecutor]:
    executor = AsyncioExecutor()
    yield executor
    executor.close()


@pytest.fixture
def claims(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """Each claim a worker makes: (how many tasks it asked for, how many it got)."""
    made: list[tuple[int, int]] = []
    claim = RedisBackend.claim

    def counted(
        self: RedisBackend,
        queue: str,
        now: float,
        limit: int,
        lock_retry: float = 1.0,
        done: Completion | None = None,
        ticket: ClaimTicket | None = None,
    ) -> Claims:
        got = claim(self, queue, now, limit, lock_retry, done, ticket)
        made.append((limit, len(got)))
        return got

    monkeypatch.setattr(RedisBackend, "claim", counted)
    return made


def test_one_claim_takes_a_task_for_each_free_slot(
    app: Tiger, executor: AsyncioExecutor, claims: list[tuple[int, int]], tmp_path: Path
) -> None:
    count = 6  # each waits for all the others: they run side by side
    for n in range(count):
        app.enqueue(async_tasks.meet.spec(str(tmp_path), f"task-{n}", count))

    app.run_worker(executor=executor, concurrency=8, once=True)

    assert claims == [(8, count)]
    assert len(list(tmp_path.iterdir())) == count
    assert app.get_queue_stats() == {}


def test_a_claim_takes_no_more_than_the_free_slots(
    app: Tiger, executor: AsyncioExecutor, claims: list[tuple[int, int]], tmp_path: Path
) -> None:
    for n in range(7):
        app.enqueue(async_tasks.touch.spec(str(tmp_path / f"t{n}")))

    app.run_worker(executor=executor, concurrency=3, once=True)

    assert claims[0] == (3, 3)
    assert all(1 <= asked <= 3 and got <= asked for asked, got in claims)
    assert sum(got for _, got in claims) == 7
    assert len(list(tmp_path.iterdir())) == 7
    assert app.get_queue_stats() == {}


def test_a_batch_function_in_a_plain_queue_runs_one_task_a_job(
    app: Tiger, executor: AsyncioExecutor, claims: list[tuple[int, int]], tmp_path: Path
) -> None:
    paths = [tmp_path / name for name in "abc"]
    for path in paths:
        app.enqueue(async_tasks.batch_touch.spec(str(path), "batch"))

    app.run_worker(executor=executor, concurrency=5, once=True)

    assert claims == [(5, 3)]
    assert [p.read_text() for p in paths] == ["batch of 1"] * 3


def test_a_batch_queue_keeps_its_batch_size(
    backend: RedisBackend,
    executor: AsyncioExecutor,
    claims: list[tuple[int, int]],
    tmp_path: Path,
) -> None:
    tiger = Tiger(backend, Config(batch_queues={"default": 2}, allowed_task_modules=MODULES))
    tiger.adopt(async_tasks.tiger)
    paths = [tmp_path / name for name in "abcd"]
    for path in paths:
        tiger.enqueue(async_tasks.batch_touch.spec(str(path), "batch"))

    tiger.run_worker(executor=executor, concurrency=5, once=True)

    assert [asked for asked, _ in claims] == [2] * len(claims)
    assert [p.read_text() for p in paths] == ["batch of 2"] * 4


class _Dies(BaseException):
    """What the worker's process meets in these tests instead of a SIGKILL."""


class _DiesAtFirstStart:
    """An executor whose worker is killed once its claim has moved tasks to active, before
    any of them started: the worker does nothing more (no heartbeat, no record, no release)."""

    side_by_side = True

    def bind(self, settings: ExecutorSettings) -> None:
        pass

    def start(self, job: Job, run: RunJob) -> Running:
        raise _Dies

    def close(self) -> None:
        pass


def test_what_a_lost_worker_claimed_at_once_is_requeued_whole(
    app: Tiger,
    executor: AsyncioExecutor,
    clock: ManualClock,
    claims: list[tuple[int, int]],
    tmp_path: Path,
) -> None:
    paths = [tmp_path / f"t{n}" for n in range(5)]
    for path in paths:
        app.enqueue(async_tasks.touch.spec(str(path)))

    with pytest.raises(_Dies):
        app.run_worker(executor=_DiesAtFirstStart(), concurrency=10, once=True)
    assert claims == [(10, 5)]
    assert app.get_queue_sizes("default")[TaskState.ACTIVE] == 5

    clock.advance(TIMEOUT - 1)  # not lost yet
    app.run_worker(executor=executor, concurrency=10, once=True)
    assert app.get_queue_sizes("default")[TaskState.ACTIVE] == 5

    clock.advance(2)  # past the heartbeat timeout: every one of them is requeued, and runs
    app.run_worker(executor=executor, concurrency=10, once=True)
    assert [p.read_text() for p in paths] == ["ran"] * 5
    assert app.get_queue_stats() == {}


def test_max_workers_per_queue_still_claims_one_task_a_slot(
    app: Tiger, executor: AsyncioExecutor, claims: list[tuple[int, int]], tmp_path: Path
) -> None:
    for n in range(3):
        app.enqueue(async_tasks.slow_touch.spec(str(tmp_path / f"t{n}"), 0.05))
    started: list[float] = []
    ended: list[float] = []

    class Times:
        def job_started(self, job: Job, now: float, attempt: int) -> Ended:
            started.append(len(started) - len(ended))  # jobs running when this one starts
            return lambda _end: ended.append(now)

        def tasks_lost(self, requeued: int, failed: int) -> None:
            pass

    worker = Worker(
        app, executor=executor, concurrency=5, max_workers_per_queue=1, listeners=[Times()]
    )
    worker.run(once=True)

    assert claims == [(1, 1)] * 3  # one slot of the queue's limit: one task a claim
    assert started == [0, 0, 0]  # each started after the one before had ended
    assert len(ended) == 3


def test_a_stop_runs_or_returns_each_claimed_task(
    app: Tiger, executor: AsyncioExecutor, claims: list[tuple[int, int]], tmp_path: Path
) -> None:
    paths = [tmp_path / f"t{n}" for n in range(4)]
    for path in paths:
        app.enqueue(async_tasks.slow_touch.spec(str(path), 0.05))
    jobs: list[Job] = []

    class StopAtFirst:
        def job_started(self, job: Job, now: float, attempt: int) -> None:
            jobs.append(job)
            worker.stop()  # (a SIGTERM here: the worker's handler does just this)

        def tasks_lost(self, requeued: int, failed: int) -> None:
            pass

    worker = Worker(app, executor=executor, concurrency=4, listeners=[StopAtFirst()])
    worker.run()

    assert claims == [(4, 4)]
    assert len(jobs) == 1  # the first job was run to its end; the other three went back to queued
    assert sum(p.exists() for p in paths) == 1
    assert app.get_queue_stats() == {"default": {TaskState.QUEUED: 3}}

    app.run_worker(executor=executor, concurrency=4, once=True)
    assert [p.read_text() for p in paths] == ["finished"] * 4


def test_an_outcome_is_recorded_once_with_many_claimed(
    app: Tiger, executor: AsyncioExecutor, claims: list[tuple[int, int]]
) -> None:
    tasks = [app.enqueue(async_tasks.double.spec(n)) for n in range(10)]

    app.run_worker(executor=executor, concurrency=10, once=True)

    assert claims == [(10, 10)]
    assert [task.result(timeout=0) for task in tasks] == [2 * n for n in range(10)]
    assert app.get_queue_stats() == {}


def test_one_claim_of_many_tasks_is_one_round_trip(
    redis_db: redis.Redis[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    tiger = _counting_tiger(redis_db)
    tiger.adopt(async_tasks.tiger)
    per_claim: list[tuple[int, int]] = []  # (tasks claimed, round trips it took)
    claim = RedisBackend.claim

    def counted(
        self: RedisBackend, queue: str, now: float, limit: int, *args: Any, **kwargs: Any
    ) -> Claims:
        before = CountingConnection.sends
        got = claim(self, queue, now, limit, *args, **kwargs)
        per_claim.append((len(got), CountingConnection.sends - before))
        return got

    monkeypatch.setattr(RedisBackend, "claim", counted)
    for n in range(2):  # (loads the scripts, complete_claim included)
        tiger.enqueue(async_tasks.touch.spec(str(tmp_path / f"first-{n}")))
        tiger.run_worker(executor=AsyncioExecutor(), concurrency=20, once=True)
    per_claim.clear()
    for n in range(20):
        tiger.enqueue(async_tasks.touch.spec(str(tmp_path / f"{n}")))

    tiger.run_worker(executor=AsyncioExecutor(), concurrency=20, once=True)

    assert per_claim == [(20, 1)]  # before: twenty claims of one task, a round trip each
    assert len(list(tmp_path.iterdir())) == 22
    assert not redis_db.keys("t:*")


@pytest.mark.redis
@pytest.mark.timeout(120)
def test_tasks_a_sigkilled_worker_claimed_together_all_run_again(
    redis_db: redis.Redis[str], tmp_path: Path
) -> None:
    tiger = Tiger(RedisBackend(redis_db), FAST)
    paths = [tmp_path / f"t{n}" for n in range(5)]
    for path in paths:
        tiger.enqueue(async_tasks.slow_touch.spec(str(path), 1.0))

    def worker() -> subprocess.Popen[bytes]:
        command = [sys.executable, "-m", "tests.worker_main", REDIS_URL, "--executor", "asyncio"]
        with open(tmp_path / "worker.log", "ab") as log:
            return subprocess.Popen(
                [*command, "-c", "10"], cwd=REPO, stdout=log, stderr=subprocess.STDOUT
            )

    first = worker()
    try:
        wait_until(lambda: all(Path(f"{p}.started").exists() for p in paths), 30, "the starts")
        first.kill()  # all five running, claimed together: none finished
    finally:
        first.kill()
        first.wait(timeout=scaled(10))
    assert not any(p.exists() for p in paths)
    assert tiger.get_queue_sizes("default")[TaskState.ACTIVE] == 5

    second = worker()
    try:
        wait_until(lambda: all(p.exists() for p in paths), 30, "the tasks to run again")
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=scaled(10)) == 0
    finally:
        second.kill()
        second.wait(timeout=scaled(10))
    assert tiger.get_queue_stats() == {}
