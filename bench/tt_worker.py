"""A TaskTiger worker process, set up as the ``tasktiger`` command sets one up.

``tasktiger``'s own ``--exit-after`` counts whole minutes and it has no key-prefix option, so
the benchmark starts this instead: ``TaskTiger(setup_structlog=True, connection=...)`` (JSON
logs to stderr, as the command does, but at INFO like typedtiger's worker: the command logs at
DEBUG), the task module imported first (``-m``), then
``Worker(tiger, queues, executor_class=...).run(once=...)``. Imports tasktiger, never
typedtiger.
"""

from __future__ import annotations

import argparse
import importlib
import logging

import redis
from tasktiger import TaskTiger, Worker
from tasktiger.executor import ForkExecutor, SyncExecutor


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("-n", "--db", type=int, default=11)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("-p", "--port", type=int, default=6379)
    p.add_argument("--prefix", default="tb")
    p.add_argument("-m", "--module", default="bench.tasks")
    p.add_argument("-q", "--queues", default="")
    p.add_argument("--executor", choices=["fork", "sync"], default="fork")
    p.add_argument("--once", action="store_true", help="exit once nothing is queued")
    args = p.parse_args()

    connection = redis.Redis(args.host, args.port, args.db, decode_responses=True)
    tiger = TaskTiger(
        connection=connection,
        config={"REDIS_PREFIX": args.prefix, "DEFAULT_QUEUE": "default"},
        setup_structlog=True,
    )
    # setup_structlog sets TaskTiger's logger to DEBUG; the benchmark runs both systems at
    # INFO, typedtiger's default (a deployment that cares about speed does not log at DEBUG).
    tiger.log.setLevel(logging.INFO)
    importlib.import_module(args.module)
    worker = Worker(
        tiger,
        args.queues.split(",") if args.queues else None,
        executor_class=SyncExecutor if args.executor == "sync" else ForkExecutor,
    )
    worker.run(once=args.once)


if __name__ == "__main__":
    main()
