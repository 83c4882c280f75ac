"""Tasks for tests/test_task_child.py: what a task may do to the process it runs in."""

from __future__ import annotations

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
