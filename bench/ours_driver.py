"""typedtiger's side of each measurement, run as a subprocess: ``python -m bench.ours_driver CMD``.

Commands: enqueue, enqueue-many, fill, count-worker, latency, executor-micro. Results go to --out
as JSON. Every client counts its round trips (bench.common.CountingConnection).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from typing import Any

from bench import common, tasks
from typedtiger import Config, TaskSpec, Tiger, Worker
from typedtiger.backends.redis import RedisBackend
from typedtiger.executor import Executor, ForkExecutor, PreforkExecutor, SyncExecutor
from typedtiger.logging import setup_structlog

DEFAULT_QUEUE = "default"


def _tiger(args: argparse.Namespace) -> Tiger:
    client = common.counting_client(args.host, args.port, args.db)
    backend = RedisBackend(client)
    # The worker runs only functions its allowlist vouches for: the bench's tasks are named
    # here as `-m bench.tasks` names them for the worker processes.
    config = Config(
        prefix=args.prefix, default_queue=DEFAULT_QUEUE, allowed_task_modules=("bench.tasks",)
    )
    tiger = Tiger(backend, config)
    common.learn_script_names(tiger.backend)
    return tiger


def _spec(args: argparse.Namespace, i: int) -> TaskSpec:
    spec = TaskSpec.of(tasks.noop)
    queue = common.queue_name(args, i, DEFAULT_QUEUE)
    return spec if queue == DEFAULT_QUEUE else spec.evolve(queue=queue)


def enqueue(args: argparse.Namespace) -> dict[str, Any]:
    tiger = _tiger(args)
    for _ in range(args.warmup):  # the first call loads the script (NOSCRIPT, SCRIPT LOAD)
        tiger.enqueue(TaskSpec.of(tasks.noop))
    common.CountingConnection.reset()

    def run() -> None:
        for _ in range(args.n):
            tiger.enqueue(TaskSpec.of(tasks.noop))

    seconds = common.profiled(run, args.profile)
    return {"n": args.n, "stored": args.n + args.warmup, "seconds": seconds, **common.counts()}


def enqueue_many(args: argparse.Namespace) -> dict[str, Any]:
    tiger = _tiger(args)
    tiger.enqueue(TaskSpec.of(tasks.noop))  # load the script outside the timing
    common.CountingConnection.reset()

    def run() -> None:
        tiger.enqueue_many([TaskSpec.of(tasks.noop) for _ in range(args.n)])

    seconds = common.profiled(run, args.profile)
    return {"n": args.n, "seconds": seconds, **common.counts()}


def fill(args: argparse.Namespace) -> dict[str, Any]:
    tiger = _tiger(args)
    chunk = 2000
    started = time.perf_counter()
    for start in range(0, args.n, chunk):
        tiger.enqueue_many([_spec(args, i) for i in range(start, min(args.n, start + chunk))])
    return {"n": args.n, "seconds": time.perf_counter() - started}


def count_worker(args: argparse.Namespace) -> dict[str, Any]:
    """Fill, then drain with an in-process worker on a counting client (like the CLI's)."""
    setup_structlog()  # as `typedtiger worker` does: JSON lines to stderr
    fill(args)
    tiger = _tiger(args)
    executors: dict[str, type[Executor]] = {
        "sync": SyncExecutor,
        "fork": ForkExecutor,
        "prefork": PreforkExecutor,
    }
    worker = Worker(
        tiger,
        queues=[args.queue_base] if args.queues > 0 else None,
        executor=executors[args.executor](),
        concurrency=args.concurrency,
    )
    common.CountingConnection.reset()
    seconds = common.profiled(lambda: worker.run(once=True), args.profile)
    return {"n": args.n, "queues": args.queues, "seconds": seconds, **common.counts()}


def latency(args: argparse.Namespace) -> dict[str, Any]:
    tiger = _tiger(args)

    def enqueue_one(path: str, at: float) -> None:
        tiger.enqueue(TaskSpec.of(tasks.stamp, path, at))

    return common.measure_latency(enqueue_one, args.path, args.n, args.gap)


def executor_micro(args: argparse.Namespace) -> dict[str, Any]:
    """Executors alone, no Redis: bare fork vs ForkExecutor vs SyncExecutor on a no-op Job."""
    import typedtiger.cli  # noqa: F401  (a worker process has all of this loaded)
    from typedtiger.executor import Job
    from typedtiger.worker.resolve import Resolver

    setup_structlog()
    tiger = _tiger(args)
    payload, queue = tiger.build(TaskSpec.of(tasks.noop))
    job = Job(queue=queue, func=payload.func, batch=False, hard_timeout=300.0, tasks=(payload,))
    run = Resolver(tiger).run_job
    fork, sync = ForkExecutor(), SyncExecutor()
    floor = subprocess.run(
        [sys.executable, "-m", "bench.forkfloor", str(args.n)],
        capture_output=True,
        text=True,
        check=True,
    )
    return {
        "bare_interpreter_fork": json.loads(floor.stdout),
        "rss_kib": common.rss_kib(),
        "bare_fork": common.timed(common.bare_fork, args.n),
        "fork_executor": common.timed(lambda: fork.start(job, run).wait(None), args.n),
        "sync_executor": common.timed(lambda: sync.start(job, run).wait(None), 5 * args.n),
    }


COMMANDS = {
    "executor-micro": executor_micro,
    "enqueue": enqueue,
    "enqueue-many": enqueue_many,
    "fill": fill,
    "count-worker": count_worker,
    "latency": latency,
}


def main() -> None:
    args = common.parser(__doc__ or "").parse_args()
    result = COMMANDS[args.command](args)
    result["python"] = sys.version.split()[0]
    common.write_result(args.out, result)


if __name__ == "__main__":
    main()
