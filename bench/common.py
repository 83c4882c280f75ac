"""Helpers shared by both systems' drivers: only the standard library and redis-py.

This module runs in two virtualenvs (ours, with redis-py >= 5, and TaskTiger's, with redis-py
4.6), so it uses only what both redis-py versions offer.
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import io
import json
import os
import pstats
import resource
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

import redis
from redis.commands.core import Script

# --- counting round trips ----------------------------------------------------------------


#: What the `typedtiger` console script runs (its GC tuning included), for ``python -c``: the
#: typedtiger of the working directory comes first on the path.
CONSOLE_SCRIPT = "import sys; from typedtiger._console import main; sys.exit(main())"


class CountingConnection(redis.Connection):
    """A connection that counts what it sends: one ``send_packed_command`` is one round trip.

    Each round trip is labelled with the command it carried (``EVALSHA <script>`` when the
    script's sha is known, ``PIPELINE[a+b+...]`` for a pipeline).
    """

    sends: ClassVar[int] = 0
    by_label: ClassVar[collections.Counter[str]] = collections.Counter()
    script_names: ClassVar[dict[str, str]] = {}

    _pending: str | None = None

    def send_command(self, *args: Any, **kwargs: Any) -> None:
        self._pending = _label(args)
        super().send_command(*args, **kwargs)

    def pack_commands(self, commands: Iterable[Any]) -> Any:
        commands = list(commands)
        names = [_label(cmd) for cmd in commands]
        self._pending = "PIPELINE[" + " + ".join(names) + "]"
        return super().pack_commands(commands)

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        CountingConnection.sends += 1
        CountingConnection.by_label[self._pending or _label_packed(command)] += 1
        self._pending = None
        super().send_packed_command(command, check_health)

    @classmethod
    def reset(cls) -> None:
        cls.sends = 0
        cls.by_label = collections.Counter()


def _label(args: Any) -> str:
    if not args:
        return "?"
    name = str(args[0] if not isinstance(args[0], bytes) else args[0].decode()).upper()
    if name == "EVALSHA" and len(args) > 1:
        sha = str(args[1])
        return f"EVALSHA {CountingConnection.script_names.get(sha, sha[:8])}"
    return name


def _label_packed(command: Any) -> str:
    """The label of a command packed by its sender (typedtiger packs its EVALSHA calls)."""
    first = command[0] if isinstance(command, list) and command else command
    if not isinstance(first, bytes) or not first.startswith(b"*"):
        return "?"
    fields = first.split(b"\r\n")  # *N, $len, name, $len, first argument, ...
    if len(fields) < 3:
        return "?"
    return _label([field.decode("utf8", "replace") for field in fields[2:5:2]])


def counting_client(host: str, port: int, db: int) -> redis.Redis:
    """A decode_responses client whose connections count round trips."""
    pool = redis.ConnectionPool(
        connection_class=CountingConnection, host=host, port=port, db=db, decode_responses=True
    )
    return redis.Redis(connection_pool=pool)


def learn_script_names(owner: object, *, depth: int = 2) -> None:
    """Label EVALSHA round trips with script names found on ``owner``'s attributes."""

    def visit(name: str, value: object, level: int) -> None:
        if isinstance(value, Script):
            CountingConnection.script_names[value.sha] = name.lstrip("_")
        elif isinstance(value, dict):
            for key, item in value.items():
                visit(str(key), item, level)
        elif level < depth and hasattr(value, "__dict__") and not isinstance(value, type):
            for key, item in vars(value).items():
                visit(key, item, level + 1)

    visit("", owner, 0)
    shas = getattr(sys.modules.get(type(owner).__module__), "_SHAS", None)
    if isinstance(shas, dict):  # typedtiger's backend: script name -> sha
        CountingConnection.script_names.update({sha: name for name, sha in shas.items()})


def counts() -> dict[str, Any]:
    return {"round_trips": CountingConnection.sends, "by_label": dict(CountingConnection.by_label)}


# --- command lines and results ----------------------------------------------------------


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("command")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=6379)
    p.add_argument("--db", type=int, default=11)
    p.add_argument("--prefix", default="tb")
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--queues", type=int, default=0, help="subqueues (0: the default queue)")
    p.add_argument("--queue-base", default="subq")
    p.add_argument("--executor", choices=["fork", "prefork", "sync"], default="sync")
    p.add_argument("--concurrency", type=int, default=1, help="typedtiger's -c")
    p.add_argument("--gap", type=float, default=0.02)
    p.add_argument("--path", default="")
    p.add_argument("--profile", default="", help="write a cProfile summary (text) here")
    p.add_argument("--out", required=True)
    return p


