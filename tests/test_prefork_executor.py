"""PreforkExecutor: a pool of long-lived children; real forks, real signals, small timeouts.

The executor-level tests run Jobs directly (the functions resolved as a worker would, on a
FakeBackend Tiger that no child touches); the worker-level ones run a worker on real Redis.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import click
import pytest
import redis

from tests import prefork_tasks, worker_tasks
from tests.conftest import REDIS_URL
from tests.waiting import scaled, wait_until
from tests.worker_main import FAST
from typedtiger import Config, Task, TaskSpec, TaskState, Tiger
from typedtiger._json import JSONValue
from typedtiger.backends.fake import FakeBackend
from typedtiger.backends.redis import RedisBackend
from typedtiger.clock import SystemClock
from typedtiger.executor import Failed, Job, Outcome, PreforkExecutor, Succeeded
from typedtiger.serialization import TaskPayload
from typedtiger.worker.prefork_child import resident_bytes
from typedtiger.worker.resolve import Resolver

REPO = Path(__file__).resolve().parent.parent
JOB_TIMEOUT = "tasktiger.exceptions:JobTimeoutException"
CHILD_DIED = "typedtiger.exceptions:ChildProcessDied"
pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux process model"),
]

RESOLVER = Resolver(
    Tiger(FakeBackend(), Config(allowed_task_modules=("tests",)), clock=SystemClock())
)


def job(func: Callable[..., object], *args: JSONValue, hard_timeout: float = 30.0) -> Job:
    payload = TaskPayload(id="t1", func=f"{func.__module__}:{func.__name__}", args=tuple(args))
    return Job(
        queue="q", func=payload.func, batch=False, hard_timeout=hard_timeout, tasks=(payload,)
    )


def run_one(executor: PreforkExecutor, work: Job) -> Outcome:
    outcome = executor.start(work, RESOLVER.run_job).wait(None)
    assert outcome is not None
    return outcome


def failed(outcome: Outcome) -> Failed:
    assert isinstance(outcome, Failed), outcome
    return outcome


def pids_in(path: Path) -> list[int]:
    return [int(line.split()[0]) for line in path.read_text().splitlines()]


def alive(pid: int) -> bool:
    """Whether ``pid`` exists (a zombie counts: it was not reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def executor() -> Iterator[PreforkExecutor]:
    executor = PreforkExecutor(kill_grace=0.3)
    yield executor
    pids = executor.pids()
    executor.close()
    assert executor.pids() == []
    assert not [pid for pid in pids if alive(pid)], "close left a child"


# --- the executor on its own ------------------------------------------------------------------


def test_children_run_jobs_one_after_the_other(executor: PreforkExecutor, tmp_path: Path) -> None:
    path = tmp_path / "pids"
    for _ in range(3):
        assert isinstance(run_one(executor, job(prefork_tasks.append_pid, str(path))), Succeeded)
    assert len(set(pids_in(path))) == 1 and pids_in(path)[0] != os.getpid()
    message = failed(run_one(executor, job(prefork_tasks.fail, "boom"))).message
    assert message == "boom"
    assert executor.pids() == [pids_in(path)[0]]


def test_module_state_is_shared_by_tasks_in_one_child(
    executor: PreforkExecutor, tmp_path: Path
) -> None:
    """What prefork does not isolate: a later task in the same child sees a global changed."""
    path = tmp_path / "counts"
    for _ in range(3):
        run_one(executor, job(prefork_tasks.count, str(path)))
    assert len({line.split()[0] for line in path.read_text().splitlines()}) == 1
    assert [line.split()[1] for line in path.read_text().splitlines()] == ["1", "2", "3"]
    assert prefork_tasks.COUNT == [0]  # the worker's own copy is untouched


def test_side_by_side_jobs_run_in_different_children(
    executor: PreforkExecutor, tmp_path: Path
) -> None:
    path = tmp_path / "pids"
    started = [executor.start(job(prefork_tasks.append_pid, str(path), 0.5), RESOLVER.run_job)]
    started.append(executor.start(job(prefork_tasks.append_pid, str(path), 0.5), RESOLVER.run_job))
    assert all(isinstance(running.wait(None), Succeeded) for running in started)
    assert len(set(pids_in(path))) == 2 and sorted(set(pids_in(path))) == executor.pids()


def test_hard_timeout_kills_and_replaces_only_that_child(
    executor: PreforkExecutor, tmp_path: Path
) -> None:
    hang, other = tmp_path / "hang", tmp_path / "other"
    hung = executor.start(
        job(prefork_tasks.hang_deaf_to_alarm, str(hang), hard_timeout=0.5), RESOLVER.run_job
    )
    slow = executor.start(job(prefork_tasks.append_pid, str(other), 1.5), RESOLVER.run_job)
    outcome = failed(hung.wait(None) or Succeeded(time_started=0, time_finished=0))
    assert outcome.exception_name == JOB_TIMEOUT and "hard timeout" in outcome.message
    (hung_pid,) = pids_in(hang)
    assert not alive(hung_pid)
    assert isinstance(slow.wait(None), Succeeded)  # the other child went on
    (kept,) = pids_in(other)
    assert executor.pids() == [kept]
    both = [
        executor.start(job(prefork_tasks.append_pid, str(other), 0.3), RESOLVER.run_job)
        for _ in range(2)
    ]
    assert all(isinstance(running.wait(None), Succeeded) for running in both)
    later = pids_in(other)[1:]
    assert kept in later  # the other child kept its pid
    (new,) = set(later) - {kept}  # the next task ran in a new child
    assert new != hung_pid


def test_child_stopped_by_its_alarm_is_replaced(executor: PreforkExecutor, tmp_path: Path) -> None:
    path = tmp_path / "pids"
    run_one(executor, job(prefork_tasks.append_pid, str(path)))
    outcome = failed(run_one(executor, job(worker_tasks.sleep_for, 5, hard_timeout=0.3)))
    assert outcome.exception_name == JOB_TIMEOUT
    run_one(executor, job(prefork_tasks.append_pid, str(path)))
    first, second = pids_in(path)
    assert first != second and executor.pids() == [second]
    executor.close()  # (the replaced child is reaped at the next start or here)
    assert not alive(first)


@pytest.mark.parametrize(
    ("crash", "expected"),
    [
        ((prefork_tasks.exit_with, 3), "exited with code 3"),
        ((prefork_tasks.kill_self, signal.SIGKILL), "SIGKILL"),
        ((prefork_tasks.kill_self, signal.SIGSEGV), "SIGSEGV"),
    ],
)
def test_child_crash_fails_only_its_task_and_the_pool_recovers(
    executor: PreforkExecutor,
    tmp_path: Path,
    crash: tuple[Callable[..., object], int],
    expected: str,
) -> None:
    func, arg = crash
    dead, other = tmp_path / "dead", tmp_path / "other"
    slow = executor.start(job(prefork_tasks.append_pid, str(other), 1.0), RESOLVER.run_job)
    outcome = failed(run_one(executor, job(func, str(dead), arg)))
    assert outcome.exception_name == CHILD_DIED and expected in outcome.message
    assert isinstance(slow.wait(None), Succeeded)
    (dead_pid,) = pids_in(dead)
    assert not alive(dead_pid)
    assert isinstance(run_one(executor, job(prefork_tasks.append_pid, str(other))), Succeeded)
    assert dead_pid not in pids_in(other)


def test_child_killed_while_idle_is_replaced(executor: PreforkExecutor, tmp_path: Path) -> None:
    path = tmp_path / "pids"
    run_one(executor, job(prefork_tasks.append_pid, str(path)))
    (pid,) = executor.pids()
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] == "Z", 10, "death")
    assert isinstance(run_one(executor, job(prefork_tasks.append_pid, str(path))), Succeeded)
    assert pids_in(path)[1] != pid and not alive(pid)


