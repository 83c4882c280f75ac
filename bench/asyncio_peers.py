"""What the other asyncio task queues' sides of bench.asyncio_run share: each runs in its own
venv (``~/.cache/typedtiger-bench/asyncio-<system>-venv``, made by bench.asyncio_run: arq, SAQ
and taskiq-redis pin redis-py versions no single venv satisfies), imports only the standard
library and redis-py from here, and reads the Redis URL from ``$BENCH_REDIS_URL``.

- ``bench.asyncio_arq``: arq 0.28, run by its ``arq`` command (``--burst``).
- ``bench.asyncio_saq``: SAQ 0.26, run by its ``saq`` command (``burst``, ``-v`` for INFO).
- ``bench.asyncio_taskiq``: taskiq 0.13 with taskiq-redis 1.2's ``RedisStreamBroker``, run as
  the process the ``taskiq worker`` command forks for each worker.

Each module's ``main``: ``enqueue N TASK`` queues N jobs of bench.async_tasks.TASK, one by one,
``BATCH`` side by side on one client, as an application's handlers would.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable

URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/11")
#: Concurrency of the worker: ``max_jobs`` (arq), ``concurrency`` (SAQ), ``max_async_tasks``
#: (taskiq), ``-c`` (typedtiger).
CONCURRENCY = 100
#: Jobs queued side by side when filling the queue, the same for every system: no more than
#: redis-py's default pool of 100 connections.
BATCH = 100


async def enqueue_all(n: int, one: Callable[[], Awaitable[object]]) -> None:
    """``one()`` n times, BATCH at a time side by side."""
    for at in range(0, n, BATCH):
        await asyncio.gather(*(one() for _ in range(min(BATCH, n - at))))


def enqueue_command(enqueue: Callable[[int, str], Awaitable[None]]) -> None:
    """A module's ``main``: ``enqueue N TASK`` runs ``enqueue(N, TASK)``."""
    command, n, task = sys.argv[1:]
    if command != "enqueue":
        raise SystemExit(f"unknown command {command!r}")
    asyncio.run(enqueue(int(n), task))
