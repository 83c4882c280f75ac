"""kill -9 storms: on worker parents, and separately on the forked children running tasks.

Duplicates are allowed in these scenarios because the guarantee is at-least-once:

- a parent killed after its child finished the task but before the parent recorded the outcome
  leaves the task active; its heartbeat stops and the task is requeued and runs again;
- a child killed after its task finished but before it reported is a failed execution
  (ChildProcessDied), and the retry policy runs the task again.

Nothing may be lost (every task finishes at least once) and nothing may stay stuck.
"""

from __future__ import annotations

import random
import time
from collections import Counter

import pytest

from tests import chaos_tasks
from tests.chaos.conftest import Report
from tests.chaos.harness import (
    Ledger,
    WorkerPool,
    error_details,
    kill_child_of,
    measure,
    pending,
    worker_of,
)
from tests.waiting import scaled, wait_until
from typedtiger import TaskSpec, Tiger, fixed
from typedtiger.exceptions import ChildProcessDied

pytestmark = [pytest.mark.chaos, pytest.mark.redis, pytest.mark.timeout(300)]

QUEUE = "default"
WORKERS = 3
#: The storm stops after this long even if tasks remain; the calm drain has its own bound.
STORM_BOUND_S = scaled(60.0)  # longer on a busy machine (tests/waiting.py)
DRAIN_BOUND_S = scaled(30.0)  # longer on a busy machine (tests/waiting.py)
MAX_KILLS_PER_TASK = 3


def _drain_calmly(tiger: Tiger) -> None:
    deadline = time.monotonic() + DRAIN_BOUND_S
    while pending(tiger, QUEUE) and time.monotonic() < deadline:
        time.sleep(0.1)


def test_kill9_storm_on_worker_parents(
    tiger: Tiger, ledger: Ledger, pool: WorkerPool, report: Report
) -> None:
    items = [f"p{n}" for n in range(200)]
    tiger.enqueue_many(
        [TaskSpec.of(chaos_tasks.run, str(ledger.path), item, 0.02) for item in items]
    )
    for _ in range(WORKERS):
        pool.start()
    started = time.monotonic()
    kills = 0
    while pending(tiger, QUEUE) and time.monotonic() - started < STORM_BOUND_S:
        # Every 0.4 s on average, not on a fixed grid: a fixed period can lock in phase with
        # the recovery timers (1 s heartbeat timeout, 0.3 s requeue pass), so that the last
        # task, requeued and claimed at the same point of every cycle, dies with its worker
        # again and again until the worker-loss bound fails it.
        time.sleep(random.uniform(0.2, 0.6))
        pool.kill(pool.pick())  # the child dies with it (PR_SET_PDEATHSIG)
        kills += 1
        pool.start()
    _drain_calmly(tiger)
    drain_s = time.monotonic() - started
    codes = pool.stop_all()

    figures = measure("kill9_parents", tiger, QUEUE, ledger, items, drain_s)
    report(figures)
    detail = f"{figures.line} kills={kills}\n{error_details(tiger, QUEUE)}\n{pool.log_tail()}"
    assert kills >= 5, detail
    assert figures.lost == 0 and figures.stuck == 0 and figures.errors == 0, detail
    assert codes == [0] * WORKERS, detail


@pytest.mark.parametrize(
    ("scenario", "executor"),
    [("kill9_children", ()), ("kill9_prefork_children", ("--executor", "prefork", "-c", "2"))],
)
def test_kill9_storm_on_forked_children(
    tiger: Tiger,
    ledger: Ledger,
    pool: WorkerPool,
    report: Report,
    scenario: str,
    executor: tuple[str, ...],
) -> None:
    """Children killed mid-task: one per task (fork) or long-lived pool children (prefork)."""
    items = [f"c{n}" for n in range(120)]
    # A killed child is a ChildProcessDied failure; the retry policy runs the task again.
    tiger.enqueue_many(
        [
            TaskSpec.of(chaos_tasks.run, str(ledger.path), item, 0.15).evolve(
                retry=fixed(0.1, 10), retry_on=[ChildProcessDied]
            )
            for item in items
        ]
    )
    for _ in range(WORKERS):
        pool.start(*executor)
    started = time.monotonic()
    kills: Counter[str] = Counter()
    while pending(tiger, QUEUE) and time.monotonic() - started < STORM_BOUND_S:
        time.sleep(0.25)
        parents = pool.pids()
        # At most MAX_KILLS_PER_TASK kills per task: near the end only a task or two run, and
        # killing the same one every time would exhaust any retry policy.
        children = [
            mark
            for mark in ledger.running()
            if kills[mark.item] < MAX_KILLS_PER_TASK and worker_of(mark.pid, parents) is not None
        ]
        if children:
            victim = random.choice(children)
            if kill_child_of(victim.pid, parents):
                kills[victim.item] += 1
    _drain_calmly(tiger)
    drain_s = time.monotonic() - started
    codes = pool.stop_all()

    figures = measure(scenario, tiger, QUEUE, ledger, items, drain_s)
    report(figures)
    total_kills = sum(kills.values())
    detail = f"{figures.line} kills={total_kills}\n{error_details(tiger, QUEUE)}\n{pool.log_tail()}"
    assert total_kills >= 5, detail
    assert figures.lost == 0 and figures.stuck == 0 and figures.errors == 0, detail
    # No worker was lost: every worker survived its children's deaths.
    assert codes == [0] * WORKERS, detail


def test_kill9_with_default_timings_requeues_within_30_s(
    tiger: Tiger, ledger: Ledger, pool: WorkerPool, report: Report
) -> None:
    """With the default Config (heartbeat every 5 s, expiry after 20 s, a requeue pass every
    5 s), a task whose worker was SIGKILLed runs again within 30 s."""
    tiger.enqueue(TaskSpec.of(chaos_tasks.run_slow_first_time, str(ledger.path), "d0"))
    first = pool.start_cli()
    wait_until(lambda: bool(ledger.marks()), 30, "the task to start")
    second = pool.start_cli()
    pool.wait_ready()
    first.kill()
    first.wait(timeout=30)
    killed_at = time.time()
    started = time.monotonic()
    wait_until(lambda: ledger.ends()["d0"] > 0, 60, "the task to run again")
    waited_s = min(mark.at for mark in ledger.marks() if mark.at > killed_at) - killed_at
    drain_s = time.monotonic() - started
    codes = pool.stop_all()

    figures = measure("kill9_default_timings", tiger, QUEUE, ledger, ["d0"], drain_s)
    report(figures)
    sizes = tiger.get_queue_sizes(QUEUE, with_errors=True)
    detail = f"{figures.line} waited_s={waited_s:.1f} sizes={sizes}\n{pool.log_tail()}"
    assert second.pid in {p.pid for p in pool.started}
    assert waited_s <= 30, detail
    assert figures.lost == 0 and figures.stuck == 0 and figures.duplicated == 0, detail
    assert codes == [0], detail
