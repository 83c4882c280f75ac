"""Task functions of the observability tests (the worker registry, metrics, traces)."""

from __future__ import annotations

import time
from collections.abc import Callable

#: What ``call_hooks`` calls, in the worker, while it runs (a test sets them).
HOOKS: list[Callable[[], None]] = []


def call_hooks() -> None:
    for hook in HOOKS:
        hook()


def nap(seconds: float) -> None:
    time.sleep(seconds)
