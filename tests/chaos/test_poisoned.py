"""Poisoned task data mixed with good tasks, under real worker processes (issue 17).

Every malformed payload and broken key of tests/test_poisoned_payloads.py is planted among good
tasks, half before the workers start and half while they run. No worker may exit, every good
task runs once, and every poisoned task ends in the error state with a PayloadError record
giving its reason.
"""

from __future__ import annotations

import time

import attrs
import pytest
import redis

from tests import chaos_tasks
from tests.chaos.conftest import Report
from tests.chaos.harness import Ledger, WorkerPool, error_details, measure, pending
from tests.test_poisoned_payloads import CASES, ID
from tests.waiting import scaled
from typedtiger import TaskSpec, Tiger
from typedtiger.serialization import decode_execution

pytestmark = [pytest.mark.chaos, pytest.mark.redis, pytest.mark.timeout(300)]

QUEUE = "default"
WORKERS = 3
GOOD = 60
BOUND_S = scaled(90.0)  # longer on a busy machine (tests/waiting.py)


def _plant(client: redis.Redis[str], number: int, case: str) -> str:
    data, keys, _ = CASES[case]
    task_id = f"{number:064x}"
    if isinstance(data, bytes):
        client.execute_command(
            "SET", f"t:task:{task_id}", data.replace(ID.encode(), task_id.encode())
        )
    elif isinstance(data, str):
        client.set(f"t:task:{task_id}", data.replace(ID, task_id))
    for suffix, write in keys.items():
        write(client, f"t:task:{task_id}{suffix}")
    client.zadd(f"t:queued:{QUEUE}", {task_id: time.time()})
    client.sadd("t:queued", QUEUE)
    client.publish("t:activity", QUEUE)
    return task_id


def test_poisoned_payloads_among_good_tasks(
    tiger: Tiger, chaos_redis: redis.Redis[str], ledger: Ledger, pool: WorkerPool, report: Report
) -> None:
    items = [f"g{n}" for n in range(GOOD)]
    cases = list(CASES)
    half = len(cases) // 2
    planted: dict[str, str] = {}
    for number, case in enumerate(cases[:half]):
        tiger.enqueue(TaskSpec.of(chaos_tasks.run, str(ledger.path), items[number], 0.02))
        planted[_plant(chaos_redis, number, case)] = case
    for _ in range(WORKERS):
        pool.start()
    started = time.monotonic()
    for number, case in enumerate(cases[half:], start=half):
        tiger.enqueue(TaskSpec.of(chaos_tasks.run, str(ledger.path), items[number], 0.02))
        planted[_plant(chaos_redis, number, case)] = case
    for item in items[len(cases) :]:
        tiger.enqueue(TaskSpec.of(chaos_tasks.run, str(ledger.path), item, 0.02))
    while pending(tiger, QUEUE) and time.monotonic() - started < BOUND_S:
        time.sleep(0.2)
    drain_s = time.monotonic() - started
    crashes = len(pool.started) - len(pool.alive())
    exit_codes = pool.stop_all()

    figures = attrs.evolve(
        measure("poisoned_payloads", tiger, QUEUE, ledger, items, drain_s),
        worker_crashes=crashes,
    )
    report(figures)
    detail = (
        f"{figures.line} exit_codes={exit_codes}\n{error_details(tiger, QUEUE)}\n{pool.log_tail()}"
    )
    assert figures.lost == 0 and figures.stuck == 0 and figures.duplicated == 0, detail
    assert crashes == 0 and set(exit_codes) == {0}, detail
    assert figures.errors == len(CASES), detail
    for task_id, case in planted.items():
        assert chaos_redis.zscore(f"t:error:{QUEUE}", task_id) is not None, case
        raw = chaos_redis.lrange(f"t:task:{task_id}:executions", 0, -1)
        (record,) = [decode_execution(item) for item in raw]
        assert record.exception_name == "typedtiger.exceptions:PayloadError", case
        assert record.exception is not None and CASES[case][2] in record.exception, case
