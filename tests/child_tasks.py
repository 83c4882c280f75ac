"""Tasks for tests/test_task_child.py: what a task may do to the process it runs in."""

from __future__ import annotations

import contextlib
import os
import signal
import time


def _append(ledger: str, line: str) -> None:
    with open(ledger, "a") as file:
        file.write(line + "\n")


def deaf_to_alarm(ledger: str) -> None:
    """Ignore the hard timeout's alarm and sleep on: only the SIGKILL stops it."""
    signal.signal(signal.SIGALRM, signal.SIG_IGN)
    _append(ledger, f"started {os.getpid()}")
    while True:
        time.sleep(0.05)


def scribble_on_inherited_fds(ledger: str) -> None:
    """Write junk to every descriptor beyond stdio this process has, and list them."""
    ours = os.open(ledger, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    found = []
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # the listing's own descriptor, closed by now
            continue
        if fd <= 2 or fd == ours:
            continue
        found.append(f"{fd}={target}")
        for junk in (b"*3\r\n$3\r\nSET\r\n$1\r\nx\r\n", b"\x00\xff garbage \r\n" * 64):
            with contextlib.suppress(OSError):
                os.write(fd, junk)
    os.write(ours, f"scribbled {' '.join(found)}\n".encode())
    os.close(ours)


def append(ledger: str, item: str, seconds: float = 0.0) -> None:
    time.sleep(seconds)
    _append(ledger, item)