def queue_name(args: argparse.Namespace, i: int, default: str) -> str:
    return default if args.queues <= 0 else f"{args.queue_base}.{i % args.queues}"


def write_result(path: str, result: dict[str, Any]) -> None:
    with open(path, "w", encoding="utf8") as f:
        json.dump(result, f, indent=1, sort_keys=True)


def profiled(run: Callable[[], None], path: str, top: int = 40) -> float:
    """Run ``run`` (under cProfile when ``path``); returns wall seconds."""
    if not path:
        started = time.perf_counter()
        run()
        return time.perf_counter() - started
    profile = cProfile.Profile()
    started = time.perf_counter()
    profile.enable()
    try:
        run()
    finally:
        profile.disable()
    seconds = time.perf_counter() - started
    with open(path, "w", encoding="utf8") as f:
        for key in ("cumulative", "tottime"):
            buffer = io.StringIO()
            stats = pstats.Stats(profile, stream=buffer)
            stats.sort_stats(key).print_stats(top)
            f.write(f"=== sorted by {key}\n{buffer.getvalue()}\n")
    profile.dump_stats(path + ".pstats")
    return seconds


# --- latency ----------------------------------------------------------------------------


def measure_latency(
    enqueue: Callable[[str, float], None], path: str, samples: int, gap: float
) -> dict[str, Any]:
    """Enqueue ``stamp`` tasks one at a time with the worker idle in between.

    ``enqueue(path, t)`` enqueues ``bench.tasks.stamp(path, t)``; t is taken just before.
    Waits for each task to start (its line appears) and then ``gap`` seconds, so that the
    worker is back in its idle wait before the next one.
    """
    open(path, "w").close()
    timeouts = 0
    for i in range(samples):
        enqueue(path, time.time())
        deadline = time.monotonic() + 5.0
        while _lines(path) <= i:
            if time.monotonic() > deadline:
                timeouts += 1
                break
            time.sleep(0.0002)
        time.sleep(gap)
    time.sleep(0.2)
    latencies = []
    with open(path, encoding="utf8") as f:
        for line in f:
            enqueued_at, started_at = (float(x) for x in line.split())
            latencies.append(started_at - enqueued_at)
    return {"latencies": latencies, "timeouts": timeouts}


def _lines(path: str) -> int:
    with open(path, "rb") as f:
        return f.read().count(b"\n")


# --- the fork limit ---------------------------------------------------------------------


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def _faults(who: int) -> int:
    return resource.getrusage(who).ru_minflt


def timed(run: Callable[[], object], n: int) -> dict[str, float]:
    """Call ``run`` n times: rate; CPU ms and minor page faults (copy-on-write copies, mostly)
    per call, of this process and of its reaped children."""
    parent, children = _cpu(resource.RUSAGE_SELF), _cpu(resource.RUSAGE_CHILDREN)
    parent_faults, child_faults = _faults(resource.RUSAGE_SELF), _faults(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    for _ in range(n):
        run()
    seconds = time.perf_counter() - started
    return {
        "per_second": n / seconds,
        "parent_cpu_ms": 1000 * (_cpu(resource.RUSAGE_SELF) - parent) / n,
        "child_cpu_ms": 1000 * (_cpu(resource.RUSAGE_CHILDREN) - children) / n,
        "parent_faults": (_faults(resource.RUSAGE_SELF) - parent_faults) / n,
        "child_faults": (_faults(resource.RUSAGE_CHILDREN) - child_faults) / n,
    }


def bare_fork() -> None:
    """fork + os._exit(0) + waitpid: the floor of any fork-per-task worker."""
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)


def rss_kib() -> float:
    with open("/proc/self/status", encoding="utf8") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return float(line.split()[1])
    return float("nan")
