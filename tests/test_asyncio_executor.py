"""AsyncioExecutor conformance, on both backends: async tasks side by side on one event loop in a
child of the worker; success, failure, retry, timeout by cancellation, the blocking-loop watchdog,
lock, unique, batch, graceful shutdown, and the refusal of plain functions."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from tests import async_tasks, tasks
from tests.conftest import REDIS_URL
from tests.test_cli_worker import REPO, TYPEDTIGER, cli_environment, typedtiger
from tests.waiting import scaled, wait_until
from typedtiger import Config, Tiger, Worker
from typedtiger.backends.redis import RedisBackend
from typedtiger.clock import ManualClock
from typedtiger.exceptions import TaskNotFound
from typedtiger.executor import (
    AsyncioExecutor,
    Executor,
    ForkExecutor,
    PreforkExecutor,
    SyncExecutor,
)
from typedtiger.spec import TaskSpec, fixed
from typedtiger.task import Task, TaskState

MODULES = ("tests.async_tasks", "tests.tasks")


@pytest.fixture
def app(backend: RedisBackend) -> Tiger:
    tiger = Tiger(backend, Config(allowed_task_modules=MODULES, hard_timeout_kill_grace=0.3))
    tiger.adopt(async_tasks.tiger)
    return tiger


@pytest.fixture
def executor() -> Iterator[AsyncioExecutor]:
    executor = AsyncioExecutor()
    yield executor
    executor.close()


def run(tiger: Tiger, executor: AsyncioExecutor, concurrency: int = 10) -> None:
    tiger.run_worker(executor=executor, once=True, concurrency=concurrency)


def errored(tiger: Tiger, task: Task) -> list[tuple[str | None, str]]:
    stored = Task.from_id(tiger, task.queue, TaskState.ERROR, task.id, load_executions=10)
    return [(e.exception_name, e.exception or "") for e in stored.executions]


def test_tasks_run_side_by_side_on_one_loop(
    app: Tiger, executor: AsyncioExecutor, tmp_path: Path
) -> None:
    count = 8  # each waits for all the others: only possible if they all run at once
    for n in range(count):
        app.enqueue(async_tasks.meet.spec(str(tmp_path), f"task-{n}", count))

    run(app, executor, concurrency=count)

    assert app.get_queue_stats() == {}
    assert len(list(tmp_path.iterdir())) == count


def test_a_failing_task_fails_with_its_exception(app: Tiger, executor: AsyncioExecutor) -> None:
    task = app.enqueue(async_tasks.fail.spec("boom"))

    run(app, executor)

    [(name, message)] = errored(app, task)
    assert name == "builtins:ValueError"
    assert "boom" in message


def test_a_failing_task_is_retried_at_the_clocks_time(
    app: Tiger, executor: AsyncioExecutor, clock: ManualClock
) -> None:
    task = app.enqueue(async_tasks.fail.spec("again").evolve(retry=fixed(30, 2)))

    run(app, executor)
    assert app.get_queue_stats() == {"default": {TaskState.SCHEDULED: 1}}
    clock.advance(29)
    run(app, executor)
    assert app.get_queue_stats() == {"default": {TaskState.SCHEDULED: 1}}  # not due yet
    for _ in range(2):
        clock.advance(30)
        run(app, executor)

    assert app.get_queue_stats() == {"default": {TaskState.ERROR: 1}}
    assert [name for name, _ in errored(app, task)] == ["builtins:ValueError"] * 3


def test_a_hard_timeout_cancels_the_coroutine_and_the_loop_goes_on(
    app: Tiger, executor: AsyncioExecutor, tmp_path: Path
) -> None:
    noted, finished = tmp_path / "noted", tmp_path / "finished"
    task = app.enqueue(async_tasks.cancellable.spec(str(noted)))  # hard_timeout=0.3
    app.enqueue(async_tasks.slow_touch.spec(str(finished), 0.6))

    run(app, executor)

    [(name, message)] = errored(app, task)
    assert name == "tasktiger.exceptions:JobTimeoutException"
    assert "0.3" in message
    assert noted.read_text() == "cancelled"  # cancelled, not killed
    assert finished.read_text() == "finished"  # the task beside it went on, on the same loop
    assert app.get_queue_stats() == {"default": {TaskState.ERROR: 1}}


def test_a_task_blocking_the_loop_past_its_timeout_is_stopped_by_the_watchdog(
    app: Tiger, executor: AsyncioExecutor, clock: ManualClock, tmp_path: Path
) -> None:
    blocker = app.enqueue(async_tasks.blocks.spec(30))  # hard_timeout=0.3, kill grace 0.3
    clock.advance(1)  # claimed in this order
    beside = app.enqueue(async_tasks.slow_touch.spec(str(tmp_path / "beside"), 0.2))
    clock.advance(1)
    after = tmp_path / "after"
    app.enqueue(async_tasks.slow_touch.spec(str(after), 0))

    began = time.monotonic()
    run(app, executor, concurrency=2)

    assert time.monotonic() - began < 15  # not the 30 s it blocks for
    [(name, message)] = errored(app, blocker)
    assert name == "tasktiger.exceptions:JobTimeoutException"
    [(name, message)] = errored(app, beside)  # it shared the killed loop
    assert name == "typedtiger.exceptions:ChildProcessDied"
    assert "tests.async_tasks:blocks blocked it past its hard timeout of 0.3 s" in message
    assert after.read_text() == "finished"  # on a new loop
    assert app.get_queue_stats() == {"default": {TaskState.ERROR: 2}}


def test_a_lock_keeps_two_tasks_apart(
    app: Tiger, executor: AsyncioExecutor, clock: ManualClock, tmp_path: Path
) -> None:
    log = tmp_path / "log"
    for label in ("a", "b"):
        app.enqueue(async_tasks.locked.spec(path=str(log), label=label))

    run(app, executor)
    clock.advance(app.config.lock_retry)
    run(app, executor)

    lines = log.read_text().split()
    assert app.get_queue_stats() == {}
    assert lines[0:2] == ["start", lines[1]] and lines[2:4] == ["end", lines[1]]
    assert sorted([lines[1], lines[5]]) == ["a", "b"]


def test_a_unique_task_runs_once(app: Tiger, executor: AsyncioExecutor, tmp_path: Path) -> None:
    log = tmp_path / "log"
    first = app.enqueue(async_tasks.once.spec(str(log)))
    second = app.enqueue(async_tasks.once.spec(str(log)))

    run(app, executor)

    assert first.id == second.id
    assert log.read_text() == "ran\n"


def test_an_async_batch_function_gets_its_calls(
    backend: RedisBackend, executor: AsyncioExecutor, tmp_path: Path
) -> None:
    tiger = Tiger(backend, Config(batch_queues={"default": 10}, allowed_task_modules=MODULES))
    tiger.adopt(async_tasks.tiger)
    paths = [tmp_path / "a", tmp_path / "b", tmp_path / "c"]
    for path in paths:
        tiger.enqueue(async_tasks.batch_touch.spec(str(path), "batch"))

    run(tiger, executor)

    assert [p.read_text() for p in paths] == ["batch of 3"] * 3
    assert tiger.get_queue_stats() == {}


def test_a_plain_function_is_refused_with_a_clear_message(
    app: Tiger, executor: AsyncioExecutor
) -> None:
    task = app.enqueue(TaskSpec.of(tasks.simple, "x"))

    run(app, executor)

    [(name, message)] = errored(app, task)
    assert name == "builtins:TypeError"
    assert "tests.tasks:simple is a plain function: the asyncio executor runs async def" in message


def test_a_stopped_worker_lets_its_running_tasks_finish(
    app: Tiger, executor: AsyncioExecutor, tmp_path: Path
) -> None:
    finished = [tmp_path / f"finished-{n}" for n in range(3)]
    for path in finished:
        app.enqueue(async_tasks.slow_touch.spec(str(path), 0.5))
    worker = Worker(app, executor=executor, concurrency=3)

    def stop_once_running() -> None:
        deadline = time.monotonic() + 10
        while not all(Path(f"{path}.started").exists() for path in finished):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        worker.stop()

    stopper = threading.Thread(target=stop_once_running)
    stopper.start()
    worker.run()
    stopper.join()

    assert [p.read_text() for p in finished] == ["finished"] * 3
    assert app.get_queue_stats() == {}


@pytest.mark.parametrize("make", [AsyncioExecutor, SyncExecutor])
def test_an_async_tasks_return_value_is_kept_as_its_result(
    app: Tiger, make: Callable[[], Executor]
) -> None:
    task = app.enqueue(async_tasks.double.spec(21))

    app.run_worker(executor=make(), once=True)

    assert task.result(timeout=0) == 42


# --- heartbeats -------------------------------------------------------------------------------


def active_since(tiger: Tiger, task: Task) -> float | None:
    """The heartbeat time of an active task (None: not active)."""
    try:
        found = Task.from_id(tiger, task.queue, TaskState.ACTIVE, task.id)
    except TaskNotFound:
        return None
    return None if found.ts is None else found.ts.timestamp()


@pytest.mark.parametrize("beating", [True, False])
def test_a_long_async_tasks_heartbeat_keeps_it_from_another_workers_lost_task_pass(
    backend: RedisBackend, clock: ManualClock, tmp_path: Path, beating: bool
) -> None:
    # Beats every 0.05 s (real time), or (the control) none within the test; lost after 20 s of
    # the ManualClock without one.
    timer = 0.05 if beating else 15.0
    config = Config(allowed_task_modules=MODULES, active_task_update_timer=timer)
    app = Tiger(backend, config)
    app.adopt(async_tasks.tiger)
    gate = tmp_path / "gate"
    task = app.enqueue(async_tasks.gated.spec(str(gate)).evolve(result_ttl=3600))
    executor = AsyncioExecutor()
    worker = threading.Thread(target=Worker(app, executor=executor).run, kwargs={"once": True})
    worker.start()
    try:
        wait_until(Path(f"{gate}.started").exists, 10, "the task to start on the loop")
        claimed_at = active_since(app, task)
        assert claimed_at is not None

        clock.advance(3 * config.active_task_update_timeout)  # a minute on the task's clock
        if beating:  # the worker's next beat, stamped with the clock's new time
            wait_until(lambda: active_since(app, task) == clock.now(), 5, "a heartbeat")
        other = Worker(app, executor=SyncExecutor(), queues=["elsewhere"])
        other.run(once=True)  # its upkeep requeues the active tasks it finds lost

        if beating:
            assert active_since(app, task) == clock.now()  # still active: not requeued
        else:
            assert active_since(app, task) is None
            assert app.get_queue_stats() == {"default": {TaskState.QUEUED: 1}}
    finally:
        gate.write_text("open")
        worker.join(20)
    assert not worker.is_alive()
    assert task.result(timeout=0) == "through"
    assert app.get_queue_stats() == {}


# --- queue slots ------------------------------------------------------------------------------


@pytest.mark.parametrize("limit", [None, 2, 1])
def test_queue_slots_hold_for_the_tasks_on_the_loop(
    app: Tiger, executor: AsyncioExecutor, limit: int | None
) -> None:
    # 6 tasks at concurrency 6: all at once on the loop, unless each claim needs one of the
    # queue's ``limit`` slots (max_workers_per_queue: -M), held until its task is done.
    tasks = [app.enqueue(async_tasks.counted.spec(f"t{n}", scaled(0.3))) for n in range(6)]

    app.run_worker(executor=executor, once=True, concurrency=6, max_workers_per_queue=limit)

    most = max(task.result(timeout=0) for task in tasks)
    if limit is None:
        assert most > 2  # side by side (all 6 unless this machine is slow to claim)
    else:
        assert most == limit
    assert app.get_queue_stats() == {}
    timeout = app.config.active_task_update_timeout
    now = app.clock.now()
    for n in range(limit or 1):  # every slot was given back
        assert app.backend.acquire_queue_slot("default", f"w{n}", limit or 1, now, timeout)


@pytest.mark.parametrize("make", [AsyncioExecutor, ForkExecutor, PreforkExecutor])
def test_nothing_is_claimed_while_every_slot_is_busy(
    app: Tiger, make: Callable[[], Executor], clock: ManualClock, tmp_path: Path
) -> None:
    # At -c 2, a third task stays queued (another worker may take it) until a slot is free:
    # claimed ahead, it would wait active for a running task to end, and run after a stop.
    gates = [tmp_path / f"gate-{n}" for n in range(3)]
    for gate in gates:
        app.enqueue(async_tasks.gated.spec(str(gate)))
        clock.advance(1)  # claimed in this order
    worker = Worker(app, executor=make(), concurrency=2)
    thread = threading.Thread(target=worker.run, kwargs={"once": True})
    thread.start()
    try:
        wait_until(lambda: Path(f"{gates[1]}.started").exists(), 10, "two tasks to start")
        sizes = app.get_queue_sizes("default")
        assert (sizes[TaskState.ACTIVE], sizes[TaskState.QUEUED]) == (2, 1)
    finally:
        for gate in gates:
            gate.write_text("open")
        thread.join(20)
    assert not thread.is_alive()
    assert all(Path(f"{gate}.started").exists() for gate in gates)
    assert app.get_queue_stats() == {}


# --- the worker command -----------------------------------------------------------------------


def redis_tiger(client: redis.Redis[str]) -> Tiger:
    """A Tiger on the test database, as a `typedtiger worker --url` there sees it."""
    return Tiger(RedisBackend(client), Config(allowed_task_modules=MODULES))


@pytest.mark.redis
def test_the_worker_command_keeps_queue_slots_with_the_asyncio_executor(
    redis_db: redis.Redis[str],
) -> None:
    tiger = redis_tiger(redis_db)
    tasks = [tiger.enqueue(async_tasks.counted.spec(f"t{n}", 0.2)) for n in range(4)]

    result = typedtiger(
        "worker", "--url", REDIS_URL, "-m", "tests.async_tasks", "--executor", "asyncio",
        "-c", "4", "-M", "1", "--exit-after", "idle",
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert [task.result(timeout=0) for task in tasks] == [1, 1, 1, 1]  # one at a time
    assert tiger.get_queue_stats() == {}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.redis
def test_sigterm_lets_the_tasks_on_the_loop_finish_and_claims_nothing_more(
    redis_db: redis.Redis[str], tmp_path: Path
) -> None:
    tiger = redis_tiger(redis_db)
    running = [tmp_path / f"running-{n}" for n in range(3)]
    for path in running:
        tiger.enqueue(async_tasks.slow_touch.spec(str(path), scaled(1.5)))
    time.sleep(0.01)  # queued after them: at -c 3 it waits for one of them to finish
    waiting = tmp_path / "waiting"
    tiger.enqueue(async_tasks.slow_touch.spec(str(waiting), 0))
    with (tmp_path / "worker.log").open("wb") as log:
        worker = subprocess.Popen(
            [TYPEDTIGER, "worker", "--url", REDIS_URL, "-m", "tests.async_tasks",
             "--executor", "asyncio", "-c", "3"],
            cwd=REPO, env=cli_environment(), stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        started = [Path(f"{path}.started") for path in running]
        wait_until(lambda: all(p.exists() for p in started), 30, "the tasks to start")
        loop_pids = {int(p.read_text()) for p in started}

        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=scaled(15)) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()

    assert len(loop_pids) == 1 and worker.pid not in loop_pids  # one loop, in a child
    assert [path.read_text() for path in running] == ["finished"] * 3
    assert not Path(f"{waiting}.started").exists()
    sizes = tiger.get_queue_sizes("default")
    assert (sizes[TaskState.ACTIVE], sizes[TaskState.QUEUED]) == (0, 1)
    (loop_pid,) = loop_pids
    wait_until(lambda: not alive(loop_pid), 5, "the loop's process to end")
    log_text = (tmp_path / "worker.log").read_text()
    assert "stop signal: finishing the current task" in log_text
