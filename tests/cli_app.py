"""An application as `typedtiger worker --app tests.cli_app` loads it: its own Tiger, built on
import from the environment, with a Config the worker must honour (not the defaults).

Tasks report to the Redis list ``app:ran`` so that the test (another process) can see them.
"""

from __future__ import annotations

import os
import time

import redis

from typedtiger import Config, Tiger
from typedtiger.backends.redis import RedisBackend
from typedtiger.runner import BatchCall

URL = os.environ.get("TYPEDTIGER_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
RAN = "app:ran"

CONFIG = Config(
    prefix="app",
    batch_queues={"bulk": 3},
    default_hard_timeout=1.0,
    hard_timeout_kill_grace=0.5,
    allowed_task_modules=("tests.cli_app_extra",),
)
tiger = Tiger(RedisBackend.from_url(URL), CONFIG)


def _report(line: str) -> None:
    client = redis.Redis.from_url(URL, decode_responses=True)
    client.rpush(RAN, line)
    client.close()


@tiger.task(queue="bulk", batch=True)
def bulk(calls: list[BatchCall]) -> None:
    """Reports the size of each batch it is given."""
    _report(f"batch {len(calls)}")


@tiger.task(queue="slow")
def slow(seconds: float) -> None:
    """Sleeps past the app's one-second default hard timeout when asked to."""
    time.sleep(seconds)
    _report(f"slept {seconds}")