def test_max_tasks_per_child_replaces_the_child(tmp_path: Path) -> None:
    executor = PreforkExecutor(max_tasks_per_child=2)
    path = tmp_path / "pids"
    try:
        for _ in range(5):
            run_one(executor, job(prefork_tasks.append_pid, str(path)))
    finally:
        executor.close()
    a, a2, b, b2, c = pids_in(path)
    assert a == a2 and b == b2 and len({a, b, c}) == 3
    assert not any(alive(pid) for pid in (a, b, c))


def test_max_memory_per_child_replaces_the_child(tmp_path: Path) -> None:
    executor = PreforkExecutor(max_memory_per_child=resident_bytes() + (64 << 20))
    path = tmp_path / "pids"
    try:
        run_one(executor, job(prefork_tasks.append_pid, str(path)))
        run_one(executor, job(prefork_tasks.append_pid, str(path)))  # small: kept
        run_one(executor, job(prefork_tasks.keep_memory, str(path), 160))  # passes the limit
        run_one(executor, job(prefork_tasks.append_pid, str(path)))
    finally:
        executor.close()
    a, a2, big, after = pids_in(path)
    assert a == a2 == big and after != a and not alive(a)


def test_every_job_must_use_the_same_run(executor: PreforkExecutor) -> None:
    run_one(executor, job(prefork_tasks.fail, "x"))
    other = Resolver(Tiger(FakeBackend(), Config(allowed_task_modules=("tests",))))
    with pytest.raises(ValueError, match="RunJob its children were forked with"):
        executor.start(job(prefork_tasks.fail, "x"), other.run_job)
    assert isinstance(run_one(executor, job(prefork_tasks.fail, "x")), Failed)


def test_limits_are_checked() -> None:
    with pytest.raises(ValueError, match="max_tasks_per_child"):
        PreforkExecutor(max_tasks_per_child=0)
    with pytest.raises(ValueError, match="max_memory_per_child"):
        PreforkExecutor(max_memory_per_child=0)
    with pytest.raises(ValueError, match="kill_grace"):
        PreforkExecutor(kill_grace=-1)


# --- a worker on Redis ------------------------------------------------------------------------


