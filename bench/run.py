"""Run every benchmark for typedtiger and TaskTiger 0.26.3, side by side, and report.

    python -m bench.run                  # 5 repetitions, prints the tables
    python -m bench.run --write-docs     # ... and rewrites docs/performance.md's tables
    python -m bench.run --quick          # one short repetition (a smoke run)

Run from the repository root with a Python that can import typedtiger (the repo's .venv, or any
venv with typedtiger's dependencies: the package is imported from the working tree). TaskTiger
runs from its own virtualenv (it pins redis<5), created once in
~/.cache/typedtiger-bench/tasktiger-venv. Both use the same Redis: by default a redis-server
this run starts on a free loopback port and stops at the end (commands are counted with the
server-wide INFO commandstats, so nothing else may use it); with --port, database 11 of that
server, which is flushed before each measurement: never point this at a database holding data.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import re
import resource
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from bench import common, report

REPO = Path(__file__).resolve().parent.parent
CACHE = Path.home() / ".cache" / "typedtiger-bench"
TT_VERSION = "0.26.3"
OURS, TT = "typedtiger", "tasktiger"
SYSTEMS = (OURS, TT)

#: Both systems run with bytecode caches, as an installed deployment does (pip compiles a wheel's
#: modules; a checkout without caches would recompile typedtiger at every worker start). The
#: caches go to a directory of their own, so nothing is written into the working tree.
ENV = {
    **{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
    "PYTHONPYCACHEPREFIX": str(CACHE / "pycache"),
}


@dataclass(frozen=True)
class Sizes:
    """How much work each measurement does."""

    reps: int
    enqueue: int
    enqueue_many: int
    fork: int
    sync: int
    saturated: int  # tasks of each saturated (workers = cores) drain
    commands_tasks: int
    commands_idle: float
    latency_samples: int
    latency_gap: float
    idle_seconds: float
    subqueues: tuple[int, ...]
    subqueue_tasks: int
    big_subqueues: tuple[int, ...]  # measured in the first repetition only
    profile_sync: int
    profile_fork: int
    enqueue_profile: int
    micro: int


FULL = Sizes(
    reps=5,
    enqueue=3000,
    enqueue_many=10_000,
    fork=300,
    sync=1200,
    saturated=3000,
    commands_tasks=300,
    commands_idle=10.0,
    latency_samples=40,
    latency_gap=0.02,
    idle_seconds=5.0,
    subqueues=(1, 100, 1000),
    subqueue_tasks=1000,
    big_subqueues=(10_000,),
    profile_sync=1000,
    profile_fork=150,
    enqueue_profile=1000,
    micro=300,
)
QUICK = Sizes(
    reps=1,
    enqueue=500,
    enqueue_many=10_000,
    fork=100,
    sync=300,
    saturated=400,
    commands_tasks=100,
    commands_idle=3.0,
    latency_samples=20,
    latency_gap=0.02,
    idle_seconds=2.0,
    subqueues=(1, 100),
    subqueue_tasks=300,
    big_subqueues=(),
    profile_sync=300,
    profile_fork=50,
    enqueue_profile=300,
    micro=50,
)


class BenchError(RuntimeError):
    pass


@dataclass
class Bench:
    args: argparse.Namespace
    sizes: Sizes
    run_dir: Path
    tt_python: str
    root: Path = REPO
    ours_python: str = sys.executable
    results: dict[str, Any] = field(default_factory=dict)
    _seq: int = 0

    # --- plumbing -----------------------------------------------------------------------

    @property
    def db(self) -> redis.Redis:
        return redis.Redis(self.args.host, self.args.port, self.args.db, decode_responses=True)

    def key(self, *parts: str) -> str:
        return ":".join((self.args.prefix, *parts))

    def flush(self) -> None:
        self.db.flushdb()

    def _name(self, what: str) -> Path:
        self._seq += 1
        return self.run_dir / f"{self._seq:03d}-{what}"

    def _common_args(self) -> list[str]:
        a = self.args
        return ["--host", a.host, "--port", str(a.port), "--db", str(a.db), "--prefix", a.prefix]

    def driver(self, system: str, command: str, *options: str, timeout: float = 300) -> dict:
        """Run one driver command in its system's virtualenv; its JSON result."""
        base = self._name(f"{system}-{command}")
        out = base.with_suffix(".json")
        python, module = (
            (self.ours_python, "bench.ours_driver")
            if system == OURS
            else (self.tt_python, "bench.tt_driver")
        )
        argv = [python, "-m", module, command, *self._common_args(), *options, "--out", str(out)]
        with open(base.with_suffix(".log"), "wb") as log:
            done = subprocess.run(
                argv, cwd=self.root, env=ENV, stdout=log, stderr=log, timeout=timeout, check=False
            )
        if done.returncode != 0:
            raise BenchError(f"{' '.join(argv)} failed ({done.returncode}); see {base}.log")
        return json.loads(out.read_text())

    def worker_argv(self, system: str, executor: str, once: bool, extra: list[str]) -> list[str]:
        a = self.args
        if system == OURS:
            argv = [self.ours_python, "-c", common.CONSOLE_SCRIPT, "worker", "-h", a.host, "-p"]
            argv += [str(a.port), "-n", str(a.db), "--prefix", a.prefix, "-m", "bench.tasks"]
            argv += ["--executor", executor, *extra]
            return argv + (["--exit-after", "idle"] if once else [])
        argv = [self.tt_python, "-m", "bench.tt_worker", "--host", a.host, "-p", str(a.port)]
        argv += ["-n", str(a.db), "--prefix", a.prefix, "-m", "bench.tasks"]
        argv += ["--executor", executor, *extra]
        return argv + (["--once"] if once else [])

    @contextlib.contextmanager
    def running_worker(self, system: str, executor: str) -> Iterator[subprocess.Popen[bytes]]:
        """A long-running worker, yielded once it listens on the activity channel."""
        log_path = self._name(f"{system}-worker-{executor}").with_suffix(".log")
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                self.worker_argv(system, executor, False, []),
                cwd=self.root,
                env=ENV,
                stdout=log,
                stderr=log,
            )
            try:
                self._wait_subscribed(proc)
                time.sleep(0.5)
                yield proc
            finally:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()

    def _wait_subscribed(self, proc: subprocess.Popen[bytes]) -> None:
        channel = self.key("activity")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise BenchError(f"worker exited early ({proc.returncode}): {proc.args}")
            if dict(self.db.pubsub_numsub(channel)).get(channel, 0) >= 1:
                return
            time.sleep(0.02)
        raise BenchError("worker did not subscribe to the activity channel within 30 s")

    def queue_counts(self, queue: str = "default") -> dict[str, int]:
        db = self.db
        counts = {
            s: db.zcard(self.key(s, queue)) for s in ("queued", "active", "scheduled", "error")
        }
        counts["task_keys"] = sum(1 for _ in db.scan_iter(match=self.key("task", "*"), count=1000))
        return counts

    # --- measurements -------------------------------------------------------------------

    def enqueue(self, system: str) -> dict[str, Any]:
        self.flush()
        before = _used_memory(self.db)
        res = self.driver(system, "enqueue", "--n", str(self.sizes.enqueue))
        after = _used_memory(self.db)
        stored = self.db.zcard(self.key("queued", "default"))
        if stored != res["stored"]:
            raise BenchError(f"{system}: {stored} tasks queued, expected {res['stored']}")
        usage = _memory_usage_of_db(self.db)
        return {
            "rate": res["n"] / res["seconds"],
            "round_trips": res["round_trips"] / res["n"],
            "by_label": res["by_label"],
            "used_memory_per_task": (after - before) / stored,
            "memory_usage_per_task": usage / stored,
            "stored": stored,
        }

    def enqueue_many(self) -> dict[str, Any]:
        self.flush()
        res = self.driver(OURS, "enqueue-many", "--n", str(self.sizes.enqueue_many))
        stored = self.db.zcard(self.key("queued", "default"))
        if stored != res["n"] + 1:
            raise BenchError(f"enqueue_many stored {stored} tasks, expected {res['n'] + 1}")
        return {
            "rate": res["n"] / res["seconds"],
            "round_trips": res["round_trips"] / res["n"],
            "round_trips_total": res["round_trips"],
            "by_label": res["by_label"],
        }

    def drain(
        self, system: str, executor: str, n: int, extra: list[str] = (), processes: int = 1
    ) -> dict[str, Any]:
        """Whole process: pre-fill n tasks, time ``processes`` workers from their start until
        the last exits idle."""
        self.flush()
        if n:
            self.driver(system, "fill", "--n", str(n))
        queued = self.db.zcard(self.key("queued", "default"))
        if queued != n:
            raise BenchError(f"{system}: {queued} tasks queued after fill, expected {n}")
        argv = self.worker_argv(system, executor, True, list(extra))
        name = f"{system}-drain-{executor}{''.join(extra)}x{processes}"
        log_path = self._name(name).with_suffix(".log")
        with open(log_path, "wb") as log:
            cpu = _children_cpu()
            started = time.perf_counter()
            # Not subprocess.run(timeout=...): with a timeout, Popen.wait polls with sleeps that
            # double up to 50 ms, so the exit is seen up to 50 ms late (a worker that exits after
            # 130 ms was timed at 163.5 ms). A blocking wait sees it at once; a timer kills a
            # worker that hangs.
            workers = [
                subprocess.Popen(argv, cwd=self.root, env=ENV, stdout=log, stderr=log)
                for _ in range(processes)
            ]
            watchdog = threading.Timer(600, lambda: [w.kill() for w in workers])
            watchdog.start()
            try:
                for worker in workers:
                    worker.wait()
            finally:
                watchdog.cancel()
            seconds = time.perf_counter() - started
            cpu = _children_cpu() - cpu
        for worker in workers:
            if worker.returncode != 0:
                raise BenchError(f"{' '.join(argv)} exited {worker.returncode}; see {log_path}")
        left = self.queue_counts()
        if any(left.values()):
            raise BenchError(f"{system} {executor}: not drained cleanly: {left}; see {log_path}")
        return {
            "seconds": seconds,
            "rate": n / seconds if n else 0.0,
            "n": n,
            "cpu_s": cpu,
            "cpu_ms_per_task": 1000 * cpu / n if n else 0.0,
        }

    def latency(self, system: str, executor: str, gap: float) -> dict[str, Any]:
        """Enqueue → start latencies; each task enqueued ``gap`` s after the previous one
        started (0: back to back, the worker still busy with the previous one)."""
        self.flush()
        path = self._name(f"{system}-stamps-{executor}-{gap:g}").with_suffix(".txt")
        with self.running_worker(system, executor):
            res = self.driver(
                system,
                "latency",
                "--n",
                str(self.sizes.latency_samples),
                "--gap",
                str(gap),
                "--path",
                str(path),
            )
        lat = sorted(res["latencies"])
        if len(lat) < self.sizes.latency_samples or res["timeouts"]:
            raise BenchError(f"{system} {executor}: {len(lat)} latencies, {res['timeouts']} lost")
        return {
            "p50_ms": 1000 * statistics.median(lat),
            "p90_ms": 1000 * lat[int(0.9 * (len(lat) - 1))],
            "max_ms": 1000 * lat[-1],
        }

    def idle(self, system: str) -> dict[str, Any]:
        """An idle worker (fork executor, after 100 tasks): its commands per second, its RSS."""
        self.flush()
        with self.running_worker(system, "fork") as proc:
            self.driver(system, "fill", "--n", "100")
            deadline = time.monotonic() + 60
            while self.db.zcard(self.key("queued", "default")) or self.db.zcard(
                self.key("active", "default")
            ):
                if time.monotonic() > deadline:
                    raise BenchError(f"{system}: the idle worker did not drain 100 tasks")
                time.sleep(0.05)
            time.sleep(1.0)
            stats_client = redis.Redis(self.args.host, self.args.port, 0, decode_responses=True)
            before = _commandstats_calls(stats_client)
            seen = _monitor(self.args.host, self.args.port, self.args.db, self.sizes.idle_seconds)
            after = _commandstats_calls(stats_client)
            rss = _rss_kib(proc.pid)
        seconds = seen.pop("seconds")
        return {
            "commands_per_s": seen["top_level"] / seconds,
            "commands_with_lua_per_s": (seen["top_level"] + seen["lua"]) / seconds,
            "by_command": seen["by_command"],
            "global_commandstats_per_s": (after - before) / seconds,
            "rss_mib": rss / 1024,
        }

    def commands(self, system: str) -> dict[str, Any]:
        """Commands Redis runs (INFO commandstats: inside scripts too) per enqueue, per task
        a worker processes, and per second of an idle worker (bench.commands). The counts are
        server-wide: valid on the run's own redis-server only."""
        if not self.args.own_server:
            raise BenchError("commands are counted server-wide: run without --port")
        self.flush()
        out = self._name(f"{system}-commands").with_suffix(".json")
        python = self.ours_python if system == OURS else self.tt_python
        argv = [python, "-m", "bench.commands", "ours" if system == OURS else "tasktiger"]
        argv += ["--port", str(self.args.port), "--db", str(self.args.db)]
        argv += ["--prefix", self.args.prefix, "--n", str(self.sizes.commands_tasks)]
        argv += ["--idle", str(self.sizes.commands_idle), "--out", str(out)]
        with open(out.with_suffix(".log"), "wb") as log:
            done = subprocess.run(
                argv, cwd=self.root, env=ENV, stdout=log, stderr=log, timeout=300, check=False
            )
        if done.returncode != 0:
            raise BenchError(f"{' '.join(argv)} failed ({done.returncode}); see {out}.log")
        figures: dict[str, Any] = json.loads(out.read_text())
        return figures

    def subqueues(self, system: str, k: int) -> dict[str, Any]:
        self.flush()
        n = max(self.sizes.subqueue_tasks, k)
        res = self.driver(system, "count-worker", "--n", str(n), "--queues", str(k), timeout=600)
        left = self.queue_counts(f"{'subq'}.0")
        if left["queued"] or left["active"] or left["error"]:
            raise BenchError(f"{system}: subqueue run left tasks behind: {left}")
        return {
            "round_trips": res["round_trips"] / n,
            "by_label": res["by_label"],
            "rate_in_process": n / res["seconds"],
            "n": n,
        }

    def profile(self, system: str, executor: str, n: int) -> dict[str, Any]:
        self.flush()
        path = self._name(f"{system}-profile-{executor}").with_suffix(".prof.txt")
        res = self.driver(
            system, "count-worker", "--n", str(n), "--executor", executor, "--profile", str(path)
        )
        return {
            "n": n,
            "seconds": res["seconds"],
            "path": str(path),
            "stats": str(path) + ".pstats",
        }

    def enqueue_profile(self, system: str, n: int, command: str = "enqueue") -> dict[str, Any]:
        self.flush()
        path = self._name(f"{system}-profile-{command}").with_suffix(".prof.txt")
        res = self.driver(system, command, "--n", str(n), "--profile", str(path))
        return {
            "n": n,
            "seconds": res["seconds"],
            "path": str(path),
            "stats": str(path) + ".pstats",
        }

    def micro(self, system: str) -> dict[str, Any]:
        return self.driver(system, "executor-micro", "--n", str(self.sizes.micro))

    # --- the whole run ------------------------------------------------------------------

    def step(self, rep: int, metric: str, system: str, run: Callable[[], dict[str, Any]]) -> None:
        started = time.perf_counter()
        try:
            value = run()
        except (BenchError, subprocess.TimeoutExpired) as exc:
            value = {"error": str(exc)}
        value["elapsed"] = time.perf_counter() - started
        self.results.setdefault("reps", {}).setdefault(str(rep), {}).setdefault(metric, {})[
            system
        ] = value
        shown = {k: v for k, v in value.items() if not isinstance(v, dict)}
        print(f"  rep {rep} {metric:<16} {system:<10} {_brief(shown)}", flush=True)

    def plan(self, rep: int) -> list[tuple[str, str, Callable[[], dict[str, Any]]]]:
        """The measurements of one repetition: (metric, system, run), in order."""
        sizes = self.sizes
        # Alternate which system goes first, so that drift in the machine's load does not
        # always favour the same one.
        order = SYSTEMS if rep % 2 else SYSTEMS[::-1]
        steps: list[tuple[str, str, Callable[[], dict[str, Any]]]] = []

        def each(metric: str, make: Callable[[str], Callable[[], dict[str, Any]]]) -> None:
            steps.extend((metric, system, make(system)) for system in order)

        each("enqueue", lambda s: lambda: self.enqueue(s))
        steps.append(("enqueue_many", OURS, self.enqueue_many))
        each("startup", lambda s: lambda: self.drain(s, "fork", 0))
        each("fork", lambda s: lambda: self.drain(s, "fork", sizes.fork))
        each("sync", lambda s: lambda: self.drain(s, "sync", sizes.sync))
        # Saturated (workers = cores): typedtiger one worker `-c 2` (sync: two processes, it
        # runs one job at a time), TaskTiger two worker processes.
        cores, n = 2, sizes.saturated
        for executor in ("fork", "sync"):
            each(
                f"sat_{executor}",
                lambda s, e=executor: (
                    lambda: (
                        self.drain(s, e, n, ["-c", str(cores)])
                        if s == OURS and e != "sync"
                        else self.drain(s, e, n, processes=cores)
                    )
                ),
            )
        steps.append(
            ("sat_prefork", OURS, lambda: self.drain(OURS, "prefork", n, ["-c", str(cores)]))
        )
        for executor in ("fork", "sync"):
            each(
                f"latency_{executor}",
                lambda s, e=executor: lambda: self.latency(s, e, sizes.latency_gap),
            )
            each(f"latency_{executor}_b2b", lambda s, e=executor: lambda: self.latency(s, e, 0))
        each("idle", lambda s: lambda: self.idle(s))
        each("commands", lambda s: lambda: self.commands(s))
        for k in sizes.subqueues + (sizes.big_subqueues if rep == 1 else ()):
            each(f"subqueues_{k}", lambda s, k=k: lambda: self.subqueues(s, k))
        return steps

    def warm_bytecode_caches(self) -> None:
        for python, modules in (
            (self.ours_python, "typedtiger.cli, bench.ours_driver"),
            (self.tt_python, "bench.tt_driver, bench.tt_worker"),
        ):
            subprocess.run([python, "-c", f"import {modules}"], cwd=self.root, env=ENV, check=True)

    def run(self) -> None:
        sizes = self.sizes
        only = set(self.args.only.split(",")) if self.args.only else None

        def wanted(name: str) -> bool:
            return only is None or name in only or name.split("_", maxsplit=1)[0] in only

        self.results["machine"] = machine_facts(self)
        self.results["sizes"] = sizes.__dict__
        self.warm_bytecode_caches()
        if wanted("micro"):
            self.results["micro"] = {s: self.micro(s) for s in SYSTEMS}
        for rep in range(1, sizes.reps + 1):
            print(f"repetition {rep} of {sizes.reps}", flush=True)
            for metric, system, run in self.plan(rep):
                if wanted(metric):
                    self.step(rep, metric, system, run)
        if wanted("profile"):
            print("profiles", flush=True)
            profiles: dict[str, Any] = {}
            for system in SYSTEMS:
                profiles[system] = {
                    "sync": self.profile(system, "sync", sizes.profile_sync),
                    "fork": self.profile(system, "fork", sizes.profile_fork),
                    "enqueue": self.enqueue_profile(system, sizes.enqueue_profile),
                }
            profiles[OURS]["enqueue_many"] = self.enqueue_profile(
                OURS, sizes.enqueue_many, "enqueue-many"
            )
            self.results["profiles"] = profiles
        self.flush()
        self.results["machine"]["loadavg_end"] = _loadavg()


