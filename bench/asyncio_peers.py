"""The other asyncio task queues' side of bench.asyncio_run, in their own venv
(~/.cache/typedtiger-bench/asyncio-peers-venv): ``python -m bench.asyncio_peers SYSTEM CMD``.

SYSTEM: arq (0.28). CMD: ``enqueue N TASK`` (queue N jobs of bench.async_tasks.TASK; prints the
seconds it took) or ``worker CONCURRENCY`` (one worker process in burst mode: it exits once the
queue is empty). Redis: $BENCH_REDIS_URL.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from typing import Any

from bench import async_tasks

URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/11")


async def _arq_anoop(ctx: dict[str, Any]) -> None:
    await async_tasks.anoop()


async def _arq_asleep(ctx: dict[str, Any]) -> None:
    await async_tasks.asleep()


ARQ_FUNCTIONS = {"anoop": _arq_anoop, "asleep": _arq_asleep}


async def _arq_enqueue(n: int, task: str) -> float:
    from arq import create_pool
    from arq.connections import RedisSettings

    pool = await create_pool(RedisSettings.from_dsn(URL))
    name = ARQ_FUNCTIONS[task].__name__
    started = time.perf_counter()
    for at in range(0, n, 500):  # 500 at a time, side by side on one pool
        await asyncio.gather(*(pool.enqueue_job(name) for _ in range(min(500, n - at))))
    seconds = time.perf_counter() - started
    await pool.aclose()
    return seconds


def _arq_worker(concurrency: int) -> None:
    from arq.connections import RedisSettings
    from arq.worker import Worker

    worker = Worker(
        functions=list(ARQ_FUNCTIONS.values()),
        redis_settings=RedisSettings.from_dsn(URL),
        burst=True,
        max_jobs=concurrency,
        keep_result=0,  # nothing kept: typedtiger keeps no result either
        handle_signals=False,
    )
    worker.run()


def main() -> None:
    system, command, *rest = sys.argv[1:]
    if system != "arq":
        raise SystemExit(f"unknown system {system!r}")
    if command == "enqueue":
        print(asyncio.run(_arq_enqueue(int(rest[0]), rest[1])))
    elif command == "worker":
        _arq_worker(int(rest[0]))
    else:
        raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    main()
