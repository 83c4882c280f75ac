"""SyncExecutor: heartbeats and the hard-timeout alarm across consecutive jobs."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable

from tests.test_fork_executor import failed, make_job, ok, sleep_for
from tests.waiting import scaled
from typedtiger._outcome import Succeeded
from typedtiger.executor import SyncExecutor

JOB_TIMEOUT = "tasktiger.exceptions:JobTimeoutException"


def _recorder(beats: list[float]) -> Callable[[], None]:
    return lambda: beats.append(time.monotonic())


def test_every_job_gets_its_heartbeats_on_time() -> None:
    executor = SyncExecutor()
    for _ in range(3):  # the later jobs start while the heartbeat thread idles
        beats: list[float] = []
        started = time.monotonic()
        # A longer job on a busy machine: three beats need more than 0.15 s when threads wait.
        outcome = executor.execute(make_job(sleep_for, scaled(0.25)), _recorder(beats), 0.05)
        assert isinstance(outcome, Succeeded)
        assert len(beats) >= 3, beats
        assert beats[0] - started < scaled(0.05 + 0.04)  # the first beat comes one interval in
        time.sleep(0.03)


def test_the_alarm_raises_only_while_a_job_runs() -> None:
    executor = SyncExecutor()
    timed_out = failed(
        executor.execute(make_job(sleep_for, 2.0, hard_timeout=0.1), lambda: None, 10)
    )
    assert timed_out.exception_name == JOB_TIMEOUT
    assert isinstance(executor.execute(make_job(ok), lambda: None, 10), Succeeded)
    handler = signal.getsignal(signal.SIGALRM)  # what a stray SIGALRM between jobs meets
    assert callable(handler)
    handler(signal.SIGALRM, None)  # nothing armed: nothing raised
