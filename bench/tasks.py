"""Task functions both systems run. Plain functions: no typedtiger, no tasktiger import."""

from __future__ import annotations

import contextlib
import os
import time


def noop() -> None:
    """Does nothing: what is measured is the queue's own cost."""


def stamp(path: str, enqueued_at: float) -> None:
    """Append ``enqueued_at started_at`` to ``path``; started_at is taken first thing."""
    started_at = time.time()
    line = f"{enqueued_at!r} {started_at!r}\n".encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def hold(path: str, item: str, seconds: float, *, key: str) -> None:
    """Append ``begin``, sleep ``seconds``, append ``end`` (for lock tasks keyed by ``key``)."""
    for what in ("begin", "end"):
        if what == "end":
            time.sleep(seconds)
        line = f"{what} {item}@{key} {time.time()!r}\n".encode()
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)


def stubborn(path: str, item: str, seconds: float, *, key: str) -> None:
    """``hold``, deaf to whatever the timeout raises (as a task stuck in C code would be): only
    a kill ends it before ``seconds``."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        with contextlib.suppress(BaseException):  # the point: a timeout does not stop it
            time.sleep(0.05)
    hold(path, item, 0, key=key)
