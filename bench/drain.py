"""Drain times at default timings, typedtiger and TaskTiger 0.26.3 side by side.

N tasks are enqueued once (by typedtiger: the payloads and lock ids are TaskTiger's), then W
workers of one system with its default settings drain them; the time from the workers' start to
an empty queue is printed, with the overlapping runs of one key (must be 0). Scenarios:

- ``lock``: ``lock_key`` tasks over K keys, each sleeping S seconds;
- ``hard_timeout``: every other task hangs (``--hang`` seconds) past its ``--hard-timeout``;
  the others sleep S seconds;
- ``hard_timeout_deaf``: the same, but the hanging tasks swallow the exception the timeout
  raises (as a task stuck in C code would), so only a kill ends them.

::

    .venv/bin/python -m bench.drain --db 10 [--scenario SCENARIO] [--tt-python PATH] [--repeat 5]

The database is flushed before each run: never point ``--db`` at data you want to keep.
TaskTiger runs from its own virtualenv (``--tt-python``; the interop suite builds one).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import redis

from typedtiger import TaskSpec, Tiger
from typedtiger.backends.redis import RedisBackend

REPO = Path(__file__).resolve().parents[1]
TT_PYTHON = Path.home() / ".cache/typedtiger-interop/venv-tasktiger-0.26.3/bin/python"


def _overlaps(ledger: Path) -> int:
    begun: dict[str, float] = {}
    runs: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for line in ledger.read_text().splitlines():
        what, item, at = line.split()
        if what == "begin":
            begun[item] = float(at)
        else:
            runs[item.partition("@")[2]].append((begun.pop(item), float(at)))
    count = 0
    for intervals in runs.values():
        latest = float("-inf")
        for start, end in sorted(intervals):
            count += start < latest
            latest = max(latest, end)
    return count


def _workers(system: str, args: argparse.Namespace) -> list[subprocess.Popen[bytes]]:
    url = f"redis://127.0.0.1:6379/{args.db}"
    if system == "typedtiger":
        command = [sys.executable, "-m", "typedtiger.cli", "worker", "--url", url]
        command += ["-m", "bench.tasks"]
    else:
        command = [str(args.tt_python), "-m", "bench.tt_worker", "-n", str(args.db)]
        command += ["--prefix", "t"]
    workers = []
    for n in range(args.workers):
        log_path = args.logs / f"{system}-{n}.log" if args.logs else Path(os.devnull)
        with open(log_path, "wb") as log:  # the child keeps its own copy of the descriptor
            workers.append(
                subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
            )
    return workers


def _specs(args: argparse.Namespace, ledger: str) -> list[TaskSpec[..., None]]:
    from bench import tasks

    if args.scenario == "lock":
        return [
            TaskSpec.of(tasks.hold, ledger, f"t{n}", args.seconds, key=f"k{n % args.keys}").evolve(
                lock_key=["key"]
            )
            for n in range(args.tasks)
        ]
    hang = tasks.stubborn if args.scenario == "hard_timeout_deaf" else tasks.hold
    return [
        TaskSpec.of(
            hang if n % 2 else tasks.hold,
            ledger,
            f"t{n}",
            args.hang if n % 2 else args.seconds,
            key=f"t{n}",
        ).evolve(hard_timeout=args.hard_timeout)
        for n in range(args.tasks)
    ]


def run(system: str, args: argparse.Namespace) -> tuple[float, int, int]:
    """(drain seconds, runs, overlapping runs) of one system."""
    client: redis.Redis[str] = redis.Redis(db=args.db, decode_responses=True)
    client.flushdb()
    tiger = Tiger(RedisBackend(client))
    with tempfile.TemporaryDirectory() as folder:
        ledger = Path(folder) / "ledger"
        tiger.enqueue_many(_specs(args, str(ledger)))
        workers = _workers(system, args)
        started = time.monotonic()
        try:
            while tiger.get_total_queue_size("default") and time.monotonic() - started < 300:
                time.sleep(0.05)
            drain = time.monotonic() - started
        finally:
            for worker in workers:
                worker.terminate()
            for worker in workers:
                worker.wait(30)
        lines = ledger.read_text().splitlines() if ledger.exists() else []
        ends = sum(line.startswith("end") for line in lines)
        return drain, ends, _overlaps(ledger) if lines else 0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    p.add_argument("--db", type=int, required=True)
    p.add_argument(
        "--scenario", choices=["lock", "hard_timeout", "hard_timeout_deaf"], default="lock"
    )
    p.add_argument("--hang", type=float, default=30.0, help="seconds a hanging task sleeps")
    p.add_argument("--hard-timeout", type=float, default=1.0)
    p.add_argument("--tt-python", type=Path, default=TT_PYTHON)
    p.add_argument("--workers", type=int, default=3)
    p.add_argument("--tasks", type=int, default=60)
    p.add_argument("--keys", type=int, default=5)
    p.add_argument("--seconds", type=float, default=0.1)
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--only", choices=["typedtiger", "tasktiger"])
    p.add_argument("--logs", type=Path, help="a folder for the workers' logs")
    args = p.parse_args()
    for _ in range(args.repeat):
        for system in ("typedtiger", "tasktiger"):
            if args.only in (None, system):
                drain, ends, overlapping = run(system, args)
                print(f"{system}: drain_s={drain:.1f} runs={ends} overlaps={overlapping}")


if __name__ == "__main__":
    main()
