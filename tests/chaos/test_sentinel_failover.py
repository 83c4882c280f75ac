"""A Sentinel-managed primary killed mid-run (SIGKILL), its replica promoted by the sentinel.

Workers on a redis+sentinel:// URL ride the failover out as an outage (connection errors, then
the sentinel's new primary) and go on; every task whose enqueue was acknowledged and had reached
the replica (WAIT, as docs/scaling.md says: replication is asynchronous, so a write acknowledged
by a primary that dies before passing it on is lost with it) runs, at least once.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests import chaos_tasks
from tests.chaos.conftest import Report
from tests.chaos.harness import Ledger, WorkerPool, error_details, measure, pending
from tests.redis_cluster import own_sentinel_setup, primary_port, sentinel_url
from tests.waiting import scaled, wait_until
from typedtiger import Config, TaskSpec, Tiger
from typedtiger.backends.redis import RedisBackend
from typedtiger.exceptions import BackendUnavailable

pytestmark = [pytest.mark.chaos, pytest.mark.redis, pytest.mark.timeout(300)]

QUEUE = "default"
WORKERS = 2
BOUND_S = scaled(60.0)


def test_workers_follow_a_sentinel_failover(tmp_path: Path, report: Report) -> None:
    ledger = Ledger(tmp_path / "ledger")
    with own_sentinel_setup(tmp_path / "redis") as (primary, replica, sentinel):
        url = sentinel_url(sentinel)
        backend = RedisBackend.from_url(url)
        tiger = Tiger(backend, Config(allowed_task_modules=("tests",)))
        before = [f"b{n}" for n in range(60)]
        tiger.enqueue_many(
            [TaskSpec.of(chaos_tasks.run, str(ledger.path), item, 0.05) for item in before]
        )
        assert backend.client.execute_command("WAIT", 1, 5000) == 1  # (on the replica)
        pool = WorkerPool(url, tmp_path)
        try:
            for _ in range(WORKERS):
                pool.start()
            started = time.monotonic()
            wait_until(lambda: len(ledger.ends()) >= 10, BOUND_S, "some tasks to finish")
            primary.kill()
            wait_until(lambda: primary_port(sentinel) == replica.port, BOUND_S, "a failover")
            after = [f"a{n}" for n in range(40)]
            while True:  # (the client finds the new primary once the sentinel names it)
                try:
                    tiger.enqueue_many(
                        [TaskSpec.of(chaos_tasks.run, str(ledger.path), i, 0.01) for i in after]
                    )
                    break
                except BackendUnavailable:
                    time.sleep(0.1)
            items = before + after
            while pending(tiger, QUEUE) != 0 and time.monotonic() - started < BOUND_S:
                time.sleep(0.1)
            drain_s = time.monotonic() - started
            exited = [p.returncode for p in pool.started if p.poll() is not None]
            codes = pool.stop_all()
            figures = measure("sentinel_failover", tiger, QUEUE, ledger, items, drain_s)
            report(figures)
            detail = f"{figures.line}\n{error_details(tiger, QUEUE)}\n{pool.log_tail()}"
            assert not exited, detail
            assert figures.lost == 0 and figures.stuck == 0 and figures.errors == 0, detail
            assert all(ledger.ends()[item] for item in items), detail
            assert codes == [0] * WORKERS, detail
        finally:
            pool.close()
