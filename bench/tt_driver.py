"""TaskTiger's side of each measurement, run with TaskTiger's own virtualenv:
``<tasktiger-venv>/bin/python -m bench.tt_driver CMD`` (cwd = repository root).

Commands: enqueue, fill, count-worker, latency, executor-micro (TaskTiger has no enqueue_many).
Imports tasktiger, never typedtiger.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from typing import Any

import tasktiger
from tasktiger import TaskTiger, Worker
from tasktiger.executor import ForkExecutor, SyncExecutor

from bench import common, tasks

DEFAULT_QUEUE = "default"


def _tiger(args: argparse.Namespace, *, setup_structlog: bool = False) -> TaskTiger:
    client = common.counting_client(args.host, args.port, args.db)
    tiger = TaskTiger(
        connection=client,
        config={"REDIS_PREFIX": args.prefix, "DEFAULT_QUEUE": DEFAULT_QUEUE},
        setup_structlog=setup_structlog,
    )
    if setup_structlog:  # it sets TaskTiger's logger to DEBUG: both systems run at INFO here
        tiger.log.setLevel(logging.INFO)
    common.learn_script_names(tiger.scripts)
    return tiger


def enqueue(args: argparse.Namespace) -> dict[str, Any]:
    tiger = _tiger(args)
    for _ in range(args.warmup):  # the first call loads the script
        tiger.delay(tasks.noop)
    common.CountingConnection.reset()

    def run() -> None:
        for _ in range(args.n):
            tiger.delay(tasks.noop)

    seconds = common.profiled(run, args.profile)
    return {"n": args.n, "stored": args.n + args.warmup, "seconds": seconds, **common.counts()}


def fill(args: argparse.Namespace) -> dict[str, Any]:
    tiger = _tiger(args)
    started = time.perf_counter()
    for i in range(args.n):
        tiger.delay(tasks.noop, queue=common.queue_name(args, i, DEFAULT_QUEUE))
    return {"n": args.n, "seconds": time.perf_counter() - started}


def count_worker(args: argparse.Namespace) -> dict[str, Any]:
    """Fill, then drain with an in-process worker on a counting client (like the CLI's)."""
    fill(args)
    tiger = _tiger(args, setup_structlog=True)  # as the `tasktiger` command does
    executor_class = SyncExecutor if args.executor == "sync" else ForkExecutor
    worker = Worker(
        tiger,
        queues=[args.queue_base] if args.queues > 0 else None,
        executor_class=executor_class,
    )
    common.CountingConnection.reset()
    seconds = common.profiled(lambda: worker.run(once=True), args.profile)
    return {"n": args.n, "queues": args.queues, "seconds": seconds, **common.counts()}


def latency(args: argparse.Namespace) -> dict[str, Any]:
    tiger = _tiger(args)

    def enqueue_one(path: str, at: float) -> None:
        tiger.delay(tasks.stamp, args=[path, at])

    return common.measure_latency(enqueue_one, args.path, args.n, args.gap)


def executor_micro(args: argparse.Namespace) -> dict[str, Any]:
    """Executors alone, no Redis: bare fork vs ForkExecutor vs SyncExecutor on a no-op task."""
    from tasktiger.task import Task

    tiger = _tiger(args, setup_structlog=True)
    task = Task(tiger, tasks.noop)
    fork = Worker(tiger, executor_class=ForkExecutor)
    sync = Worker(tiger, executor_class=SyncExecutor)
    return {
        "rss_kib": common.rss_kib(),
        "bare_fork": common.timed(common.bare_fork, args.n),
        "fork_executor": common.timed(
            lambda: fork.executor.execute(DEFAULT_QUEUE, [task], fork.log, [], None), args.n
        ),
        "sync_executor": common.timed(
            lambda: sync.executor.execute(DEFAULT_QUEUE, [task], sync.log, [], None), 5 * args.n
        ),
    }


COMMANDS = {
    "executor-micro": executor_micro,
    "enqueue": enqueue,
    "fill": fill,
    "count-worker": count_worker,
    "latency": latency,
}


def main() -> None:
    args = common.parser(__doc__ or "").parse_args()
    result = COMMANDS[args.command](args)
    result["python"] = sys.version.split()[0]
    result["tasktiger"] = getattr(tasktiger, "__version__", "?")
    common.write_result(args.out, result)


if __name__ == "__main__":
    main()
