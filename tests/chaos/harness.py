"""What the chaos scenarios share: the ledger, worker processes, safe child kills, figures.

Workers run as ``python -m tests.worker_main URL -m tests.chaos_tasks`` (the FAST timings of
tests/worker_main.py: heartbeat every 0.2 s, a task whose heartbeat is 1 s old is requeued, a
requeue pass every 0.3 s). Tasks are tests.chaos_tasks functions writing ``begin``/``end`` lines
into a ledger file.
"""

from __future__ import annotations

import contextlib
import functools
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path

import attrs

from tests.waiting import scaled, wait_until
from typedtiger import TaskState, Tiger

REPO = Path(__file__).resolve().parents[2]

#: Bounds for waits on a loaded 2-core machine shared with other test runs (scaled by
#: $TYPEDTIGER_TEST_TIME_SCALE, tests/waiting.py).
START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0


# --- the ledger --------------------------------------------------------------------------


@attrs.frozen
class Mark:
    """One ledger line: ``begin``/``end``, the item, the pid that wrote it, when."""

    what: str
    item: str
    pid: int
    at: float


class Ledger:
    """The ledger file the chaos tasks append to."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def marks(self) -> list[Mark]:
        if not self.path.exists():
            return []
        marks = []
        for line in self.path.read_text(encoding="utf8").splitlines():
            parts = line.split()
            if len(parts) == 4 and parts[0] in ("begin", "end"):
                marks.append(Mark(parts[0], parts[1], int(parts[2]), float(parts[3])))
        return marks

    def ends(self) -> Counter[str]:
        """How many runs of each item finished."""
        return Counter(mark.item for mark in self.marks() if mark.what == "end")

    def running(self) -> list[Mark]:
        """``begin`` marks of runs that have not written their ``end`` (by pid and item)."""
        open_runs: dict[tuple[str, int], Mark] = {}
        for mark in self.marks():
            if mark.what == "begin":
                open_runs[(mark.item, mark.pid)] = mark
            else:
                open_runs.pop((mark.item, mark.pid), None)
        return list(open_runs.values())

    def intervals(self) -> dict[str, list[tuple[float, float]]]:
        """item -> (begin, end) of each finished run, matched by pid."""
        begun: dict[tuple[str, int], float] = {}
        runs: dict[str, list[tuple[float, float]]] = defaultdict(list)
        for mark in self.marks():
            if mark.what == "begin":
                begun[(mark.item, mark.pid)] = mark.at
            elif (start := begun.pop((mark.item, mark.pid), None)) is not None:
                runs[mark.item].append((start, mark.at))
        return runs


def overlaps(intervals: Iterable[tuple[float, float]]) -> int:
    """How many runs begin before the previous one (by start time) has ended."""
    count = 0
    latest_end = float("-inf")
    for start, end in sorted(intervals):
        if start < latest_end:
            count += 1
        latest_end = max(latest_end, end)
    return count


# --- processes ---------------------------------------------------------------------------


def parent_pid(pid: int) -> int | None:
    """The parent of ``pid`` per /proc, None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rpartition(")")[2].split()[1])


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (its children, theirs...), per /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            parent = parent_pid(int(entry.name))
            if parent is not None:
                children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        below = children.get(todo.pop(), [])
        found += below
        todo += below
    return found


def worker_of(pid: int, workers: set[int]) -> int | None:
    """The worker among ``workers`` whose task ``pid`` runs: its parent (a worker forks each
    task's child itself); None if it is no child of theirs."""
    parent = parent_pid(pid)
    return parent if parent in workers else None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def kill_child_of(pid: int, workers: set[int]) -> bool:
    """SIGKILL ``pid`` only if it (still) runs a task of one of ``workers`` (``worker_of``).

    The pid is pinned with a pidfd before its parent is checked, so a recycled pid (another
    user's process) can never be signalled.
    """
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        return False
    try:
        if worker_of(pid, workers) is None:
            return False
        try:
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        except ProcessLookupError:
            return False
        return True
    finally:
        os.close(pidfd)


