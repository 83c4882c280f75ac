"""Tasks for the PreforkExecutor's tests: they leave traces in files (the child is another
process) and some keep state in this module, which a pool child keeps between tasks."""

from __future__ import annotations

import faulthandler
import os
import signal
import time

#: What ``keep_memory`` allocated: it stays as long as the child does.
KEPT: list[bytes] = []
#: How many times ``count`` ran in this process.
COUNT = [0]


def _append(path: str, line: str) -> None:
    with open(path, "a", encoding="utf8") as file:
        file.write(line + "\n")


def append_pid(path: str, seconds: float = 0.0) -> None:
    """Append this process's pid to ``path``, after sleeping ``seconds``."""
    time.sleep(seconds)
    _append(path, str(os.getpid()))


def count(path: str) -> None:
    """Append ``pid n``: n is how many times this process ran it (module state)."""
    COUNT[0] += 1
    _append(path, f"{os.getpid()} {COUNT[0]}")


def keep_memory(path: str, mebibytes: int) -> None:
    """Allocate (and touch) ``mebibytes`` MiB, kept in a module global."""
    KEPT.append(b"x" * (mebibytes << 20))
    _append(path, str(os.getpid()))


def hang_deaf_to_alarm(path: str) -> None:
    """Append the pid, then sleep through the hard timeout's alarm."""
    signal.signal(signal.SIGALRM, signal.SIG_IGN)
    _append(path, str(os.getpid()))
    time.sleep(60)


def exit_with(path: str, code: int) -> None:
    _append(path, str(os.getpid()))
    os._exit(code)


def kill_self(path: str, signum: int) -> None:
    faulthandler.disable()  # no stack dump for a deliberate crash
    _append(path, str(os.getpid()))
    os.kill(os.getpid(), signum)
    time.sleep(5)


def fail(message: str) -> None:
    raise ValueError(message)