# --- Redis and process facts ------------------------------------------------------------


def _used_memory(db: redis.Redis) -> int:
    return int(db.info("memory")["used_memory"])


def _memory_usage_of_db(db: redis.Redis) -> int:
    """MEMORY USAGE (all samples) summed over the keys of this database."""
    keys = list(db.scan_iter(count=1000))
    total = 0
    for start in range(0, len(keys), 500):
        pipe = db.pipeline(transaction=False)
        for key in keys[start : start + 500]:
            pipe.memory_usage(key, samples=0)
        total += sum(int(v or 0) for v in pipe.execute())
    return total


def _commandstats_calls(db: redis.Redis) -> int:
    stats = db.info("commandstats")
    return sum(int(v["calls"]) for k, v in stats.items() if k.startswith("cmdstat_"))


_MONITOR_LINE = re.compile(r'^\+(\d+\.\d+) \[(\d+) ([^\]]+)\] "([^"]*)"')


def _monitor(host: str, port: int, db: int, seconds: float) -> dict[str, Any]:
    """Commands sent to database ``db`` during ``seconds``, seen through MONITOR.

    Unlike INFO commandstats (global), this sees only our database, so the tests other people
    run on other databases of the same Redis do not count. ``lua`` counts the commands run
    inside scripts (which commandstats counts too); ``top_level`` the commands clients sent.
    The window is taken on the server's timestamps (same clock: loopback), so a backlog of
    other databases' traffic in the stream cannot cut it short.
    """
    sock = socket.create_connection((host, port))
    try:
        sock.sendall(b"MONITOR\r\n")
        buffer = b""
        while b"\r\n" not in buffer:
            buffer += sock.recv(4096)
        buffer = buffer.split(b"\r\n", 1)[1]
        sock.settimeout(0.05)
        top, lua = 0, 0
        names: Counter[str] = Counter()
        start = time.time()
        end = start + seconds
        last = start
        # Read until the stream has passed the end of the window, or (a quiet stream) until
        # the window is over by the clock; give up on a backlog 30 s late.
        while last < end and time.time() < end + 30:
            if time.time() > end + 0.2 and not buffer:
                break
            with contextlib.suppress(TimeoutError):
                buffer += sock.recv(1 << 16)
            *lines, buffer = buffer.split(b"\r\n")
            for raw in lines:
                match = _MONITOR_LINE.match(raw.decode("utf8", "replace"))
                if match is None:
                    continue
                last = float(match.group(1))
                if not start <= last < end or int(match.group(2)) != db:
                    continue
                if match.group(3) == "lua":
                    lua += 1
                else:
                    top += 1
                    names[match.group(4).upper()] += 1
        return {"top_level": top, "lua": lua, "by_command": dict(names), "seconds": seconds}
    finally:
        sock.close()


