"""Task functions both systems run. Plain functions: no typedtiger, no tasktiger import."""

from __future__ import annotations

import contextlib
import os
import time


def noop() -> None:
    """Does nothing: what is measured is the queue's own cost."""


def _append(path: str, line: str) -> None:
    """Append ``line`` to ``path`` with one write (lines of concurrent processes never mix)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{line}\n".encode())
    finally:
        os.close(fd)


def stamp(path: str, enqueued_at: float) -> None:
    """Append ``enqueued_at started_at`` to ``path``; started_at is taken first thing."""
    started_at = time.time()
    _append(path, f"{enqueued_at!r} {started_at!r}")


def hold(path: str, item: str, seconds: float, *, key: str) -> None:
    """Append ``begin``, sleep ``seconds``, append ``end`` (for lock tasks keyed by ``key``)."""
    _append(path, f"begin {item}@{key} {time.time()!r}")
    time.sleep(seconds)
    _append(path, f"end {item}@{key} {time.time()!r}")


def stubborn(path: str, item: str, seconds: float, *, key: str) -> None:
    """``hold``, deaf to whatever the timeout raises (as a task stuck in C code would be): only
    a kill ends it before ``seconds``."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        with contextlib.suppress(BaseException):  # the point: a timeout does not stop it
            time.sleep(0.05)
    hold(path, item, 0, key=key)
