"""A task's child process under a real worker: its kill grace, its signals, its descriptors,
its process group, its imports.

Workers run in this process (``once=True``) or as processes, with forked children, on real
Redis, with the short timings of tests/worker_main.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
import redis
import structlog.testing

from tests import child_tasks, worker_tasks
from tests.conftest import REDIS_URL
from tests.waiting import scaled, wait_until
from tests.worker_main import FAST
from typedtiger import Task, TaskSpec, TaskState, Tiger
from typedtiger.backends.redis import RedisBackend
from typedtiger.executor import ForkExecutor
from typedtiger.worker import Worker

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.redis


@pytest.fixture
def tiger(redis_db: redis.Redis[str]) -> Tiger:
    return Tiger(RedisBackend(redis_db), FAST)


@pytest.fixture
def ledger(tmp_path: Path) -> Path:
    return tmp_path / "ledger.txt"


# --- the kill grace after a hard timeout ---------------------------------------------------


@pytest.mark.parametrize(("given", "expected"), [(None, 0.2), (0.4, 0.4)])
def test_kill_grace_comes_from_config_unless_given(
    tiger: Tiger, ledger: Path, given: float | None, expected: float
) -> None:
    tiger.reconfigure(attrs.evolve(tiger.config, hard_timeout_kill_grace=0.2))
    spec = TaskSpec.of(child_tasks.deaf_to_alarm, str(ledger)).evolve(hard_timeout=0.3)
    task = tiger.enqueue(spec)
    executor = ForkExecutor() if given is None else ForkExecutor(kill_grace=given)
    with structlog.testing.capture_logs() as logs:
        Worker(tiger, executor=executor).run(once=True)
    kills = [log for log in logs if log["event"] == "hard timeout: killing child"]
    assert [log["kill_grace"] for log in kills] == [expected]
    assert tiger.get_queue_sizes(task.queue, with_errors=True)[TaskState.ERROR] == 1


# --- a stop sent to the whole service ----------------------------------------------------------


def lines(ledger: Path) -> list[str]:
    return ledger.read_text().splitlines() if ledger.exists() else []


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A worker process (tests/worker_main.py) leading a process group of its own, as a
    service manager or a container starts it."""
    with open(tmp_path / "worker.log", "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.worker_main", REDIS_URL],
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    yield process
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=scaled(10))


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:  # gone meanwhile
                continue
            parent = int(stat.rpartition(")")[2].split()[1])
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        below = children.get(todo.pop(), [])
        found += below
        todo += below
    return found


@pytest.mark.parametrize("to", ["the worker's process group", "every process of the worker"])
def test_a_stop_sent_to_the_whole_service_lets_the_task_finish(
    tiger: Tiger, ledger: Path, worker: subprocess.Popen[bytes], to: str
) -> None:
    tiger.enqueue(TaskSpec.of(worker_tasks.record, str(ledger), "first", 1.0))
    waiting = tiger.enqueue(TaskSpec.of(worker_tasks.record, str(ledger), "second"))
    wait_until(lambda: lines(ledger), 30, "the first task to start")
    assert lines(ledger)[0].startswith("started first")

    # systemd's KillMode=control-group signals every process of the service; an init in a
    # container or a shell's kill -TERM -PGID, the worker's process group
    if to == "every process of the worker":
        for pid in [worker.pid, *descendants(worker.pid)]:
            os.kill(pid, signal.SIGTERM)
    else:
        os.killpg(worker.pid, signal.SIGTERM)
    assert worker.wait(timeout=scaled(15)) == 0  # it stopped warm, after its task

    assert lines(ledger)[1:] == ["first"]
    assert tiger.get_queue_stats() == {"default": {TaskState.QUEUED: 1}}  # first is done
    assert Task.from_id(tiger, "default", TaskState.QUEUED, waiting.id).id == waiting.id


# --- descriptors a child inherits ----------------------------------------------------------


@pytest.mark.parametrize("concurrency", [1, 2])
def test_a_task_scribbling_on_inherited_descriptors_harms_nothing(
    tiger: Tiger, ledger: Path, concurrency: int
) -> None:
    tiger.enqueue(TaskSpec.of(child_tasks.append, str(ledger), "first", 0.5))
    scribbler = tiger.enqueue(TaskSpec.of(child_tasks.scribble_on_inherited_fds, str(ledger)))
    tiger.enqueue(TaskSpec.of(child_tasks.append, str(ledger), "after"))
    Worker(tiger, concurrency=concurrency).run(once=True)
    scribbled = [line for line in lines(ledger) if line.startswith("scribbled")]
    assert len(scribbled) == 1, lines(ledger)
    assert "socket:" not in scribbled[0]  # none of the worker's connections
    assert sorted(line for line in lines(ledger) if not line.startswith("scribbled")) == [
        "after",
        "first",
    ]
    # The junk it wrote to its own outcome pipe cost its own task only.
    assert tiger.get_queue_stats() == {"default": {TaskState.ERROR: 1}}, scribbled
    record = Task.from_id(tiger, "default", TaskState.ERROR, scribbler.id).executions[-1]
    assert record.exception_name == "typedtiger.exceptions:ChildProcessDied", scribbled


def test_close_inherited_frees_the_child_and_spares_the_parent(tiger: Tiger) -> None:
    backend = tiger.backend
    assert isinstance(backend, RedisBackend)
    client = backend.client
    pool = client.connection_pool
    held = pool.get_connection()  # one in use,
    held.connect()
    client.ping()
    backend.wait_for_activity(0)  # and the subscription's
    fds = [
        conn._sock.fileno() for conn in [*pool._available_connections, *pool._in_use_connections]
    ]
    assert len(fds) >= 2
    pid = os.fork()
    if pid == 0:  # the child: exit status 0 only if every check holds
        code = 1
        try:
            backend.close_inherited()
            closed = all(not _is_open(fd) for fd in fds)
            code = 0 if closed and client.ping() else 2
        finally:
            os._exit(code)
    assert os.waitpid(pid, 0)[1] == 0
    assert client.ping()  # the parent's connections were not shut down
    backend.wait_for_activity(0)
    held.send_command("PING")
    assert held.read_response() == "PONG"
    pool.release(held)


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True
