"""Task functions run by both TaskTiger and typedtiger workers in the interop tests.

This module is imported by the TaskTiger virtualenv (redis<5, no attrs/cattrs) and by ours, so
it imports nothing from typedtiger or tasktiger at module level: every function (plain, or async
for ``arecord``) reports what it did by appending a JSON line to a ledger file given as its first
argument (periodic tasks, which take no arguments, read the ledger path from $INTEROP_LEDGER).
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = [
    "CustomError",
    "NotARunner",
    "SubError",
    "arecord",
    "batch_record",
    "die",
    "fail",
    "fail_unless_exists",
    "hang_once",
    "read_ledger",
    "record",
    "retry_in_7",
    "retry_via_exception",
    "sleep_then_record",
    "tick",
]

#: Where ``tick`` (a periodic task: no arguments) writes.
LEDGER_ENV = "INTEROP_LEDGER"


class CustomError(Exception):
    """An application exception named in ``retry_on``."""


class SubError(CustomError):
    """A subclass: ``retry_on=[CustomError]`` covers it."""


class NotARunner:
    """Named as a runner class by a TaskTiger payload; it is no runner of either library."""


def _append(ledger: str, event: str, label: str, **fields: object) -> None:
    line = json.dumps(
        {"event": event, "label": label, "pid": os.getpid(), "time": time.time(), **fields}
    )
    # One write() of an O_APPEND file: lines from concurrent processes never interleave.
    fd = os.open(ledger, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode("utf8"))
    finally:
        os.close(fd)


def read_ledger(ledger: str | Path) -> list[dict[str, object]]:
    """Every line the tasks wrote, in order."""
    path = Path(ledger)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def record(ledger: str, label: str, *args: object, **kwargs: object) -> None:
    """Succeed, noting the label and every argument."""
    _append(ledger, "done", label, args=list(args), kwargs=kwargs)


async def arecord(ledger: str, label: str, *args: object, **kwargs: object) -> None:
    """``record`` as an async task, after a turn of the event loop."""
    await asyncio.sleep(0)
    _append(ledger, "done", label, args=list(args), kwargs=kwargs, loop=True)


def fail(ledger: str, label: str, kind: str = "ValueError", message: str = "boom") -> None:
    """Note the attempt, then raise ``kind`` (ValueError, CustomError or SubError)."""
    _append(ledger, "attempt", label)
    errors: Mapping[str, type[Exception]] = {
        "ValueError": ValueError,
        "CustomError": CustomError,
        "SubError": SubError,
    }
    raise errors[kind](f"{message} ({label})")


def fail_unless_exists(ledger: str, label: str, flag: str) -> None:
    """Fail until the file ``flag`` exists (a bug fixed between two attempts), then succeed."""
    if not os.path.exists(flag):
        _append(ledger, "attempt", label)
        raise ValueError(f"{flag} is missing ({label})")
    _append(ledger, "done", label)


def sleep_then_record(ledger: str, label: str, seconds: float, **kwargs: object) -> None:
    """Note the start, sleep, note the end (a long task, e.g. one that holds a lock)."""
    _append(ledger, "started", label, kwargs=kwargs)
    time.sleep(seconds)
    _append(ledger, "done", label, kwargs=kwargs)


def die(ledger: str, label: str) -> None:
    """Note the start, then kill this process with SIGKILL (a crash, the OOM killer)."""
    import signal  # (only here: the module's other tasks never signal)

    _append(ledger, "started", label)
    os.kill(os.getpid(), signal.SIGKILL)


def hang_once(ledger: str, label: str) -> None:
    """The first run hangs (until its worker is killed); a run after it finishes at once."""
    started = any(
        entry["event"] == "started" and entry["label"] == label for entry in read_ledger(ledger)
    )
    _append(ledger, "started", label)
    if not started:
        time.sleep(120)
    _append(ledger, "done", label)


def retry_via_exception(ledger: str, label: str) -> None:
    """Ask for a retry in 4 s (at most once) with the RetryException of whichever library runs
    this: TaskTiger's where typedtiger is not installed, typedtiger's otherwise."""
    _append(ledger, "attempt", label)
    try:
        library = importlib.import_module("typedtiger")
    except ImportError:
        library = importlib.import_module("tasktiger")
    raise library.RetryException(method=library.fixed(4, 1))


def batch_record(calls: Sequence[Mapping[str, object]]) -> None:
    """A batch task: called once with ``[{"args": [...], "kwargs": {...}}, ...]``."""
    for call in calls:
        args = call["args"]
        assert isinstance(args, list)
        ledger, label = args[0], args[1]
        assert isinstance(ledger, str) and isinstance(label, str)
        _append(ledger, "done", label, batch_size=len(calls), kwargs=call["kwargs"])


def tick() -> None:
    """A periodic task: notes when it ran in the ledger named by $INTEROP_LEDGER."""
    _append(os.environ[LEDGER_ENV], "done", "tick")


def retry_in_7(retry_number: int) -> float:
    """A custom retry function: always 7 seconds (it takes no extra arguments)."""
    return 7.0
