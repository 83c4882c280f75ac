"""The Redis server shut down mid-run (SHUTDOWN: the AOF is fsynced) and restarted after 2 s.

Workers must ride it out (log, back off, reconnect) without exiting, and record the outcome of
the tasks that ran during the outage once Redis is back. Duplicates are allowed (at-least-once):
a task running through the outage cannot refresh its heartbeat, so when Redis is back another
worker's requeue pass may find the heartbeat older than active_task_update_timeout and run the
task again; and a claim whose reply was lost with the connection leaves a task active with no
worker, which the requeue pass runs again.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests import chaos_tasks
from tests.chaos.conftest import Report
from tests.chaos.harness import Ledger, WorkerPool, error_details, measure, pending
from tests.redis_server import RedisServer
from tests.waiting import scaled, wait_until
from typedtiger import TaskSpec, Tiger
from typedtiger.exceptions import BackendUnavailable

pytestmark = [pytest.mark.chaos, pytest.mark.redis, pytest.mark.timeout(300)]

QUEUE = "default"
WORKERS = 3
OUTAGE_S = 2.0
BOUND_S = scaled(60.0)  # longer on a busy machine (tests/waiting.py)


def _pending_or_none(tiger: Tiger) -> int | None:
    try:
        return pending(tiger, QUEUE)
    except BackendUnavailable:
        return None


def test_redis_restart_mid_run(
    own_redis: RedisServer, own_tiger: Tiger, ledger: Ledger, tmp_path: Path, report: Report
) -> None:
    items = [f"r{n}" for n in range(150)]
    own_tiger.enqueue_many(
        [TaskSpec.of(chaos_tasks.run, str(ledger.path), item, 0.05) for item in items]
    )
    pool = WorkerPool(own_redis.url(), tmp_path)
    try:
        for _ in range(WORKERS):
            pool.start()
        started = time.monotonic()
        wait_until(lambda: len(ledger.ends()) >= len(items) // 3, BOUND_S, "a third to finish")
        own_redis.shutdown()
        time.sleep(OUTAGE_S)
        own_redis.start()
        while _pending_or_none(own_tiger) != 0 and time.monotonic() - started < BOUND_S:
            time.sleep(0.1)
        drain_s = time.monotonic() - started
        exited_during_run = [p.returncode for p in pool.started if p.poll() is not None]
        codes = pool.stop_all()
        figures = measure("redis_restart", own_tiger, QUEUE, ledger, items, drain_s)
        report(figures)
        detail = f"{figures.line}\n{error_details(own_tiger, QUEUE)}\n{pool.log_tail()}"
        assert not exited_during_run, detail
        assert figures.lost == 0 and figures.stuck == 0 and figures.errors == 0, detail
        assert codes == [0] * WORKERS, detail
        assert any("backend unavailable" in line for line in pool.log_tail(1000).splitlines())
    finally:
        pool.close()
