"""An idle worker is quiet: it blocks on the activity channel instead of polling Redis."""

from __future__ import annotations

import threading
import time
from typing import ClassVar

import redis

from tests import tasks
from tests.test_round_trips import CountingConnection
from typedtiger import Config, TaskSpec, Tiger
from typedtiger.backends import redis as redis_backend
from typedtiger.backends.redis import RedisBackend
from typedtiger.clock import ManualClock
from typedtiger.executor import SyncExecutor
from typedtiger.worker import Worker


class RecordingConnection(CountingConnection):
    """Counts, and records the script each EVALSHA sent names."""

    scripts: ClassVar[list[str]] = []

    def send_packed_command(self, command: object, check_health: bool = True) -> None:
        packed = b"".join(command) if isinstance(command, list) else command
        if isinstance(packed, bytes) and b"EVALSHA" in packed[:40]:
            names = {sha: name for name, sha in redis_backend._SHAS.items()}
            RecordingConnection.scripts += [
                name for sha, name in names.items() if sha.encode() in packed[:80]
            ]
        super().send_packed_command(command, check_health)


def test_idle_worker_makes_few_redis_calls_and_wakes_on_activity(
    redis_db: redis.Redis[str],
) -> None:
    kwargs = redis_db.connection_pool.connection_kwargs
    pool = redis.ConnectionPool(connection_class=CountingConnection, **kwargs)
    # Pub/sub channels are server-wide, not per database: a prefix of its own keeps other
    # tests' activity off this worker's channel.
    client: redis.Redis[str] = redis.Redis(connection_pool=pool, decode_responses=True)
    tiger = Tiger(RedisBackend(client), Config(prefix="idle"))
    worker = Worker(tiger, executor=SyncExecutor(), exit_after=30)
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        # This test measures a rate over real time, so it has to let real time pass: 1.5 s for
        # the worker to start (load its scripts, subscribe), then 3 s of idling.
        time.sleep(1.5)
        CountingConnection.sends = 0
        started = time.monotonic()
        time.sleep(3)
        rate = CountingConnection.sends / (time.monotonic() - started)
        assert rate <= 2, f"an idle worker made {rate:.1f} Redis calls per second"

        woke = time.monotonic()
        tiger.enqueue(TaskSpec.of(tasks.simple, "wake up"))
        while not tasks.CALLS and time.monotonic() - woke < 5:
            time.sleep(0.01)
        assert tasks.CALLS == [("simple", "wake up")]
        assert time.monotonic() - woke < 0.5, "the worker was not woken by the activity channel"
    finally:
        worker.stop()
        thread.join(timeout=10)
    print(f"idle worker: {rate:.2f} Redis calls per second")


def test_the_task_that_wakes_a_worker_is_claimed_before_upkeep(
    redis_db: redis.Redis[str],
) -> None:
    kwargs = redis_db.connection_pool.connection_kwargs
    pool = redis.ConnectionPool(connection_class=RecordingConnection, **kwargs)
    client: redis.Redis[str] = redis.Redis(connection_pool=pool, decode_responses=True)
    clock = ManualClock()
    tiger = Tiger(RedisBackend(client, clock=clock), Config(prefix="wake"))
    worker = Worker(tiger, executor=SyncExecutor())
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        time.sleep(0.5)  # the worker starts and waits on the activity channel
        clock.advance(3600)  # every kind of upkeep is due now
        RecordingConnection.scripts = []
        tiger.enqueue(TaskSpec.of(tasks.simple, "wake up"))
        deadline = time.monotonic() + 5
        while not tasks.CALLS and time.monotonic() < deadline:
            time.sleep(0.01)
        assert tasks.CALLS == [("simple", "wake up")]
        assert RecordingConnection.scripts[:2] == ["enqueue", "claim"]
    finally:
        worker.stop()
        thread.join(timeout=10)
