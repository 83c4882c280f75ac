"""The asyncio benchmark (issue 21): one worker process at concurrency 100 draining N async tasks,
typedtiger (``--executor asyncio``) against arq 0.28, on a redis-server of the run's own.

    .venv/bin/python -m bench.asyncio_run [--reps 3] [--noop 10000] [--sleep 2000]

Workloads: ``anoop`` (an ``async def`` that returns at once) and ``asleep`` (awaits
``asyncio.sleep(0.05)``), from bench.async_tasks. Each repetition flushes the database, queues
the tasks (not timed), starts one worker process and times it until it exits once the queue is
empty (typedtiger ``--exit-after idle``, arq ``burst``). The same worker started on an empty
queue gives its start-up and shutdown time, subtracted to give the drain time. arq runs from its
own venv (~/.cache/typedtiger-bench/asyncio-peers-venv, made by hand: ``python3 -m venv`` and
``pip install arq==0.28.0``) through bench.asyncio_peers.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import redis

from bench import async_tasks
from typedtiger import Config, TaskSpec, Tiger
from typedtiger.backends.redis import RedisBackend

REPO = Path(__file__).resolve().parent.parent
PEERS = Path.home() / ".cache" / "typedtiger-bench" / "asyncio-peers-venv" / "bin" / "python"
CONCURRENCY = 100
DB = 11


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_redis(folder: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(folder)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    client = redis.Redis(port=port)
    for _ in range(500):
        try:
            client.ping()
            return server, port
        except redis.ConnectionError:
            time.sleep(0.01)
    server.kill()
    raise RuntimeError("redis-server did not start")


def typedtiger_enqueue(url: str, task: str, n: int) -> None:
    tiger = Tiger(RedisBackend.from_url(url), Config())
    func = getattr(async_tasks, task)
    for at in range(0, n, 1000):
        tiger.enqueue_many([TaskSpec.of(func) for _ in range(min(1000, n - at))])


def typedtiger_worker(url: str) -> list[str]:
    program = shutil.which("typedtiger", path=str(Path(sys.executable).parent))
    assert program is not None
    return [program, "worker", "--url", url, "-m", "bench.async_tasks", "--executor", "asyncio",
            "-c", str(CONCURRENCY), "--exit-after", "idle"]  # fmt: skip


def arq_enqueue(url: str, task: str, n: int) -> None:
    peer("enqueue", str(n), task, url=url)


def arq_worker(url: str) -> list[str]:
    return [str(PEERS), "-m", "bench.asyncio_peers", "arq", "worker", str(CONCURRENCY)]


def peer(*args: str, url: str) -> None:
    env = {**os.environ, "BENCH_REDIS_URL": url, "PYTHONPATH": str(REPO)}
    subprocess.run([str(PEERS), "-m", "bench.asyncio_peers", "arq", *args], env=env, check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip


def timed_worker(argv: list[str], url: str, log: Path) -> float:
    env = {**os.environ, "BENCH_REDIS_URL": url, "PYTHONPATH": str(REPO)}
    with log.open("ab") as out:
        started = time.perf_counter()
        subprocess.run(argv, env=env, check=True, stdout=out, stderr=out, cwd=REPO)
        return time.perf_counter() - started


SYSTEMS: dict[str, tuple[Callable[[str, str, int], None], Callable[[str], list[str]]]] = {
    "typedtiger": (typedtiger_enqueue, typedtiger_worker),
    "arq": (arq_enqueue, arq_worker),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--noop", type=int, default=10_000)
    parser.add_argument("--sleep", type=int, default=2_000)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-asyncio-"))
    server, port = start_redis(folder)
    url = f"redis://127.0.0.1:{port}/{DB}"
    flush = redis.Redis(port=port, db=DB).flushdb
    results: dict[str, dict[str, list[float]]] = {}
    try:
        for system, (enqueue, worker) in SYSTEMS.items():
            log = folder / f"{system}.log"
            flush()
            idle = [timed_worker(worker(url), url, log) for _ in range(args.reps)]
            results.setdefault(system, {})["idle"] = idle
            for task, n in (("anoop", args.noop), ("asleep", args.sleep)):
                walls = []
                for _ in range(args.reps):
                    flush()
                    enqueue(url, task, n)
                    walls.append(timed_worker(worker(url), url, log))
                results[system][task] = walls
                print(system, task, n, [f"{w:.2f}" for w in walls], flush=True)
    finally:
        server.kill()
        server.wait()
    report(results, args)
    if args.out is not None:
        args.out.write_text(json.dumps({"args": vars(args) | {"out": str(args.out)},
                                        "results": results}, indent=1))  # fmt: skip
    print(f"logs: {folder}")


def report(results: dict[str, dict[str, list[float]]], args: argparse.Namespace) -> None:
    print("| system | workload | wall s (median, range) | idle s | drain tasks/s (median, range) |")
    print("| --- | --- | --- | --- | --- |")
    for system, figures in results.items():
        idle = statistics.median(figures["idle"])
        for task, n in (("anoop", args.noop), ("asleep", args.sleep)):
            walls = figures[task]
            rates = sorted(n / max(w - idle, 1e-9) for w in walls)
            print(
                f"| {system} | {n} {task} | {statistics.median(walls):.2f} "
                f"({min(walls):.2f}-{max(walls):.2f}) | {idle:.2f} | "
                f"{statistics.median(rates):.0f} ({rates[0]:.0f}-{rates[-1]:.0f}) |"
            )


if __name__ == "__main__":
    main()
