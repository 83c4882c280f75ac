"""The production worker as a process: fork, hard timeouts, signals, crashes, Redis restarts.

These run real workers (subprocesses of this test) against real Redis, with the short timings
of tests/worker_main.py (a lost task is requeued after about a second).
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from tests import worker_tasks
from tests.conftest import REDIS_URL
from tests.redis_server import RedisServer
from tests.waiting import scaled, wait_until
from tests.worker_main import FAST
from typedtiger import Config, Task, TaskSpec, TaskState, Tiger, fixed
from typedtiger.backends.redis import RedisBackend
from typedtiger.exceptions import ChildProcessDied
from typedtiger.executor import ForkExecutor

REPO = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.redis, pytest.mark.timeout(240)]


def lines(ledger: Path) -> list[str]:
    return ledger.read_text().splitlines() if ledger.exists() else []


@pytest.fixture
def ledger(tmp_path: Path) -> Path:
    return tmp_path / "ledger.txt"


@pytest.fixture
def tiger(redis_db: redis.Redis[str]) -> Tiger:
    tiger = Tiger(RedisBackend(redis_db), FAST)
    tiger.adopt(worker_tasks.tiger)
    return tiger


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []

    def start(*args: str, url: str = REDIS_URL) -> subprocess.Popen[bytes]:
        with open(tmp_path / f"worker-{len(started)}.log", "wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "tests.worker_main", url, *args],
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=scaled(10))


def fork_worker(tiger: Tiger, **options: object) -> None:
    tiger.run_worker(executor=ForkExecutor(kill_grace=0.3), once=True, **options)  # type: ignore[arg-type]


def last_execution(tiger: Tiger, task: Task) -> tuple[str | None, str | None]:
    errored = Task.from_id(tiger, task.queue, TaskState.ERROR, task.id, load_executions=1)
    record = errored.executions[-1]
    return record.exception_name, record.exception


# --- in-process worker, forked children ---------------------------------------------------


def test_task_runs_in_a_forked_child(tiger: Tiger, ledger: Path) -> None:
    tiger.enqueue(TaskSpec.of(worker_tasks.record, str(ledger), "a"))
    fork_worker(tiger)
    started, done = lines(ledger)
    assert started.split()[:2] == ["started", "a"] and int(started.split()[2]) != os.getpid()
    assert done == "a"
    assert tiger.get_queue_stats() == {}


def test_hard_timeout_precedence_task_over_decorator_over_config(tiger: Tiger) -> None:
    decorated = tiger.enqueue(worker_tasks.short_fuse.spec(5))  # decorator: 0.5 s
    overridden = tiger.enqueue(worker_tasks.short_fuse.spec(0.8).evolve(hard_timeout=3))
    config_default = Tiger(
        tiger.backend, Config(default_hard_timeout=0.3, allowed_task_modules=("tests",))
    )
    plain = config_default.enqueue(TaskSpec.of(worker_tasks.sleep_for, 5))

    started = time.monotonic()
    fork_worker(config_default)
    assert time.monotonic() - started < scaled(4)

    assert last_execution(tiger, decorated)[0] == "tasktiger.exceptions:JobTimeoutException"
    assert last_execution(tiger, plain)[0] == "tasktiger.exceptions:JobTimeoutException"
    assert (
        tiger.get_queue_sizes("default", with_errors=True)[TaskState.ERROR] == 2
    )  # overridden succeeded
    with pytest.raises(Exception, match="not error"):
        Task.from_id(tiger, "default", TaskState.ERROR, overridden.id)


def test_child_that_ignores_the_alarm_is_killed(tiger: Tiger, ledger: Path) -> None:
    spec = TaskSpec.of(worker_tasks.hang_ignoring_alarm, str(ledger)).evolve(hard_timeout=0.3)
    task = tiger.enqueue(spec)
    fork_worker(tiger)
    pid = int(lines(ledger)[0].split()[2])
    name, message = last_execution(tiger, task)
    assert name == "tasktiger.exceptions:JobTimeoutException"
    assert message and "hard timeout" in message
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (TaskSpec.of(worker_tasks.exit_with, 3), "exited with code 3"),
        (TaskSpec.of(worker_tasks.kill_self, signal.SIGKILL), "SIGKILL"),
        (TaskSpec.of(worker_tasks.kill_self, signal.SIGSEGV), "SIGSEGV"),
    ],
)
def test_child_that_dies_fails_the_task_with_the_reason(
    tiger: Tiger, spec: TaskSpec, expected: str
) -> None:
    task = tiger.enqueue(spec)
    fork_worker(tiger)
    name, message = last_execution(tiger, task)
    assert name == "typedtiger.exceptions:ChildProcessDied"
    assert message is not None and expected in message


def test_child_that_dies_is_retried_when_its_policy_says_so(tiger: Tiger) -> None:
    spec = TaskSpec.of(worker_tasks.kill_self, signal.SIGKILL).evolve(
        retry=fixed(60, 2), retry_on=[ChildProcessDied]
    )
    task = tiger.enqueue(spec)
    fork_worker(tiger)
    (listed,) = Task.tasks_from_queue(tiger, "default", TaskState.SCHEDULED)[1]
    assert listed.id == task.id and listed.n_executions() == 1


# --- worker processes -------------------------------------------------------------------


def test_sigterm_lets_the_running_task_finish_and_claims_nothing_more(
    tiger: Tiger, ledger: Path, workers: Callable[..., subprocess.Popen[bytes]]
) -> None:
    tiger.enqueue(TaskSpec.of(worker_tasks.record, str(ledger), "first", 1.0))
    time.sleep(0.01)
    tiger.enqueue(TaskSpec.of(worker_tasks.record, str(ledger), "second"))
    worker = workers()
    wait_until(lambda: any(line.startswith("started first") for line in lines(ledger)), 30, "start")

    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=scaled(10)) == 0

    assert lines(ledger)[-1] == "first"
    assert not any("second" in line for line in lines(ledger))
    sizes = tiger.get_queue_sizes("default")
    assert sizes[TaskState.ACTIVE] == 0 and sizes[TaskState.QUEUED] == 1


def test_sigkilled_worker_takes_its_child_along_and_the_task_runs_again(
    tiger: Tiger, ledger: Path, workers: Callable[..., subprocess.Popen[bytes]]
) -> None:
    tiger.enqueue(TaskSpec.of(worker_tasks.record_slow_first_time, str(ledger), "a"))
    first = workers()
    wait_until(lambda: len(lines(ledger)) == 1, 30, "the task to start")
    child = int(lines(ledger)[0].split()[2])

    first.kill()
    first.wait(timeout=scaled(5))

    def child_gone() -> bool:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            return True
        return False

    wait_until(child_gone, 3, "the orphaned child to die")
    second = workers()
    wait_until(lambda: "a" in lines(ledger), 15, "the requeued task to finish")
    second.send_signal(signal.SIGTERM)
    assert second.wait(timeout=scaled(10)) == 0
    assert tiger.get_queue_stats() == {}


def test_kill_9_storm_loses_nothing(
    tiger: Tiger, ledger: Path, workers: Callable[..., subprocess.Popen[bytes]]
) -> None:
    n_tasks = 300
    tiger.enqueue_many(
        [TaskSpec.of(worker_tasks.record, str(ledger), f"t{n}", 0.02) for n in range(n_tasks)]
    )
    steady = workers()
    victim = workers()
    kills = 0
    started = time.monotonic()

    def drained() -> bool:
        return tiger.get_total_queue_size("default") == 0

    while not drained():
        assert time.monotonic() - started < scaled(50), "the storm did not drain in time"
        time.sleep(0.5)
        if victim.poll() is None and not drained():
            victim.kill()
            victim.wait()
            kills += 1
            victim = workers()
    drain_s = time.monotonic() - started
    for process in (steady, victim):
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=scaled(10))

    finished = Counter(line for line in lines(ledger) if not line.startswith("started"))
    lost = [f"t{n}" for n in range(n_tasks) if f"t{n}" not in finished]
    duplicated = sum(count - 1 for count in finished.values())
    stuck = tiger.get_queue_sizes("default")[TaskState.ACTIVE]
    errors = tiger.get_queue_sizes("default", with_errors=True)[TaskState.ERROR]
    print(
        f"scenario=kill9_worker_storm tasks={n_tasks} lost={len(lost)} duplicated={duplicated} "
        f"stuck={stuck} kills={kills} drain_s={drain_s:.1f}"
    )
    assert not lost and stuck == 0 and errors == 0


# --- Redis restart --------------------------------------------------------------------------


def test_outcome_is_recorded_after_a_redis_restart(
    own_redis: RedisServer, ledger: Path, workers: Callable[..., subprocess.Popen[bytes]]
) -> None:
    assert own_redis.client is not None
    tiger = Tiger(RedisBackend(own_redis.client), FAST)
    tiger.enqueue(TaskSpec.of(worker_tasks.record, str(ledger), "a", 1.5))
    worker = workers(url=own_redis.url())
    wait_until(lambda: len(lines(ledger)) == 1, 30, "the task to start")

    own_redis.shutdown()  # fsyncs the AOF; down for 2 s while the task runs
    time.sleep(2)
    own_redis.start()

    wait_until(lambda: "a" in lines(ledger), 10, "the task to finish")
    wait_until(lambda: tiger.get_queue_stats() == {}, 15, "the outcome to be recorded")
    assert worker.poll() is None, "the worker exited during the outage"
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=scaled(10)) == 0


def test_locked_tasks_with_the_same_key_never_overlap(
    tiger: Tiger, ledger: Path, workers: Callable[..., subprocess.Popen[bytes]]
) -> None:
    n_tasks, keys = 200, 5
    tiger.enqueue_many(
        [
            TaskSpec.of(
                worker_tasks.record_span, str(ledger), key=f"k{n % keys}", item=str(n), seconds=0.01
            ).evolve(lock_key=["key"])
            for n in range(n_tasks)
        ]
    )
    first, second = workers(), workers()
    wait_until(lambda: len(lines(ledger)) == n_tasks, 50, "every locked task to run")
    for process in (first, second):
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=scaled(10)) == 0

    spans: dict[str, list[tuple[float, float]]] = {}
    for line in lines(ledger):
        key, _item, start, end = line.split()
        spans.setdefault(key, []).append((float(start), float(end)))
    overlaps = 0
    for intervals in spans.values():
        intervals.sort()
        overlaps += sum(1 for (_, end), (start, _) in itertools.pairwise(intervals) if start < end)
    assert sorted(spans) == [f"k{n}" for n in range(keys)]
    assert overlaps == 0
    assert tiger.get_queue_stats() == {}


def test_concurrency_runs_tasks_side_by_side(
    tiger: Tiger, ledger: Path, workers: Callable[..., subprocess.Popen[bytes]]
) -> None:
    tiger.enqueue_many(
        [
            TaskSpec.of(worker_tasks.record_span, str(ledger), key="k", item=f"t{n}", seconds=1.0)
            for n in range(4)
        ]
    )
    worker = workers("-c", "4", "--exit-after", "idle")
    assert worker.wait(timeout=scaled(30)) == 0
    spans = [line.split() for line in lines(ledger)]
    assert sorted(item for _key, item, _start, _end in spans) == ["t0", "t1", "t2", "t3"]
    # Side by side: every task started before any of them ended (one by one, none would).
    last_start = max(float(start) for _key, _item, start, _end in spans)
    first_end = min(float(end) for _key, _item, _start, end in spans)
    assert last_start < first_end, spans
    assert tiger.get_queue_stats() == {}
