"""Redis commands run per processed task and by an idle worker, as Redis counts them.

Counts are ``INFO commandstats`` deltas, so commands run inside Lua scripts are included (what
Redis spends CPU on, unlike the commands a client sends). Phases: N no-op tasks enqueued one by
one; one worker (fork executor) run until idle; then an idle worker process over ``--idle``
seconds, counted from 3 s after its start. Run it once per system, on a redis-server nothing
else uses (``CONFIG RESETSTAT`` and the counts are server-wide)::

    .venv/bin/python -m bench.commands ours --port 6503 [--n 200] [--idle 30] [--out F.json]
    <tasktiger venv>/bin/python -m bench.commands tasktiger --port 6503 [--n 200] [--idle 30]

``--out`` also writes the figures as JSON (bench.run does, on a redis-server of its own).

Keys under ``--prefix`` in ``--db`` are deleted first. The figures per task include the
worker's start and stop spread over N tasks (~0.1 command per task at N=200).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import redis

from bench import common, tasks

ROOT = Path(__file__).resolve().parent.parent
#: Commands the measurement itself sends.
OWN_COMMANDS = ("info", "config")


def command_counts(client: redis.Redis) -> Counter[str]:
    """Calls of each command since the last CONFIG RESETSTAT."""
    info = client.info("commandstats")
    return Counter({name.removeprefix("cmdstat_"): int(row["calls"]) for name, row in info.items()})


def difference(after: Counter[str], before: Counter[str]) -> Counter[str]:
    """What ran between two counts, without the measurement's own commands."""
    ran = Counter({name: after[name] - before.get(name, 0) for name in after})
    return Counter({n: c for n, c in ran.items() if c > 0 and n.split("|")[0] not in OWN_COMMANDS})


def show(title: str, ran: Counter[str], per: float, unit: str) -> None:
    print(f"{title}: {sum(ran.values()) / per:.2f} {unit}")
    for name, count in ran.most_common():
        print(f"    {name:<24} {count / per:8.3f}")


Phases = tuple[Counter[str], Counter[str], Counter[str], list[str]]


def typedtiger_phases(args: argparse.Namespace, client: redis.Redis) -> Phases:
    from typedtiger import Config, TaskSpec, Tiger
    from typedtiger.backends.redis import RedisBackend

    config = Config(prefix=args.prefix, allowed_task_modules=("bench.tasks",))
    tiger = Tiger(RedisBackend(client), config)
    tiger.enqueue(TaskSpec.of(tasks.noop))  # warm-up: scripts loaded, one task through
    tiger.run_worker(once=True)
    client.config_resetstat()
    start = command_counts(client)
    for _ in range(args.n):
        tiger.enqueue(TaskSpec.of(tasks.noop))
    enqueued = command_counts(client)
    tiger.run_worker(once=True)
    worked = command_counts(client)
    worker = [sys.executable, "-c", common.CONSOLE_SCRIPT, "worker", "-p", str(args.port)]
    worker += ["-n", str(args.db), "--prefix", args.prefix, "-m", "bench.tasks"]
    return start, enqueued, worked, worker


def tasktiger_phases(args: argparse.Namespace, client: redis.Redis) -> Phases:
    from tasktiger import TaskTiger, Worker

    config = {"REDIS_PREFIX": args.prefix, "DEFAULT_QUEUE": "default"}
    tiger = TaskTiger(connection=client, config=config, setup_structlog=True)
    tiger.delay(tasks.noop)
    Worker(tiger).run(once=True)
    client.config_resetstat()
    start = command_counts(client)
    for _ in range(args.n):
        tiger.delay(tasks.noop)
    enqueued = command_counts(client)
    Worker(tiger).run(once=True)
    worked = command_counts(client)
    code = (
        "import redis; from tasktiger import TaskTiger, Worker; "
        f"c = redis.Redis('127.0.0.1', {args.port}, {args.db}, decode_responses=True); "
        f"Worker(TaskTiger(connection=c, config={config!r}, setup_structlog=True)).run()"
    )
    return start, enqueued, worked, [sys.executable, "-c", code]


def idle_rate(client: redis.Redis, worker: list[str], seconds: float) -> Counter[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    process = subprocess.Popen(
        worker, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        time.sleep(3)  # past the worker's start
        before = command_counts(client)
        time.sleep(seconds)
        return difference(command_counts(client), before)
    finally:
        process.terminate()
        process.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("system", choices=["ours", "tasktiger"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--db", type=int, default=3)
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--idle", type=float, default=30)
    parser.add_argument("--prefix", default="cc")
    parser.add_argument("--out", default="", help="also write the figures here as JSON")
    args = parser.parse_args()
    client = redis.Redis("127.0.0.1", args.port, args.db, decode_responses=True)
    for key in client.scan_iter(f"{args.prefix}:*"):
        client.delete(key)
    phases: Callable[[argparse.Namespace, redis.Redis], Phases] = (
        typedtiger_phases if args.system == "ours" else tasktiger_phases
    )
    start, enqueued, worked, worker = phases(args, client)
    enqueue, work = difference(enqueued, start), difference(worked, enqueued)
    print(f"== {args.system}: {args.n} tasks")
    show("enqueue, commands per task", enqueue, args.n, "commands/task")
    show("worker, commands per task", work, args.n, "commands/task")
    idle: Counter[str] = Counter()
    if args.idle > 0:
        idle = idle_rate(client, worker, args.idle)
        show(f"idle worker over {args.idle:g} s", idle, args.idle, "commands/s")
    if args.out:
        figures = {
            "n": args.n,
            "enqueue_per_task": sum(enqueue.values()) / args.n,
            "worker_per_task": sum(work.values()) / args.n,
            "worker_by_command": {name: count / args.n for name, count in work.items()},
            "idle_seconds": args.idle,
            "idle_per_s": sum(idle.values()) / args.idle if args.idle > 0 else None,
            "idle_by_command": {name: count / args.idle for name, count in idle.items()},
        }
        Path(args.out).write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
