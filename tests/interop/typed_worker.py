"""A typedtiger worker process for the interop tests, with short timings.

    python -m tests.interop.typed_worker URL SETUP_JSON [typedtiger worker options...]

SETUP_JSON: ``{"config": {Config fields}, "periodic": [{"func": "mod:name", "queue": "q",
"seconds": 2}]}``; the worker options are those of ``typedtiger worker`` (-q, -e, --exit-after...).
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Callable
from typing import Any

from typedtiger import Config, Tiger, periodic
from typedtiger.backends.redis import RedisBackend
from typedtiger.logging import setup_structlog

#: typedtiger's side of the interop tests: lost tasks are requeued after 3 s, locks are retried
#: after 1 s as in TaskTiger; functions of tests may run. (TaskTiger's side heartbeats every
#: 0.5 s, see tt_driver.)
FAST: dict[str, Any] = {
    "active_task_update_timer": 0.2,
    "active_task_update_timeout": 3.0,
    "requeue_expired_tasks_interval": 0.3,
    "select_timeout": 0.2,
    "poll_task_queues_interval": 0.5,
    "lock_retry": 1.0,
    # TaskTiger's side enqueues functions of tests by name; none is registered here
    "allowed_task_modules": ("tests",),
}


def import_function(name: str) -> Callable[..., object]:
    """The function behind "module:qualname"."""
    module_name, _, qualname = name.partition(":")
    func = getattr(importlib.import_module(module_name), qualname)
    assert callable(func), name
    return func  # type: ignore[no-any-return]


def main(argv: list[str]) -> None:
    setup_structlog()
    url, setup_json, *rest = argv
    setup: dict[str, Any] = json.loads(setup_json)
    tiger = Tiger(RedisBackend.from_url(url), Config(**{**FAST, **setup.get("config", {})}))
    for entry in setup.get("periodic", []):
        func = import_function(entry["func"])
        tiger.task(queue=entry["queue"], schedule=periodic(seconds=entry["seconds"]))(func)
    tiger.run_worker_with_args(rest)


if __name__ == "__main__":
    main(sys.argv[1:])
