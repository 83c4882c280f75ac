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
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
import redis
import structlog.testing

from tests import child_tasks, worker_tasks
from tests.chaos.harness import descendants
from tests.conftest import REDIS_URL, throwaway_module
from tests.waiting import scaled, wait_until
from tests.worker_main import FAST
from typedtiger import Task, TaskSpec, TaskState, Tiger
from typedtiger.backends.redis import RedisBackend
from typedtiger.executor import ForkExecutor
from typedtiger.serialization import ExecutionRecord
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
def start_worker(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Starts worker processes (tests/worker_main.py), each leading a process group of its
    own, as a service manager or a container starts it; what is left is killed at the end."""
    started: list[subprocess.Popen[bytes]] = []

    def start(*args: str) -> subprocess.Popen[bytes]:
        with open(tmp_path / f"worker-{len(started)}.log", "wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "tests.worker_main", REDIS_URL, *args],
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=scaled(10))


@pytest.mark.parametrize("to", ["the worker's process group", "every process of the worker"])
def test_a_stop_sent_to_the_whole_service_lets_the_task_finish(
    tiger: Tiger, ledger: Path, start_worker: Callable[..., subprocess.Popen[bytes]], to: str
) -> None:
    worker = start_worker()
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
    tiger: Tiger,
    ledger: Path,
    start_worker: Callable[..., subprocess.Popen[bytes]],
    concurrency: int,
) -> None:
    tiger.enqueue(TaskSpec.of(child_tasks.append, str(ledger), "first", 0.5))
    scribbler = tiger.enqueue(TaskSpec.of(child_tasks.scribble_on_inherited_fds, str(ledger)))
    tiger.enqueue(TaskSpec.of(child_tasks.append, str(ledger), "after"))
    # (a worker process of its own: every socket its child has is the worker's)
    worker = start_worker("-c", str(concurrency), "--exit-after", "idle")
    assert worker.wait(timeout=scaled(60)) == 0
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


def test_close_inherited_frees_the_child_and_leaves_the_parent_alone(tiger: Tiger) -> None:
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


# --- task modules are imported by the child -------------------------------------------------

JOB_TIMEOUT = "tasktiger.exceptions:JobTimeoutException"
CHILD_DIED = "typedtiger.exceptions:ChildProcessDied"


def allow(tiger: Tiger, module: str, **config: Any) -> None:
    """Let ``tiger``'s workers run ``module``'s functions (as ``-m`` would, minus the import)."""
    allowed = (*(tiger.config.allowed_task_modules or ()), module)
    tiger.reconfigure(attrs.evolve(tiger.config, allowed_task_modules=allowed, **config))


def last_record(tiger: Tiger, task: Task) -> ExecutionRecord:
    return Task.from_id(tiger, task.queue, TaskState.ERROR, task.id).executions[-1]


HANGS = {
    "in Python": "while True:\n    pass\n",
    "deaf to the alarm": (
        "import signal, time\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\ntime.sleep(60)\n"
    ),
}


@pytest.mark.parametrize("how", list(HANGS))
def test_a_module_that_hangs_on_import_costs_its_task_only(
    tiger: Tiger, ledger: Path, module_dir: Path, how: str
) -> None:
    module = throwaway_module(module_dir, HANGS[how] + "def f() -> None:\n    pass\n")
    allow(tiger, module, hard_timeout_kill_grace=0.2)
    hung = tiger.enqueue(TaskSpec(func=f"{module}:f", hard_timeout=0.5))
    tiger.enqueue(TaskSpec.of(child_tasks.append, str(ledger), "after"))
    Worker(tiger).run(once=True)  # (a worker that imported the module would hang here)
    assert lines(ledger) == ["after"]
    assert last_record(tiger, hung).exception_name == JOB_TIMEOUT
    assert module not in sys.modules


def test_a_module_that_exits_on_import_costs_its_task_only(
    tiger: Tiger, ledger: Path, module_dir: Path
) -> None:
    module = throwaway_module(module_dir, "import os\nos._exit(3)\n")
    allow(tiger, module)
    exiting = tiger.enqueue(TaskSpec(func=f"{module}:f"))
    tiger.enqueue(TaskSpec.of(child_tasks.append, str(ledger), "after"))
    Worker(tiger).run(once=True)  # (a worker that imported the module would exit here)
    assert lines(ledger) == ["after"]
    record = last_record(tiger, exiting)
    assert record.exception_name == CHILD_DIED
    assert record.exception is not None and "exited with code 3" in record.exception


def test_the_worker_leaves_the_import_to_the_child(
    tiger: Tiger, ledger: Path, module_dir: Path
) -> None:
    body = (
        "import os\n\ndef f(path: str) -> None:\n    open(path, 'a').write(f'{os.getpid()}\\n')\n"
    )
    module = throwaway_module(module_dir, body)
    allow(tiger, module)
    tiger.enqueue(TaskSpec(func=f"{module}:f", args=(str(ledger),)))
    tiger.enqueue(TaskSpec(func=f"{module}:f", args=(str(ledger),)))
    Worker(tiger).run(once=True)
    pids = [int(line) for line in lines(ledger)]
    assert len(pids) == 2 and os.getpid() not in pids
    assert module not in sys.modules
    assert tiger.get_queue_stats() == {}


def test_a_name_outside_the_allowlist_is_refused_without_an_import(
    tiger: Tiger, ledger: Path, module_dir: Path
) -> None:
    tiger.reconfigure(attrs.evolve(tiger.config, allowed_task_modules=("tests",)))
    marker = module_dir / "imported"
    module = throwaway_module(module_dir, f"open({str(marker)!r}, 'w').close()\ndef f(): pass\n")
    refused = tiger.enqueue(TaskSpec(func=f"{module}:f"))
    Worker(tiger).run(once=True)
    record = last_record(tiger, refused)
    assert record.exception_name == "typedtiger.exceptions:TaskImportError"
    assert not marker.exists()  # neither the worker nor a child imported it


def test_a_batch_function_the_worker_has_not_imported_is_batched_once_a_child_shows_it(
    tiger: Tiger, ledger: Path, start_worker: Callable[..., subprocess.Popen[bytes]]
) -> None:
    spec = TaskSpec(func="tests.child_batch_tasks:note_batch", args=(str(ledger),))
    worker = start_worker("--batch-queue", "default=10")
    tiger.enqueue_many([spec, spec])  # claimed together, run one by one: not known yet
    wait_until(lambda: len(lines(ledger)) == 2, 30, "the first two tasks")
    tiger.enqueue_many([spec, spec, spec])
    wait_until(lambda: len(lines(ledger)) == 3, 30, "the next three")
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=scaled(15)) == 0
    assert lines(ledger) == ["batch of 1", "batch of 1", "batch of 3"]
    assert tiger.get_queue_stats() == {}