def _children_cpu() -> float:
    """CPU seconds (user + system) of the reaped descendants: a worker and its task children."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _rss_kib(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="utf8") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return float(line.split()[1])
    return float("nan")


def _loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


HIREDIS = "import importlib.util as u; print('yes' if u.find_spec('hiredis') else 'no')"


def machine_facts(bench: Bench) -> dict[str, Any]:
    def output(argv: list[str]) -> str:
        return subprocess.run(
            argv, cwd=REPO, capture_output=True, text=True, check=False
        ).stdout.strip()

    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    info = bench.db.info("server")
    dirty = output(["git", "status", "--porcelain", "--", "typedtiger"])
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": os.cpu_count(),
        "cpu": cpu,
        "kernel": platform.release(),
        "python_ours": output(
            [bench.ours_python, "-c", "import sys; print(sys.version.split()[0])"]
        ),
        "python_tt": output([bench.tt_python, "-c", "import sys; print(sys.version.split()[0])"]),
        "redis_py_ours": redis.__version__,
        "redis_py_tt": output([bench.tt_python, "-c", "import redis; print(redis.__version__)"]),
        "redis_server": info["redis_version"],
        "hiredis_ours": output([bench.ours_python, "-c", HIREDIS]),
        "hiredis_tt": output([bench.tt_python, "-c", HIREDIS]),
        "tasktiger": output(
            [bench.tt_python, "-c", "import importlib.metadata as m; print(m.version('tasktiger'))"]
        ),
        "commit": (
            f"commit {bench.results['ref'][:7]}"
            if "ref" in bench.results
            else "the working tree at "
            + output(["git", "rev-parse", "--short", "HEAD"])
            + (" + uncommitted changes to typedtiger/" if dirty else "")
        ),
        "loadavg_start": _loadavg(),
    }


def _brief(values: dict[str, Any]) -> str:
    parts = []
    for key, value in values.items():
        if isinstance(value, float):
            parts.append(f"{key}={value:.4g}")
        elif isinstance(value, list):
            continue
        else:
            parts.append(f"{key}={value}")
    return " ".join(parts)


# --- TaskTiger's virtualenv -------------------------------------------------------------


def export_ref(ref: str) -> tuple[Path, str]:
    """A directory holding typedtiger as of git ``ref`` and a link to this bench/; its sha.

    Benchmarking a commit instead of the working tree keeps the run consistent while other
    people edit the library.
    """
    sha = subprocess.run(
        ["git", "rev-parse", "--verify", f"{ref}^{{commit}}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    dest = CACHE / "src" / sha[:12]
    if not (dest / "typedtiger").is_dir():
        dest.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "archive", sha, "typedtiger"], cwd=REPO, capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    link = dest / "bench"
    if not link.exists():
        link.symlink_to(REPO / "bench")
    return dest, sha


@contextlib.contextmanager
def own_redis_server(args: argparse.Namespace, run_dir: Path) -> Iterator[None]:
    """Unless ``--port`` names one, a redis-server of this run on a free loopback port (its
    pid stopped at the end): nothing else's commands count in its commandstats."""
    args.own_server = args.port is None
    if not args.own_server:
        yield
        return
    with socket.socket() as probe:
        probe.bind((args.host, 0))
        args.port = probe.getsockname()[1]
    data = run_dir / "redis"
    data.mkdir()
    argv = ["redis-server", "--port", str(args.port), "--bind", args.host, "--save", ""]
    argv += ["--appendonly", "no", "--dir", str(data), "--logfile", str(data / "redis.log")]
    server = subprocess.Popen(argv)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis(args.host, args.port).ping()
                break
            except redis.ConnectionError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise BenchError(f"redis-server did not start; see {data}/redis.log") from None
                time.sleep(0.05)
        yield
    finally:
        server.terminate()
        server.wait(timeout=30)


