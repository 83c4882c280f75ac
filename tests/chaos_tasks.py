"""Tasks for the chaos suite (tests/chaos/), the bad-input and the security tests.

Ledger lines are written with one ``write`` on a file opened with O_APPEND, so lines from
concurrent processes never interleave:

- ``begin <item> <pid> <epoch seconds>`` when a run starts,
- ``end <item> <pid> <epoch seconds>`` when it finishes.
"""

from __future__ import annotations

import ctypes
import faulthandler
import os
import time

from typedtiger import Tiger

#: Registrations of the security tests (a registered task is always allowed).
tiger = Tiger()


def append(ledger: str, line: str) -> None:
    """Append one line to ``ledger`` atomically."""
    fd = os.open(ledger, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode("utf8"))
    finally:
        os.close(fd)


def _mark(ledger: str, what: str, item: str) -> None:
    append(ledger, f"{what} {item} {os.getpid()} {time.time():.6f}")


def run(ledger: str, item: str, seconds: float = 0.0) -> None:
    """Write ``begin``, sleep, write ``end``."""
    _mark(ledger, "begin", item)
    time.sleep(seconds)
    _mark(ledger, "end", item)


def run_unique(ledger: str, item: str, seconds: float = 0.0) -> None:
    """``run``, for tasks enqueued with ``unique=True`` (a separate name keeps ids apart)."""
    run(ledger, item, seconds)


def run_locked(ledger: str, item: str, seconds: float = 0.0, *, key: str) -> None:
    """``run``, for tasks enqueued with ``lock_key=["key"]``; the ledger item names the key."""
    run(ledger, f"{item}@{key}", seconds)


def run_slow_first_time(ledger: str, item: str) -> None:
    """``run``, but the first run of ``item`` hangs for two minutes (to be killed)."""
    first = not os.path.exists(ledger)
    _mark(ledger, "begin", item)
    if first:
        time.sleep(120)
    _mark(ledger, "end", item)


def noop() -> None:
    """Does nothing."""


def accept(data: object) -> None:
    """Takes an argument and ignores it."""


def record_size(ledger: str, data: str) -> None:
    """Append ``size <len(data)>``."""
    append(ledger, f"size {len(data)}")


def record_type(ledger: str, value: object) -> None:
    """Append ``type <type name of value> <repr of value>``."""
    append(ledger, f"type {type(value).__name__} {value!r}")


def return_unserializable(ledger: str) -> object:
    """Returns a value JSON cannot carry (the worker ignores return values)."""
    append(ledger, "returned")
    return {object(), frozenset()}


def segfault() -> None:
    """Dereference NULL: a real SIGSEGV (faulthandler off, so no dump on stderr)."""
    faulthandler.disable()
    ctypes.string_at(0)


def fail(message: str) -> None:
    """Raise ValueError(message)."""
    raise ValueError(message)


@tiger.task
def registered(ledger: str, item: str) -> None:
    """A registered task (always allowed by Config.allowed_task_modules)."""
    append(ledger, f"registered {item}")
