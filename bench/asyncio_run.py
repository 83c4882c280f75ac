"""The asyncio benchmark (issue 21): one worker process at concurrency 100 draining N async tasks,
typedtiger (``--executor asyncio``) against arq 0.28, SAQ 0.26 and taskiq 0.13 (taskiq-redis
1.2), on a redis-server of the run's own.

    .venv/bin/python -m bench.asyncio_run [--reps 5] [--noop 10000] [--sleep 2000]
        [--systems typedtiger,arq,saq,taskiq] [--out results.json]

Workloads: ``anoop`` (an ``async def`` that returns at once) and ``asleep`` (awaits
``asyncio.sleep(0.05)``), from bench.async_tasks. Each measurement flushes the database, queues
the tasks (one by one, 100 side by side, not timed), then starts one worker process, as its
users start it, and times it from start to exit once the queue is drained: typedtiger
``--exit-after idle``, arq and SAQ in burst mode, taskiq after N tasks (it has no burst mode:
bench.asyncio_taskiq). The same worker started on an empty queue (taskiq: with one task) gives
its start-up, empty-queue detection and shutdown time, subtracted to give the drain rate. The
systems take turns, the first one rotating from one repetition to the next.

Redis commands per task are counted with ``INFO commandstats`` (commands run inside Lua
scripts included) before and after each worker, less the empty-queue run's, over N. Round trips
(commands or pipelines sent) are counted in one more run of each worker and of each enqueue
with bench.asyncio_sends, after the timed runs. Worker CPU is the worker process's and its
reaped children's (``wait4``).

The peers run from venvs of their own (their redis-py pins conflict), created on first use
in ``~/.cache/typedtiger-bench/asyncio-<system>-venv`` from PyPI with pinned versions (PEERS).
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
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import redis

from bench.asyncio_peers import CONCURRENCY

REPO = Path(__file__).resolve().parent.parent
CACHE = Path.home() / ".cache" / "typedtiger-bench"
DB = 11
WORKLOADS = ("anoop", "asleep")

#: The peers' pinned requirements, one venv each, and what their worker imports.
PEERS: dict[str, tuple[list[str], str]] = {
    "arq": (["arq==0.28.0"], "arq.cli"),
    # SAQ 0.26.4 imports typing_extensions without requiring it.
    "saq": (["saq[redis]==0.26.4", "typing-extensions"], "saq.__main__"),
    "taskiq": (["taskiq==0.13.0", "taskiq-redis==1.2.4"], "taskiq_redis"),
}


class System(NamedTuple):
    """How one system is run: its Python, its enqueue module, its worker."""

    python: str
    #: ``python -m MODULE enqueue N TASK`` queues N tasks (its entry point is ``MODULE:main``).
    enqueue_module: str
    #: The worker as its users start it ("{n}": the number of tasks queued).
    command: list[str]
    #: The same worker as ``module:function`` and arguments, for bench.asyncio_sends.
    entry: list[str]
    #: Tasks the "empty queue" run is given (taskiq's worker stops after N tasks, N >= 1).
    idle_tasks: int = 0


def fill(argv: list[str], n: int) -> list[str]:
    return [arg.replace("{n}", str(n)) for arg in argv]


def ensure_venv(system: str) -> str:
    """The python of ``system``'s venv, created (python3 -m venv + pip install) on first use."""
    path = CACHE / f"asyncio-{system}-venv"
    python = path / "bin" / "python"
    requirements, module = PEERS[system]
    pins = {r.split("==")[0].split("[")[0]: r.split("==")[1] for r in requirements if "==" in r}
    check = [str(python), "-c", f"import importlib.metadata as m, sys, {module}; "
             f"sys.exit(any(m.version(p) != v for p, v in {pins!r}.items()))"]  # fmt: skip
    if python.exists() and subprocess.run(check, capture_output=True, check=False).returncode == 0:
        return str(python)
    print(f"creating {system}'s virtualenv in {path}", flush=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["python3", "-m", "venv", "--clear", str(path)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", *requirements], check=True)
    subprocess.run(check, check=True)
    return str(python)


def make_system(name: str, url: str) -> System:
    if name == "typedtiger":
        program = shutil.which("typedtiger", path=str(Path(sys.executable).parent))
        assert program is not None, "typedtiger's console script, beside this python"
        args = ["worker", "--url", url, "-m", "bench.async_tasks", "--executor", "asyncio",
                "-c", str(CONCURRENCY), "--exit-after", "idle"]  # fmt: skip
        return System(sys.executable, "bench.asyncio_typedtiger", [program, *args],
                      ["typedtiger._console:main", *args])  # fmt: skip
    python = ensure_venv(name)
    script = Path(python).parent
    if name == "arq":
        args = ["bench.asyncio_arq.WorkerSettings", "--burst"]
        return System(python, "bench.asyncio_arq", [str(script / "arq"), *args],
                      ["arq.cli:cli", *args])  # fmt: skip
    if name == "saq":
        args = ["bench.asyncio_saq.settings", "-v"]  # -v: INFO, the level typedtiger logs at
        return System(python, "bench.asyncio_saq", [str(script / "saq"), *args],
                      ["saq.__main__:main", *args])  # fmt: skip
    if name == "taskiq":
        args = ["worker", "{n}"]
        return System(python, "bench.asyncio_taskiq", [python, "-m", "bench.asyncio_taskiq", *args],
                      ["bench.asyncio_taskiq:main", *args], idle_tasks=1)  # fmt: skip
    raise SystemExit(f"unknown system {name!r}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def redis_server(folder: Path) -> Iterator[int]:
    """A redis-server of this run's own on a free port (commandstats are server-wide)."""
    port = free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(folder)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        client = redis.Redis(port=port)
        for _ in range(500):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.01)
        else:
            raise RuntimeError("redis-server did not start")
        yield port
    finally:
        server.terminate()
        server.wait()


def delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """Calls per command between two snapshots, INFO left out (the orchestrator's own)."""
    return {name: after[name] - before.get(name, 0) for name in after
            if name != "info" and after[name] != before.get(name, 0)}  # fmt: skip


class Bench:
    def __init__(self, port: int, folder: Path) -> None:
        self.url = f"redis://127.0.0.1:{port}/{DB}"
        self.client = redis.Redis(port=port, db=DB)
        self.folder = folder
        self.env = {**os.environ, "BENCH_REDIS_URL": self.url, "PYTHONPATH": str(REPO)}

    def stats(self) -> tuple[dict[str, int], float]:
        """Calls per command so far, and the server's CPU seconds."""
        info: Mapping[str, Any] = self.client.info("commandstats")
        calls = {key.removeprefix("cmdstat_"): int(value["calls"]) for key, value in info.items()}
        cpu: Mapping[str, Any] = self.client.info("cpu")
        return calls, float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])

    def run(self, argv: list[str], log: Path) -> tuple[float, float]:
        """Run argv to its end: wall seconds, CPU seconds (it and its reaped children)."""
        with log.open("ab") as out:
            started = time.perf_counter()
            process = subprocess.Popen(argv, env=self.env, stdout=out, stderr=out, cwd=REPO)
            _, status, usage = os.wait4(process.pid, 0)
            wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            raise RuntimeError(f"{argv} exited with {process.returncode}; see {log}")
        return wall, usage.ru_utime + usage.ru_stime

    def enqueue(
        self, system: System, task: str, n: int, log: Path, sends: Path | None = None
    ) -> dict[str, int]:
        """Flush the database and queue n tasks: the commands that ran."""
        self.client.flushdb()
        if n == 0:
            return {}
        args = ["enqueue", str(n), task]
        if sends is None:
            argv = [system.python, "-m", system.enqueue_module, *args]
        else:
            argv = [system.python, "-m", "bench.asyncio_sends", str(sends),
                    f"{system.enqueue_module}:main", *args]  # fmt: skip
        calls, _ = self.stats()
        self.run(argv, log)
        return delta(calls, self.stats()[0])

    def measure(self, system: System, task: str, n: int, log: Path) -> dict[str, Any]:
        """One timed worker over n queued tasks: wall, CPU, commands and Redis CPU."""
        enqueued = self.enqueue(system, task, n, log)
        calls, redis_cpu = self.stats()
        wall, cpu = self.run(fill(system.command, n), log)
        calls_after, redis_cpu_after = self.stats()
        return {"wall": wall, "cpu": cpu, "redis_cpu": redis_cpu_after - redis_cpu,
                "commands": delta(calls, calls_after), "enqueue_commands": enqueued,
                "keys_left": self.client.dbsize()}  # fmt: skip

    def count_round_trips(self, system: System, task: str, n: int, log: Path) -> dict[str, Any]:
        """Round trips of the enqueue of n tasks and of the worker draining them."""
        enqueue_out, worker_out = self.folder / "sends-enqueue.json", self.folder / "sends.json"
        self.enqueue(system, task, n, log, sends=enqueue_out)
        argv = [system.python, "-m", "bench.asyncio_sends", str(worker_out),
                *fill(system.entry, n)]  # fmt: skip
        self.run(argv, log)
        result: dict[str, Any] = {"worker": json.loads(worker_out.read_text())}
        if n:
            result["enqueue"] = json.loads(enqueue_out.read_text())
        return result


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.asyncio_run", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--noop", type=int, default=10_000)
    parser.add_argument("--sleep", type=int, default=2_000)
    parser.add_argument("--systems", default="typedtiger,arq,saq,taskiq")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    sizes = {"anoop": args.noop, "asleep": args.sleep}
    names = args.systems.split(",")
    folder = Path(tempfile.mkdtemp(prefix="bench-asyncio-"))
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load = os.getloadavg()
    results: dict[str, dict[str, list[dict[str, Any]]]] = {name: {} for name in names}
    round_trips: dict[str, dict[str, Any]] = {name: {} for name in names}
    with redis_server(folder) as port:
        bench = Bench(port, folder)
        systems = {name: make_system(name, bench.url) for name in names}
        for rep in range(args.reps):
            order = names[rep % len(names) :] + names[: rep % len(names)]
            for workload in ("idle", *WORKLOADS):
                for name in order:
                    system = systems[name]
                    n = system.idle_tasks if workload == "idle" else sizes[workload]
                    task = "anoop" if workload == "idle" else workload
                    one = bench.measure(system, task, n, folder / f"{name}.log")
                    results[name].setdefault(workload, []).append(one)
                    wall, cpu, left = one["wall"], one["cpu"], one["keys_left"]
                    print(f"rep {rep + 1} {name} {workload} n={n}: {wall:.2f} s, CPU {cpu:.2f} s,"
                          f" {left} keys left", flush=True)  # fmt: skip
        for name, system in systems.items():
            for workload in ("idle", *WORKLOADS):
                n = system.idle_tasks if workload == "idle" else sizes[workload]
                task = "anoop" if workload == "idle" else workload
                log = folder / f"{name}.log"
                round_trips[name][workload] = bench.count_round_trips(system, task, n, log)
        server_version = str(bench.client.info("server")["redis_version"])
    data = {
        "started": started, "load_at_start": load, "load_at_end": os.getloadavg(),
        "argv": sys.argv, "sizes": sizes, "reps": args.reps, "redis": server_version,
        "versions": {name: versions(systems[name].python) for name in names},
        "results": results, "round_trips": round_trips,
    }  # fmt: skip
    (folder / "results.json").write_text(json.dumps(data, indent=1))
    if args.out is not None:
        args.out.write_text(json.dumps(data, indent=1))
    print(report(data))
    print(f"raw results and logs: {folder}")


