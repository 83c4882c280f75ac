"""A task claimed while every slot of a -c N worker is busy waits for one: it must not look lost."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import redis

from tests import worker_tasks
from tests.conftest import redis_client
from tests.waiting import scaled
from tests.worker_main import FAST
from typedtiger import TaskSpec, TaskState, Tiger
from typedtiger.backends.redis import RedisBackend
from typedtiger.executor import ForkExecutor


@pytest.mark.redis
@pytest.mark.slow
def test_a_task_waiting_for_a_free_slot_keeps_its_heartbeat(
    redis_db: redis.Redis[str], tmp_path: Path
) -> None:
    tiger = Tiger(RedisBackend(redis_db), FAST)
    ledger = tmp_path / "ledger"
    timeout = FAST.active_task_update_timeout
    # (each task outlasts the heartbeat timeout: the third, claimed while the first two run,
    # waits that long for a slot)
    for item in ("a", "b", "c"):
        tiger.enqueue(TaskSpec.of(worker_tasks.record, str(ledger), item, 1.5 * timeout))
    requeued: list[int] = []
    done = threading.Event()
    other_worker = RedisBackend(redis_client())

    def requeue_the_lost() -> None:  # what another worker's upkeep does meanwhile
        while not done.wait(0.1):
            now = tiger.clock.now()
            count, failed = other_worker.requeue_expired(now, timeout, 100, 3, "{}", 0.05)
            requeued.append(count + failed)

    upkeep = threading.Thread(target=requeue_the_lost)
    upkeep.start()
    try:
        tiger.run_worker(executor=ForkExecutor(), concurrency=2, once=True)
    finally:
        done.set()
        upkeep.join(scaled(10))
    assert sum(requeued) == 0, "a claimed task looked lost while it waited for a slot"
    finished = sorted(line for line in ledger.read_text().splitlines() if " " not in line)
    assert finished == ["a", "b", "c"]
    assert tiger.get_queue_sizes("default")[TaskState.ACTIVE] == 0
