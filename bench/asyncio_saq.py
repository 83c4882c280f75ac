"""SAQ's side of bench.asyncio_run (its venv): the settings its ``saq`` command runs
(``saq bench.asyncio_saq.settings -v``: one process, logging at INFO), and ``python -m
bench.asyncio_saq enqueue N TASK``.

Burst mode (stop once a dequeue finds the queue empty) needs a positive ``dequeue_timeout``:
each of the CONCURRENCY dequeue loops then waits that long on an empty queue before the worker
stops, which the empty-queue run bench.asyncio_run subtracts measures too. Jobs are queued with
``ttl=-1``: no result kept (SAQ keeps a finished job and its result 600 s by default).
"""

from __future__ import annotations

from typing import Any

from saq import Queue

from bench import async_tasks
from bench.asyncio_peers import CONCURRENCY, URL, enqueue_all, enqueue_command

#: How long a dequeue waits on an empty queue before burst mode stops the worker (seconds).
DEQUEUE_TIMEOUT = 0.5


async def anoop(ctx: dict[str, Any]) -> None:
    await async_tasks.anoop()


async def asleep(ctx: dict[str, Any]) -> None:
    await async_tasks.asleep()


queue = Queue.from_url(URL)

settings = {
    "queue": queue,
    "functions": [("anoop", anoop), ("asleep", asleep)],
    "concurrency": CONCURRENCY,
    "burst": True,
    "dequeue_timeout": DEQUEUE_TIMEOUT,
}


async def enqueue(n: int, task: str) -> None:
    await queue.connect()
    await enqueue_all(n, lambda: queue.enqueue(task, ttl=-1))
    await queue.disconnect()


if __name__ == "__main__":
    enqueue_command(enqueue)
