"""Throughput on one Redis and on a 3-primary Redis Cluster, in both cluster layouts
(docs/scaling.md, "Throughput: 1 and 3 shards").

Three setups on servers this script starts on loopback (and stops): ``single``, one
redis-server with the classic layout (prefix ``t``); ``one-slot``, a 3-primary cluster with the
hash-tagged prefix ``{t}`` (every key in one slot, so on one shard); ``per-queue``, the same
cluster with the plain prefix ``t`` (each queue in a slot of its own, queues spread over the
shards). Each repetition measures every setup in turn (the order rotating from one repetition to
the next, so that a change in the machine's load falls on all of them), each measurement:

1. every node flushed, ``CONFIG RESETSTAT`` on each;
2. ``--tasks`` no-op tasks (``bench.tasks:noop``) over ``--queues`` queues enqueued from this
   process with ``enqueue_many`` in chunks of ``--chunk`` (each chunk sorted by queue: per queue,
   that is one script call per queue and chunk); ``INFO commandstats`` and ``INFO cpu`` of each
   node;
3. ``--workers`` workers (``typedtiger worker --executor sync --exit-after idle -m bench.tasks``)
   started at once; the time from their start to the last one's exit, their CPU time, and
   ``INFO commandstats`` and ``INFO cpu`` of each node again. Every task must have run (the
   queues are checked empty).

Printed per setup: tasks/s (median and range over the repetitions), the workers' start to exit
on empty queues, and per task for each node the commands it ran while enqueueing and while
working (``INFO commandstats`` deltas: commands inside Lua scripts included; the script's own
INFO/CONFIG excluded) and its CPU time while working (``used_cpu_user + used_cpu_sys``)::

    TYPEDTIGER_TEST_PORTS=51000-53999 .venv/bin/python -m bench.cluster_run \\
        [--tasks 12000] [--queues 12] [--workers 2] [--repeat 5] [--out results.json]

The servers come from ``tests/redis_server.py`` and ``tests/redis_cluster.py`` (ports from
``$TYPEDTIGER_TEST_PORTS`` when set).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import redis

from bench import common, tasks
from bench.commands import command_counts, difference
from tests.redis_cluster import cluster_url, own_redis_cluster
from tests.redis_server import RedisServer, own_redis_server
from typedtiger import Config, TaskSpec, TaskState, Tiger
from typedtiger.backends.redis import RedisBackend

ROOT = Path(__file__).resolve().parent.parent
SETUPS = ("single", "one-slot", "per-queue")


def _nodes_of(servers: Sequence[RedisServer]) -> list[redis.Redis[str]]:
    return [redis.Redis(port=server.port, decode_responses=True) for server in servers]


def _reset(nodes: Sequence[redis.Redis[str]]) -> None:
    for node in nodes:
        node.flushall()
        node.config_resetstat()


def _counts(nodes: Sequence[redis.Redis[str]]) -> list[Counter[str]]:
    return [command_counts(node) for node in nodes]


def _cpu(nodes: Sequence[redis.Redis[str]]) -> list[float]:
    """Each node's CPU seconds so far (user and system, every thread of the server)."""
    infos = [node.info("cpu") for node in nodes]
    return [float(info["used_cpu_user"]) + float(info["used_cpu_sys"]) for info in infos]


def _enqueue(url: str, prefix: str, args: argparse.Namespace) -> None:
    backend = RedisBackend.from_url(url)
    tiger = Tiger(backend, Config(prefix=prefix))
    queues = [f"q{n}" for n in range(args.queues)]
    for start in range(0, args.tasks, args.chunk):
        chunk = [queues[i % len(queues)] for i in range(start, min(args.tasks, start + args.chunk))]
        tiger.enqueue_many([TaskSpec.of(tasks.noop).evolve(queue=q) for q in sorted(chunk)])
    left = sum(sizes[TaskState.QUEUED] for sizes in tiger.backend.queue_sizes(queues).values())
    if left != args.tasks:
        raise RuntimeError(f"{left} tasks queued, {args.tasks} enqueued")
    backend.client.close()


