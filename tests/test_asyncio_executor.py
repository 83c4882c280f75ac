"""AsyncioExecutor conformance, on both backends: async tasks side by side on one event loop in a
child of the worker; success, failure, retry, timeout by cancellation, the blocking-loop watchdog,
lock, unique, batch, graceful shutdown, and the refusal of plain functions."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests import async_tasks, tasks
from typedtiger import Config, Tiger, Worker
from typedtiger.backends.redis import RedisBackend
from typedtiger.clock import ManualClock
from typedtiger.executor import AsyncioExecutor, Executor, SyncExecutor
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
