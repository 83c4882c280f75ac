"""SyncExecutor: the worker's heartbeats and the hard-timeout alarm across consecutive jobs."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable

from tests.test_fork_executor import Work, failed, make_job, ok, outcome_of, sleep_for
from tests.waiting import scaled
from typedtiger.executor import Outcome, Succeeded, SyncExecutor
from typedtiger.worker.heartbeat import Heartbeat, Heartbeats

JOB_TIMEOUT = "tasktiger.exceptions:JobTimeoutException"


def _recorder(beats: list[float]) -> Callable[[], None]:
    return lambda: beats.append(time.monotonic())


def execute(executor: SyncExecutor, work: Work) -> Outcome:
    return outcome_of(executor.start(work.job, work.run))


def test_every_job_gets_its_heartbeats_on_time() -> None:
    executor, heartbeats = SyncExecutor(), Heartbeats(0.05)
    for _ in range(3):  # the later jobs start while the heartbeat thread idles
        beats: list[float] = []
        started = time.monotonic()
        work = make_job(sleep_for, scaled(0.25))
        running = executor.start(work.job, work.run)
        beat = Heartbeat(_recorder(beats))
        heartbeats.add(beat)
        # A longer job on a busy machine: three beats need more than 0.15 s when threads wait.
        outcome = outcome_of(running)
        heartbeats.remove(beat)
        assert isinstance(outcome, Succeeded)
        assert len(beats) >= 3, beats
        assert beats[0] - started < scaled(0.05 + 0.04)  # the first beat comes one interval in
        time.sleep(0.03)


def test_the_alarm_raises_only_while_a_job_runs() -> None:
    executor = SyncExecutor()
    timed_out = failed(execute(executor, make_job(sleep_for, 2.0, hard_timeout=0.1)))
    assert timed_out.exception_name == JOB_TIMEOUT
    assert isinstance(execute(executor, make_job(ok)), Succeeded)
    handler = signal.getsignal(signal.SIGALRM)  # what a stray SIGALRM between jobs meets
    assert callable(handler)
    handler(signal.SIGALRM, None)  # nothing armed: nothing raised


def test_a_job_runs_when_waited_for() -> None:
    ran: list[str] = []
    work = make_job(ok)

    def run(job: object) -> Outcome:
        ran.append("ran")
        return work.run(work.job)

    running = SyncExecutor().start(work.job, run)
    assert ran == []  # started: the worker says so (and starts its heartbeat) first
    assert outcome_of(running) is outcome_of(running)
    assert ran == ["ran"]