class WorkerPool:
    """Worker subprocesses of one test; whatever is left is killed at ``close``."""

    def __init__(self, url: str, logs: Path) -> None:
        self.url = url
        self.logs = logs
        self.started: list[subprocess.Popen[bytes]] = []
        self._log_paths: dict[int, Path] = {}

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        """A worker with the FAST timings (tests/worker_main.py)."""
        command = [sys.executable, "-m", "tests.worker_main", self.url]
        return self._spawn([*command, "-m", "tests.chaos_tasks", *args])

    def start_cli(self, *args: str) -> subprocess.Popen[bytes]:
        """``typedtiger worker``, with the default Config."""
        command = [sys.executable, "-m", "typedtiger.cli", "worker", "--url", self.url]
        return self._spawn([*command, "-m", "tests.chaos_tasks", *args])

    def _spawn(self, command: list[str]) -> subprocess.Popen[bytes]:
        log_path = self.logs / f"worker-{len(self.started)}.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(  # a process group of its own, as a service's
                command,
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.started.append(process)
        self._log_paths[process.pid] = log_path
        return process

    def is_ready(self, process: subprocess.Popen[bytes]) -> bool:
        """Whether the worker has logged ``ready`` (its signal handlers follow at once)."""
        text = self._log_paths[process.pid].read_text(errors="replace")
        return '"event": "ready"' in text

    def _ready_or_gone(self, process: subprocess.Popen[bytes]) -> bool:
        return process.poll() is not None or self.is_ready(process)

    def wait_ready(self) -> None:
        """Wait until every live worker is ready: a SIGTERM sent while a worker is still
        importing takes the default action (it had claimed nothing)."""
        for process in self.alive():
            wait_until(
                functools.partial(self._ready_or_gone, process),
                START_TIMEOUT,
                f"worker {process.pid} to be ready",
            )
        time.sleep(0.1)

    def alive(self) -> list[subprocess.Popen[bytes]]:
        return [process for process in self.started if process.poll() is None]

    def pids(self) -> set[int]:
        return {process.pid for process in self.alive()}

    def pick(self) -> subprocess.Popen[bytes]:
        return random.choice(self.alive())

    def kill(self, process: subprocess.Popen[bytes]) -> None:
        process.kill()
        process.wait(timeout=scaled(STOP_TIMEOUT))

    def stop_all(self) -> list[int | None]:
        """SIGTERM every live worker and wait; their exit codes (None: had to be killed)."""
        codes: list[int | None] = []
        self.wait_ready()
        running = self.alive()
        for process in running:
            process.send_signal(signal.SIGTERM)
        for process in running:
            try:
                codes.append(process.wait(timeout=scaled(STOP_TIMEOUT)))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                codes.append(None)
        return codes

    def close(self) -> None:
        for process in self.started:
            if process.poll() is None:
                process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=scaled(STOP_TIMEOUT))

    def log_tail(self, lines: int = 15) -> str:
        """The last lines of every worker log (for assertion messages)."""
        parts = []
        for path in sorted(self.logs.glob("worker-*.log")):
            tail = path.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {path.name}\n" + "\n".join(tail))
        return "\n".join(parts)


# --- figures -----------------------------------------------------------------------------


def pending(tiger: Tiger, queue: str) -> int:
    """Tasks of ``queue`` still queued, active or scheduled."""
    return tiger.get_total_queue_size(queue)


@attrs.frozen
class Figures:
    """What a scenario measured; ``line`` is the one line it reports."""

    scenario: str
    tasks: int
    lost: int
    duplicated: int
    stuck: int
    drain_s: float
    errors: int = 0
    #: Worker processes that exited on their own (None: not counted by the scenario).
    worker_crashes: int | None = None

    @property
    def line(self) -> str:
        crashes = "" if self.worker_crashes is None else f" worker_crashes={self.worker_crashes}"
        return (
            f"scenario={self.scenario} tasks={self.tasks} lost={self.lost} "
            f"duplicated={self.duplicated} stuck={self.stuck}{crashes} drain_s={self.drain_s:.1f}"
        )


def measure(
    scenario: str, tiger: Tiger, queue: str, ledger: Ledger, items: list[str], drain_s: float
) -> Figures:
    """Figures of a scenario whose ``items`` must each finish once (at least).

    - lost: items that never finished and are no longer pending (dropped or in error),
    - duplicated: extra finished runs (each run of an item beyond its first),
    - stuck: tasks still queued, active or scheduled at the end,
    - errors: tasks in the error state.
    """
    ends = ledger.ends()
    sizes = tiger.get_queue_sizes(queue, with_errors=True)
    stuck = sizes[TaskState.QUEUED] + sizes[TaskState.ACTIVE] + sizes[TaskState.SCHEDULED]
    unfinished = [item for item in items if not ends[item]]
    return Figures(
        scenario=scenario,
        tasks=len(items),
        lost=max(0, len(unfinished) - stuck),
        duplicated=sum(ends[item] - 1 for item in items if ends[item] > 1),
        stuck=stuck,
        drain_s=drain_s,
        errors=sizes[TaskState.ERROR],
    )


def error_details(tiger: Tiger, queue: str, limit: int = 5) -> str:
    """The last execution of up to ``limit`` tasks in the error state (for failure messages)."""
    from typedtiger import Task

    _total, tasks = Task.tasks_from_queue(
        tiger, queue, TaskState.ERROR, limit=limit, load_executions=1
    )
    lines = []
    for task in tasks:
        record = task.executions[-1] if task.executions else None
        name = record.exception_name if record else None
        message = record.exception if record else None
        lines.append(f"error {task.id[:12]} {task.args!r}: {name}: {message}")
    return "\n".join(lines)