def versions(python: str) -> dict[str, str]:
    code = ("import importlib.metadata as m, json, sys\n"
            "out = {'python': sys.version.split()[0]}\n"
            "for p in ('typedtiger', 'arq', 'saq', 'taskiq', 'taskiq-redis', 'redis', 'hiredis',"
            " 'uvloop'):\n"
            "    try: out[p] = m.version(p)\n"
            "    except m.PackageNotFoundError: pass\n"
            "print(json.dumps(out))")  # fmt: skip
    # run from /: the repository's metadata must not be found on a peer's path
    out = subprocess.run([python, "-c", code], capture_output=True, check=True, text=True, cwd="/")
    found: dict[str, str] = json.loads(out.stdout)
    return found


def med_range(values: list[float], fmt: str) -> str:
    values = sorted(values)
    return f"{statistics.median(values):{fmt}} ({values[0]:{fmt}}-{values[-1]:{fmt}})"


def rates(data: dict[str, Any], name: str, workload: str) -> list[float]:
    """Drain rates of each repetition: n / (wall - median wall of the empty-queue run)."""
    runs = data["results"][name]
    idle = statistics.median(run["wall"] for run in runs["idle"])
    n = data["sizes"][workload]
    return [n / max(run["wall"] - idle, 1e-9) for run in runs[workload]]


