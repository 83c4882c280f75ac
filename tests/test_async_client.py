"""The async client on both backends: ``await tiger.aenqueue(spec)``, ``task_fn.adelay``,
``aenqueue_many``, ``Task.afrom_id``, through the backend's asyncio twin (the same scripts)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

import pytest
import redis

from tests import async_tasks
from tests.conftest import REDIS_URL
from typedtiger import Config, QueueFullException, TaskNotFound, Tiger
from typedtiger.backends.redis import RedisBackend
from typedtiger.clock import ManualClock
from typedtiger.executor import AsyncioExecutor
from typedtiger.task import Task, TaskState

T = TypeVar("T")


@pytest.fixture
def app(backend: RedisBackend) -> Tiger:
    tiger = Tiger(backend, Config(allowed_task_modules=("tests.async_tasks",)))
    tiger.adopt(async_tasks.tiger)
    return tiger


def run(tiger: Tiger, main: Callable[[], Awaitable[T]]) -> T:
    """``main()`` on a fresh event loop, the Tiger's async connections closed after it."""

    async def closing() -> T:
        try:
            return await main()
        finally:
            await tiger.aclose()

    return asyncio.run(closing())


def test_aenqueue_stores_what_enqueue_stores(app: Tiger, tmp_path: Path) -> None:
    done = tmp_path / "done"

    task = run(app, lambda: app.aenqueue(async_tasks.touch.spec(str(done), "awaited")))

    assert task.state == TaskState.QUEUED
    stored = Task.from_id(app, "default", TaskState.QUEUED, task.id)
    assert (stored.serialized_func, stored.args) == (
        "tests.async_tasks:touch",
        (str(done), "awaited"),
    )
    app.run_worker(executor=AsyncioExecutor(), once=True)
    assert done.read_text() == "awaited"


def test_adelay_enqueues_through_the_task_functions_tiger(backend: RedisBackend) -> None:
    with async_tasks.tiger.bound_to(backend):
        task = run(async_tasks.tiger, lambda: async_tasks.fetch.adelay("https://example.com"))

    assert task.args == ("https://example.com",)
    assert backend.queue_sizes(["default"])["default"][TaskState.QUEUED] == 1


def test_aenqueue_many_and_a_scheduled_task(app: Tiger, clock: ManualClock) -> None:
    specs = [async_tasks.fetch.spec(f"u{n}") for n in range(3)]

    async def main() -> tuple[list[Task], Task]:
        many = await app.aenqueue_many(specs)
        later = await app.aenqueue(async_tasks.fetch.spec("later"), when=timedelta(minutes=5))
        return many, later

    many, later = run(app, main)

    assert [t.state for t in many] == [TaskState.QUEUED] * 3
    assert later.state == TaskState.SCHEDULED
    assert app.get_queue_stats() == {"default": {TaskState.QUEUED: 3, TaskState.SCHEDULED: 1}}
    assert later.scheduled_at is not None
    assert later.scheduled_at.timestamp() == pytest.approx(clock.now() + 300)


def test_a_unique_task_awaited_twice_is_one_task(app: Tiger, tmp_path: Path) -> None:
    spec = async_tasks.once.spec(str(tmp_path / "log"))

    async def main() -> tuple[Task, Task]:
        return await app.aenqueue(spec), await app.aenqueue(spec)

    first, second = run(app, main)

    assert first.id == second.id
    assert app.get_queue_stats() == {"default": {TaskState.QUEUED: 1}}


def test_afrom_id_reads_a_task_with_its_executions(app: Tiger) -> None:
    failing = app.enqueue(async_tasks.fail.spec("boom"))
    app.run_worker(executor=AsyncioExecutor(), once=True)

    async def main() -> Task:
        with pytest.raises(TaskNotFound):
            await Task.afrom_id(app, "default", TaskState.QUEUED, failing.id)
        return await Task.afrom_id(app, "default", TaskState.ERROR, failing.id, load_executions=1)

    errored = run(app, main)

    (record,) = errored.executions
    assert record.exception_name == "builtins:ValueError"


def test_a_full_queue_refuses_an_awaited_enqueue(app: Tiger) -> None:
    spec = async_tasks.fetch.spec("u").evolve(max_queue_size=1)

    async def main() -> None:
        await app.aenqueue(spec)
        with pytest.raises(QueueFullException):
            await app.aenqueue(async_tasks.fetch.spec("v").evolve(max_queue_size=1))

    run(app, main)

    assert app.get_queue_stats() == {"default": {TaskState.QUEUED: 1}}


def test_each_event_loop_gets_its_own_connections(app: Tiger) -> None:
    for n in range(3):  # a connection made on a closed loop would fail here
        run(app, lambda n=n: app.aenqueue(async_tasks.fetch.spec(f"loop {n}")))  # type: ignore[misc]

    assert app.get_queue_stats() == {"default": {TaskState.QUEUED: 3}}


def test_more_calls_at_once_than_connections_wait_for_one(redis_db: redis.Redis[str]) -> None:
    # A handler's burst of awaited enqueues past the client's max_connections: each waits for
    # a connection (none is refused with "Too many connections").
    client: redis.Redis[str] = redis.Redis.from_url(
        REDIS_URL, decode_responses=True, max_connections=3
    )
    tiger = Tiger(RedisBackend(client), Config(allowed_task_modules=("tests.async_tasks",)))

    async def main() -> list[Task]:
        return await asyncio.gather(
            *(tiger.aenqueue(async_tasks.fetch.spec(f"burst {n}")) for n in range(40))
        )

    assert len(run(tiger, main)) == 40
    assert tiger.get_queue_stats() == {"default": {TaskState.QUEUED: 40}}
    client.close()


def test_eager_mode_runs_an_awaited_enqueue_at_once(backend: RedisBackend) -> None:
    tiger = Tiger(backend, Config(always_eager=True, allowed_task_modules=("tests.async_tasks",)))
    tiger.adopt(async_tasks.tiger)
    async_tasks.CALLS.clear()

    run(tiger, lambda: tiger.aenqueue(async_tasks.fetch.spec("eager")))

    assert async_tasks.CALLS == ["fetch eager"]
    assert backend.client.keys("*") == []
