"""SIGTERM mid-task: the worker finishes the running task, records it, exits 0; it is restarted.

The signal goes to the worker alone, to its process group (a container's init, kill -TERM
-PGID) or to every process of it (systemd's KillMode=control-group): the task's child leaves
the stop to the worker in each case.

No worker is lost here (a first SIGTERM is a graceful stop), so no task may run twice: a
duplicate would mean the stopping worker dropped or re-released a task it had started.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time

import pytest

from tests import chaos_tasks
from tests.chaos.conftest import Report
from tests.chaos.harness import (
    STOP_TIMEOUT,
    Ledger,
    WorkerPool,
    descendants,
    error_details,
    measure,
    pending,
    worker_of,
)
from tests.waiting import scaled
from typedtiger import TaskSpec, Tiger

pytestmark = [pytest.mark.chaos, pytest.mark.redis, pytest.mark.timeout(300)]

QUEUE = "default"
WORKERS = 3
BOUND_S = scaled(90.0)  # longer on a busy machine (tests/waiting.py)
#: A worker with a pool of two long-lived children instead of a fork per task.
PREFORK: tuple[str, ...] = ("--executor", "prefork", "-c", "2")


def _busy_worker(pool: WorkerPool, ledger: Ledger) -> subprocess.Popen[bytes] | None:
    """A ready worker whose forked child is running a task right now."""
    by_pid = {process.pid: process for process in pool.alive() if pool.is_ready(process)}
    for mark in ledger.running():
        worker = worker_of(mark.pid, set(by_pid))
        if worker is not None:
            return by_pid[worker]
    return None


def _stop(worker: subprocess.Popen[bytes], to: str) -> None:
    if to == "worker":
        worker.send_signal(signal.SIGTERM)
    elif to == "process_group":
        os.killpg(worker.pid, signal.SIGTERM)
    else:
        for pid in [worker.pid, *descendants(worker.pid)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)


@pytest.mark.parametrize(
    ("to", "scenario", "executor"),
    [
        ("worker", "sigterm_mid_task", ()),
        ("process_group", "sigterm_process_group", ()),
        ("every_process", "sigterm_every_process", ()),
        ("every_process", "sigterm_every_process_prefork", PREFORK),
    ],
)
def test_sigterm_mid_task(
    tiger: Tiger,
    ledger: Ledger,
    pool: WorkerPool,
    report: Report,
    to: str,
    scenario: str,
    executor: tuple[str, ...],
) -> None:
    # Twice the tasks with two children per worker: the queue must last long enough for the
    # stops the scenario asserts.
    items = [f"s{n}" for n in range(120 if executor else 60)]
    tiger.enqueue_many(
        [TaskSpec.of(chaos_tasks.run, str(ledger.path), item, 0.3) for item in items]
    )
    for _ in range(WORKERS):
        pool.start(*executor)
    started = time.monotonic()
    exit_codes: list[int] = []
    while pending(tiger, QUEUE) and time.monotonic() - started < BOUND_S:
        time.sleep(0.5)
        worker = _busy_worker(pool, ledger)
        if worker is None:
            continue
        _stop(worker, to)
        exit_codes.append(worker.wait(timeout=STOP_TIMEOUT))
        pool.start(*executor)
    drain_s = time.monotonic() - started
    exit_codes += [code if code is not None else -1 for code in pool.stop_all()]

    figures = measure(scenario, tiger, QUEUE, ledger, items, drain_s)
    report(figures)
    detail = (
        f"{figures.line} sigterms={len(exit_codes) - WORKERS} exit_codes={exit_codes}\n"
        f"{error_details(tiger, QUEUE)}\n{pool.log_tail()}"
    )
    assert len(exit_codes) - WORKERS >= 5, detail
    assert figures.lost == 0 and figures.stuck == 0 and figures.errors == 0, detail
    assert figures.duplicated == 0, detail
    assert set(exit_codes) == {0}, detail
