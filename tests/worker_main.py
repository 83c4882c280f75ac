"""Runs a worker in its own process for the process-level tests, with short timings.

python -m tests.worker_main REDIS_URL [--executor fork|sync] [--exit-after idle|SECONDS]
"""

from __future__ import annotations

import sys

from tests import worker_tasks
from tests.waiting import scaled
from typedtiger import Config, Tiger
from typedtiger.backends.redis import RedisBackend
from typedtiger.logging import setup_structlog

#: Timings that make lost-worker recovery take about a second (more with
#: $TYPEDTIGER_TEST_TIME_SCALE: a heartbeat late on a loaded machine must not requeue a live task).
FAST = Config(
    active_task_update_timer=0.2,
    active_task_update_timeout=scaled(1.0),
    requeue_expired_tasks_interval=0.3,
    select_timeout=0.2,
    poll_task_queues_interval=0.5,
    lock_retry=0.2,
    allowed_task_modules=("tests",),  # the tests run unregistered functions of tests by name
)


def main(argv: list[str]) -> None:
    setup_structlog()
    url, *rest = argv
    tiger = Tiger(RedisBackend.from_url(url), FAST)
    tiger.adopt(worker_tasks.tiger)
    tiger.run_worker_with_args(rest)


if __name__ == "__main__":
    main(sys.argv[1:])