@pytest.fixture
def tiger(redis_db: redis.Redis[str]) -> Tiger:
    tiger = Tiger(RedisBackend(redis_db), FAST)
    tiger.adopt(worker_tasks.tiger)
    return tiger


def last_execution(tiger: Tiger, task: Task) -> tuple[str | None, str | None]:
    errored = Task.from_id(tiger, task.queue, TaskState.ERROR, task.id, load_executions=1)
    record = errored.executions[-1]
    return record.exception_name, record.exception


@pytest.mark.redis
def test_worker_runs_and_records_tasks_through_the_pool(tiger: Tiger, tmp_path: Path) -> None:
    path = tmp_path / "pids"
    tiger.enqueue_many([TaskSpec.of(prefork_tasks.append_pid, str(path), 0.2) for _ in range(6)])
    hung = tiger.enqueue(
        TaskSpec.of(prefork_tasks.hang_deaf_to_alarm, str(tmp_path / "hang")).evolve(
            hard_timeout=0.5
        )
    )
    crashed = tiger.enqueue(TaskSpec.of(prefork_tasks.exit_with, str(tmp_path / "crash"), 3))
    executor = PreforkExecutor(kill_grace=0.3)
    tiger.run_worker(executor=executor, concurrency=2, once=True)
    pids = pids_in(path)
    assert len(pids) == 6 and os.getpid() not in pids
    assert executor.pids() == [] and not any(alive(pid) for pid in pids)
    assert last_execution(tiger, hung)[0] == JOB_TIMEOUT
    name, message = last_execution(tiger, crashed)
    assert name == CHILD_DIED and message is not None and "exited with code 3" in message
    sizes = tiger.get_queue_sizes("default", with_errors=True)
    assert sizes[TaskState.QUEUED] == 0 and sizes[TaskState.ACTIVE] == 0
    assert sizes[TaskState.ERROR] == 2


@pytest.mark.redis
def test_prefork_options_need_the_prefork_executor(tiger: Tiger) -> None:
    for option in ("--max-tasks-per-child", "--max-memory-per-child"):
        with pytest.raises(click.UsageError, match=f"{option} needs --executor prefork"):
            tiger.run_worker_with_args(["--executor", "fork", option, "3"])
        with pytest.raises(click.UsageError, match=f"{option} needs --executor prefork"):
            tiger.run_worker_with_args([option, "3"])


@pytest.mark.redis
def test_sigterm_lets_running_tasks_finish_then_no_child_is_left(
    tiger: Tiger, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    for item in ("a", "b"):
        tiger.enqueue(TaskSpec.of(worker_tasks.record, str(ledger), item, 1.5))
    args = ["--executor", "prefork", "-c", "2", "--max-tasks-per-child", "5"]
    with open(tmp_path / "worker.log", "wb") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "tests.worker_main", REDIS_URL, *args],
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:

        def started() -> list[str]:
            text = ledger.read_text() if ledger.exists() else ""
            return [line for line in text.splitlines() if line.startswith("started")]

        wait_until(lambda: len(started()) == 2, 30, "both tasks to start")
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=scaled(20)) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(timeout=scaled(10))
    lines = ledger.read_text().splitlines()
    assert sorted(line for line in lines if not line.startswith("started")) == ["a", "b"]
    children = {int(line.split()[2]) for line in started()}
    assert len(children) == 2 and worker.pid not in children
    assert not [pid for pid in children if alive(pid)], "a pool child outlived its worker"
    sizes = tiger.get_queue_sizes("default")
    assert sizes[TaskState.ACTIVE] == 0 and sizes[TaskState.QUEUED] == 0


def test_the_public_module_exports_it() -> None:
    import typedtiger.executor as public

    assert public.PreforkExecutor is PreforkExecutor
    assert repr(PreforkExecutor(max_tasks_per_child=3)) == (
        "PreforkExecutor(max_tasks_per_child=3, max_memory_per_child=None, kill_grace=2)"
    )


@pytest.mark.redis
def test_cli_options_reach_the_executor(
    tiger: Tiger, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """-c, --max-tasks-per-child and --max-memory-per-child (MiB, from the environment too)."""
    import typedtiger.commands.worker as command

    made: list[dict[str, object]] = []

    class FakeWorker:
        def __init__(self, _tiger: Tiger, **options: object) -> None:
            made.append(options)

        def run(self, once: bool) -> None:
            pass

    monkeypatch.setattr(command, "Worker", FakeWorker)
    monkeypatch.setenv("TYPEDTIGER_MAX_MEMORY_PER_CHILD", "64")
    tiger.run_worker_with_args(["--executor", "prefork", "-c", "3", "--max-tasks-per-child", "7"])
    (options,) = made
    executor = options["executor"]
    assert isinstance(executor, PreforkExecutor) and options["concurrency"] == 3
    assert executor.max_tasks_per_child == 7 and executor.max_memory_per_child == 64 << 20
    tiger.run_worker_with_args(["--executor", "prefork", "--print-config"])
    printed = capsys.readouterr().out
    assert '"max_memory_per_child_mib": 64' in printed and '"executor": "prefork"' in printed
