"""The worker registry: each worker records itself with its running tasks, riding on calls it
makes anyway; ``Tiger.get_workers`` and ``typedtiger workers`` list the live ones."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import redis
from click.testing import CliRunner

from tests import observed_tasks
from tests.test_round_trips import CountingConnection
from typedtiger import RunningTask, TaskSpec, Tiger, WorkerInfo
from typedtiger._worker_info import decode_worker_info, encode_worker_info
from typedtiger.backends._scripts import SOURCES
from typedtiger.backends.redis import RedisBackend
from typedtiger.cli import main
from typedtiger.clock import ManualClock
from typedtiger.exceptions import PayloadError
from typedtiger.executor import SyncExecutor
from typedtiger.worker import Worker
from typedtiger.worker.registry import WorkerRecord


@pytest.fixture(autouse=True)
def _no_hooks() -> Iterator[None]:
    yield
    observed_tasks.HOOKS.clear()


def _at(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


def _info(worker_id: str = "w1", **changes: object) -> WorkerInfo:
    fields: dict[str, object] = {
        "id": worker_id,
        "host": "host-a",
        "pid": 4321,
        "queues": ("email",),
        "exclude_queues": ("email.bulk",),
        "executor": "ForkExecutor",
        "concurrency": 4,
        "started": _at(1000.0),
        "last_beat": _at(1000.0),
        **changes,
    }
    return WorkerInfo(**fields)  # type: ignore[arg-type]


def test_a_worker_lists_itself_and_the_task_it_runs_then_leaves_when_it_stops(
    tiger: Tiger, clock: ManualClock
) -> None:
    worker = Worker(tiger, queues=["default"], executor=SyncExecutor())
    seen: list[list[WorkerInfo]] = []

    def look() -> None:
        seen.append(tiger.get_workers())  # the beat before the claim: no task yet
        clock.advance(tiger.config.active_task_update_timer)
        worker.heartbeats.beat_now()  # the next beat carries the record
        seen.append(tiger.get_workers())

    observed_tasks.HOOKS.append(look)
    task = tiger.enqueue(TaskSpec.of(observed_tasks.call_hooks))
    started = clock.now()
    worker.run(once=True)

    before, during = seen
    assert [info.tasks for info in before] == [()]
    (info,) = during
    assert info.id == worker.id
    assert info.pid == os.getpid()
    assert (info.queues, info.exclude_queues) == (("default",), ())
    assert (info.executor, info.concurrency) == ("SyncExecutor", 1)
    assert info.started == _at(started)
    assert info.last_beat == _at(started + tiger.config.active_task_update_timer)
    func = "tests.observed_tasks:call_hooks"
    assert info.tasks == (
        RunningTask(id=task.id, queue="default", func=func, started=_at(started)),
    )
    assert tiger.get_workers() == []  # a worker that stops takes itself out


def test_a_worker_that_stops_beating_disappears_by_itself(tiger: Tiger, clock: ManualClock) -> None:
    timeout = tiger.config.active_task_update_timeout
    timer = tiger.config.active_task_update_timer
    dead = WorkerRecord(_info("dead"), clock.now, period=timer, expires_after=timeout)
    alive = WorkerRecord(_info("alive"), clock.now, period=timer, expires_after=timeout)
    tiger.backend.move_due_scheduled(clock.now(), 10, beat=dead.beat())
    tiger.backend.move_due_scheduled(clock.now(), 10, beat=alive.beat())
    assert [info.id for info in tiger.get_workers()] == ["alive", "dead"]  # started, then id

    clock.advance(timer)
    tiger.backend.heartbeat("q", [], [], clock.now(), timeout, beat=alive.beat())
    clock.advance(timeout - timer)  # "dead" beat `timeout` ago: still counted
    assert [info.id for info in tiger.get_workers()] == ["alive", "dead"]
    clock.advance(0.001)
    assert [info.id for info in tiger.get_workers()] == ["alive"]
    assert alive.beat() is not None  # (due again)


def test_a_beat_is_written_at_most_once_per_heartbeat_period(clock: ManualClock) -> None:
    record = WorkerRecord(_info(), clock.now, period=5.0, expires_after=20.0)
    assert record.beat() is not None
    assert record.beat() is None
    clock.advance(4.9)
    assert record.beat() is None
    clock.advance(0.1)
    beat = record.beat()
    assert beat is not None
    assert (beat.worker_id, beat.now, beat.expires_after) == ("w1", clock.now(), 20.0)
    assert decode_worker_info(beat.record).last_beat == _at(clock.now())


def test_a_beat_rides_on_the_upkeep_round_trip(redis_db: redis.Redis[str]) -> None:
    kwargs = redis_db.connection_pool.connection_kwargs
    pool = redis.ConnectionPool(connection_class=CountingConnection, **kwargs)
    client: redis.Redis[str] = redis.Redis(connection_pool=pool, decode_responses=True)
    clock = ManualClock()
    backend = RedisBackend(client, clock=clock)
    record = WorkerRecord(_info(), clock.now, period=5.0, expires_after=20.0)
    backend.move_due_scheduled(clock.now(), 10)  # loads the script
    CountingConnection.sends = 0
    backend.move_due_scheduled(clock.now(), 10, beat=record.beat())
    assert CountingConnection.sends == 1
    assert backend.workers(clock.now() - 20.0) == [
        encode_worker_info(_info(last_beat=_at(clock.now())))
    ]
    client.close()


def test_a_beat_sent_before_the_script_is_loaded_still_runs_it(redis_db: redis.Redis[str]) -> None:
    redis_db.script_flush()
    try:
        clock = ManualClock()
        backend = RedisBackend(redis_db, clock=clock)
        record = WorkerRecord(_info(), clock.now, period=5.0, expires_after=20.0)
        assert backend.move_due_scheduled(clock.now(), 10, beat=record.beat()) == 0
        assert len(backend.workers(clock.now() - 20.0)) == 1
    finally:  # other tests count the commands of a life cycle with the scripts loaded
        for source in SOURCES.values():
            redis_db.script_load(source)  # type: ignore[no-untyped-call]


def test_worker_records_round_trip_and_a_broken_one_is_named() -> None:
    info = _info(tasks=(RunningTask(id="t1", queue="q", func="m:f", started=_at(1001.5)),))
    assert decode_worker_info(encode_worker_info(info)) == info
    for broken in (
        "{",
        "[]",
        '{"id": 1}',
        encode_worker_info(info).replace('"pid":4321', '"pid":"x"'),
    ):
        with pytest.raises(PayloadError, match=r"worker record .* is unreadable"):
            decode_worker_info(broken)
    with pytest.raises(ValueError, match="timezone-aware"):
        _info(started=datetime(2026, 1, 1))


def test_the_workers_command_lists_live_workers(tiger: Tiger, clock: ManualClock) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["workers"], obj=tiger)
    assert result.exit_code == 0, result.output
    assert result.output == "No live worker.\n"

    task = RunningTask(id="t1", queue="q", func="m:f\x1b[31m", started=_at(clock.now()))
    record = WorkerRecord(_info(host="h\x1b]0;x\x07"), clock.now, period=5.0, expires_after=20.0)
    record.job_started("a job", [task])
    tiger.backend.move_due_scheduled(clock.now(), 10, beat=record.beat())
    result = runner.invoke(main, ["workers"], obj=tiger)
    assert result.exit_code == 0, result.output
    header, row = result.output.splitlines()
    assert header.split() == [
        "ID",
        "HOST",
        "PID",
        "QUEUES",
        "EXECUTOR",
        "C",
        "STARTED",
        "LAST",
        "BEAT",
        "TASKS",
    ]
    assert "\x1b" not in result.output and "\x07" not in result.output
    assert row.split()[:6] == [
        "w1",
        "h\\x1b]0;x\\x07",
        "4321",
        "email",
        "-email.bulk",
        "ForkExecutor",
    ]
    assert row.endswith("1: m:f\\x1b[31m")

    result = runner.invoke(main, ["workers", "--json"], obj=tiger)
    assert result.exit_code == 0, result.output
    (shown,) = json.loads(result.output)["workers"]
    assert shown["host"] == "h\x1b]0;x\x07"  # JSON escapes it
    assert "\x1b" not in result.output
    assert shown["tasks"] == [
        {"id": "t1", "queue": "q", "func": "m:f\x1b[31m", "started": _at(clock.now()).isoformat()}
    ]
    assert (shown["pid"], shown["concurrency"], shown["executor"]) == (4321, 4, "ForkExecutor")
