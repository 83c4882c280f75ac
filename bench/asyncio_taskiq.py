"""taskiq's side of bench.asyncio_run (its venv), with taskiq-redis's ``RedisStreamBroker`` (the
one its README shows, with acknowledgements) and no result backend (no result kept).

``python -m bench.asyncio_taskiq worker N``: one worker process as the ``taskiq worker
bench.asyncio_taskiq:broker`` command forks it (its arguments, defaults included: at most 100
tasks at once, logging at INFO as the command sets it up), run in this process rather than a
child of taskiq's process manager, with ``--max-tasks-per-child N``: it stops fetching after N
messages and exits once they have run. taskiq has no mode that stops on an empty queue, so this
stands in for one; bench.asyncio_run's idle run for taskiq is a worker that runs one task.

``python -m bench.asyncio_taskiq enqueue N TASK`` queues N ``.kiq()`` calls.
"""

from __future__ import annotations

import asyncio
import logging
import sys

from taskiq.cli.worker.args import WorkerArgs
from taskiq.cli.worker.run import start_listen
from taskiq_redis import RedisStreamBroker

from bench import async_tasks
from bench.asyncio_peers import CONCURRENCY, URL, enqueue_all

broker = RedisStreamBroker(url=URL)
TASKS = {
    "anoop": broker.register_task(async_tasks.anoop, task_name="anoop"),
    "asleep": broker.register_task(async_tasks.asleep, task_name="asleep"),
}


async def enqueue(n: int, task: str) -> None:
    await broker.startup()  # the client's startup creates the stream's consumer group
    await enqueue_all(n, TASKS[task].kiq)
    await broker.shutdown()


def worker(n: int) -> None:
    args = WorkerArgs.from_cli(
        ["bench.asyncio_taskiq:broker", "--max-async-tasks", str(CONCURRENCY),
         "--max-tasks-per-child", str(n)]
    )  # fmt: skip
    # What `taskiq worker` does before it forks its workers (taskiq.cli.worker.run.run_worker).
    logging.basicConfig(level=args.log_level, format=args.log_format)
    logging.getLogger("taskiq").setLevel(level=args.log_level)
    start_listen(args)


def main() -> None:
    command, *rest = sys.argv[1:]
    if command == "enqueue":
        asyncio.run(enqueue(int(rest[0]), rest[1]))
    elif command == "worker":
        worker(int(rest[0]))
    else:
        raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    main()
