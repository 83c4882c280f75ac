"""An idle worker is quiet: it blocks on the activity channel instead of polling Redis."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import ClassVar

import redis

from tests import tasks
from tests.test_round_trips import CountingConnection
from tests.waiting import scaled, wait_until
from typedtiger import Config, TaskSpec, Tiger
from typedtiger.backends._scripts import SHAS
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
            RecordingConnection.scripts += [
                name for name, sha in SHAS.items() if sha.encode() in packed[:80]
            ]
        super().send_packed_command(command, check_health)


@contextmanager
def _running_worker(
    redis_db: redis.Redis[str],
    connection_class: type[redis.Connection],
    prefix: str,
    clock: ManualClock | None = None,
    exit_after: float | None = None,
) -> Iterator[Tiger]:
    """A sync worker serving ``prefix`` in a thread, its client sending through
    ``connection_class``; stopped and joined on exit. Pub/sub channels are server-wide, not
    per database: a prefix of its own keeps other tests' activity off this worker's channel."""
    kwargs = redis_db.connection_pool.connection_kwargs
    pool = redis.ConnectionPool(connection_class=connection_class, **kwargs)
    client: redis.Redis[str] = redis.Redis(connection_pool=pool, decode_responses=True)
    tiger = Tiger(
        RedisBackend(client, clock=clock), Config(prefix=prefix, allowed_task_modules=("tests",))
    )
    worker = Worker(tiger, executor=SyncExecutor(), exit_after=exit_after)
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        yield tiger
    finally:
        worker.stop()
        thread.join(timeout=10)


def _subscribers(client: redis.Redis[str], channel: str) -> int:
    ((_name, count),) = client.pubsub_numsub(channel)
    return int(count)


def _wait_until_quiet() -> None:
    """Until the worker has sent nothing for a while: it waits on the activity channel."""
    quiet_for = scaled(0.3)

    def quiet() -> bool:
        before = CountingConnection.sends
        time.sleep(quiet_for)
        return CountingConnection.sends == before

    wait_until(quiet, 30, "the worker to wait on its channel")


def _wait_for_a_call(timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not tasks.CALLS and time.monotonic() < deadline:
        time.sleep(0.01)


def test_idle_worker_makes_few_redis_calls_and_wakes_on_activity(
    redis_db: redis.Redis[str],
) -> None:
    with _running_worker(redis_db, CountingConnection, "idle", exit_after=30) as tiger:
        # This test measures a rate over real time, so it has to let real time pass: until the
        # worker has started (scripts loaded, channel subscribed), then 3 s of idling.
        wait_until(lambda: _subscribers(redis_db, "idle:activity") > 0, 30, "the worker")
        time.sleep(0.2)  # its first wait on the channel has begun
        CountingConnection.sends = 0
        started = time.monotonic()
        time.sleep(3)
        rate = CountingConnection.sends / (time.monotonic() - started)
        assert rate <= 2, f"an idle worker made {rate:.1f} Redis calls per second"

        woke = time.monotonic()
        tiger.enqueue(TaskSpec.of(tasks.simple, "wake up"))
        _wait_for_a_call(scaled(5))
        assert tasks.CALLS == [("simple", "wake up")]
        assert time.monotonic() - woke < scaled(0.5), (
            "the worker was not woken by the activity channel"
        )
    print(f"idle worker: {rate:.2f} Redis calls per second")


def test_the_task_that_wakes_a_worker_is_claimed_before_upkeep(
    redis_db: redis.Redis[str],
) -> None:
    clock = ManualClock()
    with _running_worker(redis_db, RecordingConnection, "wake", clock=clock) as tiger:
        # the worker starts and waits on the activity channel
        wait_until(lambda: _subscribers(redis_db, "wake:activity") > 0, 30, "the worker")
        _wait_until_quiet()  # (subscribed, it may still be in its first pass of upkeep)
        clock.advance(3600)  # every kind of upkeep is due now
        RecordingConnection.scripts = []
        tiger.enqueue(TaskSpec.of(tasks.simple, "wake up"))
        _wait_for_a_call(scaled(5))
        assert tasks.CALLS == [("simple", "wake up")]
        assert RecordingConnection.scripts[:2] == ["enqueue", "claim"]