def _drain(url: str, prefix: str, args: argparse.Namespace, logs: Path) -> tuple[float, float]:
    """Seconds from the workers' start to the last one's exit, and the CPU seconds they used."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    argv = [sys.executable, "-c", common.CONSOLE_SCRIPT, "worker", "--url", url, "--prefix"]
    argv += [prefix, "--executor", "sync", "--exit-after", "idle", "-m", "bench.tasks"]
    with contextlib.ExitStack() as stack:
        outputs = [
            stack.enter_context(open(logs / f"worker{n}.log", "ab")) for n in range(args.workers)
        ]
        started = time.perf_counter()
        workers = [
            subprocess.Popen(argv, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
            for out in outputs
        ]
        codes = [worker.wait(timeout=600) for worker in workers]
        elapsed = time.perf_counter() - started
    if any(codes):
        raise RuntimeError(f"a worker failed ({codes}); see {logs}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return elapsed, cpu


def _left(url: str, prefix: str, queues: int) -> int:
    backend = RedisBackend.from_url(url, prefix=prefix)
    sizes = backend.queue_sizes([f"q{n}" for n in range(queues)])
    backend.client.close()
    return sum(sum(counts.values()) for counts in sizes.values())


def _per_task(ran: Sequence[Counter[str]], n: int) -> list[float]:
    return [round(sum(counts.values()) / n, 2) for counts in ran]


def measure(
    setup: str, url: str, nodes: Sequence[redis.Redis[str]], args: argparse.Namespace, logs: Path
) -> dict[str, Any]:
    """One measurement of a setup: enqueue, then drain."""
    prefix = "{t}" if setup == "one-slot" else "t"
    _reset(nodes)
    before = _counts(nodes)
    _enqueue(url, prefix, args)
    enqueued, cpu_enqueued = _counts(nodes), _cpu(nodes)
    seconds, worker_cpu = _drain(url, prefix, args, logs)
    worked, cpu_worked = _counts(nodes), _cpu(nodes)
    if (left := _left(url, prefix, args.queues)) != 0:
        raise RuntimeError(f"{setup}: {left} tasks left after the workers exited")
    enqueue_ran = [difference(a, b) for a, b in zip(enqueued, before, strict=True)]
    worker_ran = [difference(a, b) for a, b in zip(worked, enqueued, strict=True)]
    redis_cpu = [after - ahead for after, ahead in zip(cpu_worked, cpu_enqueued, strict=True)]
    return {
        "seconds": round(seconds, 3),
        "tasks_per_s": round(args.tasks / seconds, 1),
        "enqueue_per_node": _per_task(enqueue_ran, args.tasks),
        "worker_per_node": _per_task(worker_ran, args.tasks),
        "redis_cpu_us_per_task": [round(cpu / args.tasks * 1e6, 1) for cpu in redis_cpu],
        "worker_cpu_us_per_task": round(worker_cpu / args.tasks * 1e6, 1),
        "worker_commands": [dict(c.most_common(10)) for c in worker_ran],
    }


def summary_of(setup: str, reps: list[dict[str, Any]], baseline: list[float]) -> dict[str, Any]:
    def median_per_node(field: str) -> list[float]:
        nodes = zip(*(rep[field] for rep in reps), strict=True)
        return [round(statistics.median(node), 2) for node in nodes]

    rates = [rep["tasks_per_s"] for rep in reps]
    return {
        "setup": setup,
        "median_tasks_per_s": statistics.median(rates),
        "range": [min(rates), max(rates)],
        "empty_start_to_exit_s": baseline,
        "enqueue_per_node": median_per_node("enqueue_per_node"),
        "worker_per_node": median_per_node("worker_per_node"),
        "redis_cpu_us_per_task": median_per_node("redis_cpu_us_per_task"),
        "worker_cpu_us_per_task": statistics.median(r["worker_cpu_us_per_task"] for r in reps),
        "reps": reps,
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=12000)
    parser.add_argument("--queues", type=int, default=12)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--chunk", type=int, default=120)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--baseline", type=int, default=2)
    parser.add_argument("--setups", nargs="+", choices=SETUPS, default=list(SETUPS))
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    reps: dict[str, list[dict[str, Any]]] = {setup: [] for setup in args.setups}
    baseline: dict[str, list[float]] = {setup: [] for setup in args.setups}
    with contextlib.ExitStack() as stack:
        directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cluster-run-")))
        places: dict[str, tuple[str, list[redis.Redis[str]]]] = {}
        if "single" in args.setups:
            server = stack.enter_context(own_redis_server(directory / "single"))
            places["single"] = (f"redis://127.0.0.1:{server.port}/0", _nodes_of([server]))
        if {"one-slot", "per-queue"} & set(args.setups):
            cluster = stack.enter_context(own_redis_cluster(directory / "cluster"))
            places["one-slot"] = places["per-queue"] = (cluster_url(cluster), _nodes_of(cluster))
        logs = directory / "logs"
        logs.mkdir()
        for setup in args.setups:
            url, nodes = places[setup]
            for _ in range(args.baseline):
                _reset(nodes)
                prefix = "{t}" if setup == "one-slot" else "t"
                baseline[setup].append(round(_drain(url, prefix, args, logs)[0], 3))
        for rep in range(args.repeat):
            turn = rep % len(args.setups)
            for setup in [*args.setups[turn:], *args.setups[:turn]]:
                url, nodes = places[setup]
                reps[setup].append(measure(setup, url, nodes, args, logs))
                print(rep, setup, json.dumps(reps[setup][-1]), flush=True)
    results = [summary_of(setup, reps[setup], baseline[setup]) for setup in args.setups]
    summary = {
        "argv": sys.argv,
        "load_before": load_before,
        "load_after": os.getloadavg(),
        "cpus": os.cpu_count(),
        "results": results,
    }
    for result in results:
        low, high = result["range"]
        print(
            f"{result['setup']:<10} {result['median_tasks_per_s']:5.0f} tasks/s "
            f"({low:.0f}-{high:.0f}); per task and node: commands enqueueing "
            f"{result['enqueue_per_node']}, working {result['worker_per_node']}, "
            f"Redis CPU working {result['redis_cpu_us_per_task']} us; workers' CPU "
            f"{result['worker_cpu_us_per_task']} us; empty start-exit "
            f"{result['empty_start_to_exit_s']} s"
        )
    print(f"load average before {load_before}, after {summary['load_after']}")
    if args.out:
        args.out.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
