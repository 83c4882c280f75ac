"""typedtiger's side of bench.asyncio_run, shaped like the peers' (bench.asyncio_peers):
``python -m bench.asyncio_typedtiger enqueue N TASK`` queues N tasks one by one with the async
client (``await tiger.aenqueue(spec)``), BATCH side by side. The worker is the ``typedtiger``
command: ``typedtiger worker -m bench.async_tasks --executor asyncio -c 100 --exit-after idle``.
"""

from __future__ import annotations

from bench import async_tasks
from bench.asyncio_peers import URL, enqueue_all, enqueue_command
from typedtiger import Config, TaskSpec, Tiger
from typedtiger.backends.redis import RedisBackend


async def enqueue(n: int, task: str) -> None:
    tiger = Tiger(RedisBackend.from_url(URL), Config())
    func = getattr(async_tasks, task)
    await enqueue_all(n, lambda: tiger.aenqueue(TaskSpec.of(func)))
    await tiger.aclose()


if __name__ == "__main__":
    enqueue_command(enqueue)