def per_task(data: dict[str, Any], name: str, workload: str, key: str) -> float:
    """Median over repetitions of (key of the run - median key of the empty-queue run) / n."""
    runs = data["results"][name]
    idle = statistics.median([value(run, key) for run in runs["idle"]])
    n: int = data["sizes"][workload]
    return statistics.median([(value(run, key) - idle) / n for run in runs[workload]])


def value(run: dict[str, Any], key: str) -> float:
    if key == "commands":
        return float(sum(run["commands"].values()))
    return float(run[key])


def report(data: dict[str, Any]) -> str:
    names = list(data["results"])
    lines = [
        "| system | workload | worker wall s | empty-queue run s | tasks/s | "
        "worker CPU µs/task | Redis CPU µs/task |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for workload in WORKLOADS:
        for name in names:
            runs = data["results"][name]
            lines.append(
                f"| {name} | {data['sizes'][workload]:,} {workload} | "
                f"{med_range([r['wall'] for r in runs[workload]], '.2f')} | "
                f"{statistics.median(r['wall'] for r in runs['idle']):.2f} | "
                f"{med_range(rates(data, name, workload), ',.0f')} | "
                f"{1e6 * per_task(data, name, workload, 'cpu'):.0f} | "
                f"{1e6 * per_task(data, name, workload, 'redis_cpu'):.0f} |"
            )
    if "typedtiger" in names:
        lines += ["", "| workload | peer | typedtiger ÷ peer, tasks/s (median, range) |",
                  "|---|---|---:|"]  # fmt: skip
        for workload in WORKLOADS:
            ours = rates(data, "typedtiger", workload)
            for name in names:
                if name != "typedtiger":
                    # per repetition: the systems ran side by side in it
                    theirs = rates(data, name, workload)
                    ratios = [a / b for a, b in zip(ours, theirs, strict=True)]
                    lines.append(f"| {workload} | {name} | {med_range(ratios, '.2f')} |")
    lines += ["", "| system | workload | enqueue: commands/task | round trips/task | "
              "worker: commands/task | round trips/task |",
              "|---|---|---:|---:|---:|---:|"]  # fmt: skip
    for name in names:
        for workload in WORKLOADS:
            n = data["sizes"][workload]
            trips = data["round_trips"][name]
            idle_trips = trips["idle"]["worker"]["round_trips"]
            enqueued = statistics.median(
                sum(r["enqueue_commands"].values()) for r in data["results"][name][workload]
            )
            lines.append(
                f"| {name} | {workload} | {enqueued / n:.2f} | "
                f"{trips[workload]['enqueue']['round_trips'] / n:.2f} | "
                f"{per_task(data, name, workload, 'commands'):.2f} | "
                f"{(trips[workload]['worker']['round_trips'] - idle_trips) / n:.2f} |"
            )
    lines += ["", "By command, per task (the last repetition; worker: empty-queue run "
              "subtracted):", ""]  # fmt: skip
    for name in names:
        for workload in WORKLOADS:
            lines.append(f"- {name} {workload}: {breakdown(data, name, workload)}")
    return "\n".join(lines)


def per_command(counts: dict[str, int], idle: dict[str, int], n: int) -> str:
    per = {cmd: (counts.get(cmd, 0) - idle.get(cmd, 0)) / n for cmd in set(idle) | set(counts)}
    shown = sorted(per.items(), key=lambda item: (-item[1], item[0]))
    return ", ".join(f"{cmd} {v:.2f}" for cmd, v in shown if abs(v) >= 0.005) or "-"


def breakdown(data: dict[str, Any], name: str, workload: str) -> str:
    runs = data["results"][name]
    n = data["sizes"][workload]
    trips = data["round_trips"][name]
    last = runs[workload][-1]
    enqueue_sent = trips[workload]["enqueue"]["by_command"]
    worker_sent = trips[workload]["worker"]["by_command"]
    return (
        f"enqueue runs {per_command(last['enqueue_commands'], {}, n)}, sends "
        f"{per_command(enqueue_sent, {}, n)}; worker runs "
        f"{per_command(last['commands'], runs['idle'][-1]['commands'], n)}, sends "
        f"{per_command(worker_sent, trips['idle']['worker']['by_command'], n)}"
    )


if __name__ == "__main__":
    main()
