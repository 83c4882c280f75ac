"""Tasks for the process-level worker tests: they leave traces in a ledger file."""

from __future__ import annotations

import faulthandler
import os
import signal
import time

from typedtiger import Tiger

tiger = Tiger()


def _append(ledger: str, line: str) -> None:
    with open(ledger, "a", encoding="utf8") as file:
        file.write(line + "\n")


def record(ledger: str, item: str, seconds: float = 0.0) -> None:
    """Append ``started item``, sleep, append ``item``."""
    _append(ledger, f"started {item} {os.getpid()}")
    time.sleep(seconds)
    _append(ledger, item)


def fail_on_an_undecodable_name() -> None:
    """Fail with a message holding a lone surrogate, as an OSError about a file name that is
    not UTF-8 does (os.fsdecode keeps its bytes as surrogates)."""
    name = os.fsdecode(b"caf\xe9")
    raise FileNotFoundError(f"no such file: {name}")


def sleep_for(seconds: float) -> None:
    time.sleep(seconds)


@tiger.task(hard_timeout=0.5)
def short_fuse(seconds: float) -> None:
    time.sleep(seconds)


def hang_ignoring_alarm(ledger: str) -> None:
    signal.signal(signal.SIGALRM, signal.SIG_IGN)
    _append(ledger, f"started hang {os.getpid()}")
    while True:
        time.sleep(0.05)


def exit_with(code: int) -> None:
    os._exit(code)


def kill_self(signum: int) -> None:
    faulthandler.disable()  # pytest's dump of a deliberate SIGSEGV is noise in the test log
    os.kill(os.getpid(), signum)


def record_slow_first_time(ledger: str, item: str) -> None:
    """Hang for a minute on the first run (to be killed), finish at once afterwards."""
    first_run = not os.path.exists(ledger)
    _append(ledger, f"started {item} {os.getpid()}")
    if first_run:
        time.sleep(60)
    _append(ledger, item)


def record_span(ledger: str, key: str, item: str, seconds: float) -> None:
    """Append ``key item start end`` after sleeping: the span the task held its lock."""
    start = time.time()
    time.sleep(seconds)
    _append(ledger, f"{key} {item} {start!r} {time.time()!r}")