def ensure_tasktiger_venv(path: Path) -> str:
    """The python of a virtualenv with tasktiger==0.26.3, created on first use."""
    python = path / "bin" / "python"
    check = [
        str(python),
        "-c",
        f"import tasktiger, importlib.metadata as m; "
        f"assert m.version('tasktiger') == '{TT_VERSION}'",
    ]
    if python.exists() and subprocess.run(check, capture_output=True, check=False).returncode == 0:
        return str(python)
    print(f"creating TaskTiger's virtualenv in {path}", flush=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["python3", "-m", "venv", str(path)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", f"tasktiger=={TT_VERSION}"], check=True
    )
    subprocess.run(check, check=True)
    return str(python)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="python -m bench.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--quick", action="store_true", help="one short repetition")
    p.add_argument("--reps", type=int, default=None, help="repetitions (default 5; quick: 1)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument(
        "--port",
        type=int,
        default=None,
        help="an existing Redis (default: start one of this run's own on a free port)",
    )
    p.add_argument("--db", type=int, default=11, help="Redis database, flushed repeatedly")
    p.add_argument("--prefix", default="tb", help="key prefix of both systems")
    p.add_argument("--tt-venv", type=Path, default=CACHE / "tasktiger-venv")
    p.add_argument(
        "--ref",
        default=None,
        help="benchmark typedtiger as of this git commit (default: the working tree)",
    )
    p.add_argument("--only", default="", help="comma-separated metrics (for debugging)")
    p.add_argument("--write-docs", action="store_true", help="rewrite docs/performance.md tables")
    p.add_argument(
        "--from-json",
        type=Path,
        default=None,
        help="report a previous run's results.json instead of measuring",
    )
    args = p.parse_args(argv)

    if args.from_json is not None:
        results = json.loads(args.from_json.read_text())
    else:
        sizes = QUICK if args.quick else FULL
        if args.reps is not None:
            sizes = Sizes(**{**sizes.__dict__, "reps": args.reps})
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        run_dir = CACHE / "runs" / stamp
        run_dir.mkdir(parents=True, exist_ok=True)
        bench = Bench(args, sizes, run_dir, ensure_tasktiger_venv(args.tt_venv))
        if args.ref is not None:
            bench.root, sha = export_ref(args.ref)
            bench.results["ref"] = sha
        bench.results["command"] = "python -m bench.run " + " ".join(
            a for a in (argv if argv is not None else sys.argv[1:])
        )
        bench.results["run_dir"] = str(run_dir)
        started = time.perf_counter()
        print(f"results and logs: {run_dir}", flush=True)
        with own_redis_server(args, run_dir):
            bench.results["redis_endpoint"] = f"{args.host}:{args.port}"
            bench.run()
        bench.results["duration_s"] = time.perf_counter() - started
        (run_dir / "results.json").write_text(json.dumps(bench.results, indent=1))
        results = bench.results
    text = report.render(results, repo=REPO)
    print(text)
    if args.write_docs:
        path = REPO / "docs" / "performance.md"
        report.write_docs(path, text)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
