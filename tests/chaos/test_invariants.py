"""Unique and lock invariants under 3 concurrent workers.

- A unique task never runs concurrently with itself, and enqueueing it again while it runs is
  not lost: a run of it begins after its last enqueue.
- lock=True tasks (lock_key over 5 keys) record their start and end; no two runs with the same
  key overlap, also while workers holding locks are SIGKILLed (their children die with them and
  the lock expires with the heartbeat).

Each run writes ``begin``/``end`` with its epoch time. A lock is taken before the child is forked
and released after the parent has recorded the outcome, so [begin, end] of a run lies inside
the time its lock was held: overlapping intervals with the same key mean broken exclusion.
"""

from __future__ import annotations

import random
import time
from collections import defaultdict

import pytest

from tests import chaos_tasks
from tests.chaos.conftest import Report
from tests.chaos.harness import (
    Figures,
    Ledger,
    WorkerPool,
    error_details,
    measure,
    overlaps,
    pending,
)
from tests.waiting import scaled
from typedtiger import TaskSpec, Tiger

pytestmark = [pytest.mark.chaos, pytest.mark.redis, pytest.mark.timeout(300)]

QUEUE = "default"
WORKERS = 3
ENQUEUE_FOR_S = 6.0
BOUND_S = scaled(60.0)  # longer on a busy machine (tests/waiting.py)


def _wait_drained(tiger: Tiger, started: float) -> float:
    while pending(tiger, QUEUE) and time.monotonic() - started < BOUND_S:
        time.sleep(0.05)
    return time.monotonic() - started


def test_unique_task_never_runs_concurrently_with_itself(
    tiger: Tiger, ledger: Ledger, pool: WorkerPool, report: Report
) -> None:
    for _ in range(WORKERS):
        pool.start()
    pool.wait_ready()
    keys = ["u0", "u1", "u2"]
    last_enqueued: dict[str, float] = {}
    enqueues = 0
    started = time.monotonic()
    while time.monotonic() - started < ENQUEUE_FOR_S:
        key = random.choice(keys)
        at = time.time()
        spec = TaskSpec.of(chaos_tasks.run_unique, str(ledger.path), key, 0.15)
        tiger.enqueue(spec.evolve(unique=True))
        last_enqueued[key] = at
        enqueues += 1
        time.sleep(0.02)
    drain_s = _wait_drained(tiger, started)
    codes = pool.stop_all()

    runs = ledger.intervals()
    # Unique tasks are merged, not counted: here "lost" is a key whose last enqueue was not
    # followed by a run, and "duplicated" a run that overlapped another run of the same task
    # (the invariant); both must be 0. Runs after a merge are expected and not counted.
    lost = [key for key in keys if not any(begin >= last_enqueued[key] for begin, _ in runs[key])]
    figures = Figures(
        scenario="unique_3_workers",
        tasks=enqueues,
        lost=len(lost),
        duplicated=sum(overlaps(runs[key]) for key in keys),
        stuck=pending(tiger, QUEUE),
        drain_s=drain_s,
    )
    report(figures)
    detail = (
        f"{figures.line} runs={ {key: len(runs[key]) for key in keys} } lost_keys={lost}\n"
        f"{error_details(tiger, QUEUE)}\n{pool.log_tail()}"
    )
    assert all(len(runs[key]) >= 3 for key in keys), detail
    assert figures.lost == 0 and figures.stuck == 0 and figures.duplicated == 0, detail
    assert codes == [0] * WORKERS, detail


def _lock_overlaps(ledger: Ledger) -> int:
    by_key: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for item, intervals in ledger.intervals().items():
        by_key[item.partition("@")[2]] += intervals
    return sum(overlaps(intervals) for intervals in by_key.values())


def _enqueue_locked(
    tiger: Tiger, ledger: Ledger, prefix: str, n_tasks: int, keys: int = 5, seconds: float = 0.1
) -> list[str]:
    specs = [
        TaskSpec.of(
            chaos_tasks.run_locked, str(ledger.path), f"{prefix}{n}", seconds, key=f"k{n % keys}"
        ).evolve(lock_key=["key"])
        for n in range(n_tasks)
    ]
    tiger.enqueue_many(specs)
    return [f"{prefix}{n}@k{n % keys}" for n in range(n_tasks)]


def test_lock_tasks_with_the_same_key_never_overlap(
    tiger: Tiger, ledger: Ledger, pool: WorkerPool, report: Report
) -> None:
    items = _enqueue_locked(tiger, ledger, "l", 60)
    for _ in range(WORKERS):
        pool.start()
    started = time.monotonic()
    drain_s = _wait_drained(tiger, started)
    codes = pool.stop_all()

    figures = measure("lock_3_workers", tiger, QUEUE, ledger, items, drain_s)
    report(figures)
    overlapping = _lock_overlaps(ledger)
    detail = f"{figures.line} overlaps={overlapping}\n{error_details(tiger, QUEUE)}"
    assert overlapping == 0, detail
    # No worker is lost, so no task runs twice.
    assert figures.lost == 0 and figures.stuck == 0 and figures.duplicated == 0, detail
    assert figures.errors == 0 and codes == [0] * WORKERS, detail


def test_lock_tasks_drain_with_default_timings(
    tiger: Tiger, ledger: Ledger, pool: WorkerPool, report: Report
) -> None:
    # More workers than keys: idle workers keep meeting busy locks. A claim that only met busy
    # locks makes a worker idle (as TaskTiger's): claiming on pushed every queued task of the
    # lock back to scheduled within milliseconds, to run one per scheduler pass.
    items = _enqueue_locked(tiger, ledger, "d", 40, keys=2, seconds=0.2)
    for _ in range(WORKERS):
        pool.start_cli()
    started = time.monotonic()
    drain_s = _wait_drained(tiger, started)
    codes = pool.stop_all()

    figures = measure("lock_default_timings", tiger, QUEUE, ledger, items, drain_s)
    report(figures)
    overlapping = _lock_overlaps(ledger)
    detail = f"{figures.line} overlaps={overlapping}\n{error_details(tiger, QUEUE)}"
    assert overlapping == 0, detail
    assert figures.lost == 0 and figures.stuck == 0 and figures.duplicated == 0, detail
    assert figures.errors == 0 and codes == [0] * WORKERS, detail


def test_lock_exclusion_holds_while_workers_are_killed(
    tiger: Tiger, ledger: Ledger, pool: WorkerPool, report: Report
) -> None:
    items = _enqueue_locked(tiger, ledger, "x", 60)
    for _ in range(WORKERS):
        pool.start()
    started = time.monotonic()
    kills = 0
    while pending(tiger, QUEUE) and time.monotonic() - started < BOUND_S:
        time.sleep(0.7)
        pool.kill(pool.pick())
        kills += 1
        pool.start()
    drain_s = _wait_drained(tiger, started)
    codes = pool.stop_all()

    # Duplicates are allowed (at-least-once): a worker killed after its child finished but
    # before it recorded the outcome leaves the task to be requeued and run again.
    figures = measure("lock_kill9", tiger, QUEUE, ledger, items, drain_s)
    report(figures)
    overlapping = _lock_overlaps(ledger)
    detail = f"{figures.line} kills={kills} overlaps={overlapping}\n{error_details(tiger, QUEUE)}"
    assert kills >= 3, detail
    assert overlapping == 0, detail
    assert figures.lost == 0 and figures.stuck == 0 and figures.errors == 0, detail
    assert codes == [0] * WORKERS, detail
