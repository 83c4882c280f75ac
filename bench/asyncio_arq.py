"""arq's side of bench.asyncio_run (its venv): the worker settings its ``arq`` command runs
(``arq bench.asyncio_arq.WorkerSettings --burst``: one process, logging at INFO as the command
sets it up), and ``python -m bench.asyncio_arq enqueue N TASK``."""

from __future__ import annotations

from typing import Any, ClassVar

from arq import create_pool
from arq.connections import RedisSettings

from bench import async_tasks
from bench.asyncio_peers import CONCURRENCY, URL, enqueue_all, enqueue_command


async def anoop(ctx: dict[str, Any]) -> None:
    await async_tasks.anoop()


async def asleep(ctx: dict[str, Any]) -> None:
    await async_tasks.asleep()


class WorkerSettings:
    functions: ClassVar = [anoop, asleep]
    redis_settings = RedisSettings.from_dsn(URL)
    max_jobs = CONCURRENCY
    keep_result = 0  # no result kept, as typedtiger keeps none for a task returning None


async def enqueue(n: int, task: str) -> None:
    pool = await create_pool(WorkerSettings.redis_settings)
    await enqueue_all(n, lambda: pool.enqueue_job(task))
    await pool.aclose()


if __name__ == "__main__":
    enqueue_command(enqueue)
