"""An idle worker is quiet: it blocks on the activity channel instead of polling Redis."""

from __future__ import annotations

import threading
import time

import redis

from tests import tasks
from tests.test_round_trips import CountingConnection
from typedtiger import Config, TaskSpec, Tiger
from typedtiger.backends.redis import RedisBackend
from typedtiger.executor import SyncExecutor
from typedtiger.worker import Worker


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
