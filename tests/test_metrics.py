"""Prometheus metrics: a worker's counters as scraped from /metrics after it ran tasks that
succeed, fail, retry and time out (in the worker, with a forked and a prefork pool), the queue
metrics read at scrape time, and the ``metrics`` / ``worker --metrics-port`` commands."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import timedelta

import pytest
import redis
from click.testing import CliRunner
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from tests import observed_tasks, tasks
from tests.conftest import REDIS_URL
from typedtiger import Config, TaskSpec, Tiger
from typedtiger.backends.redis import RedisBackend
from typedtiger.cli import main
from typedtiger.clock import ManualClock
from typedtiger.executor import ForkExecutor, PreforkExecutor, SyncExecutor
from typedtiger.observability.prometheus import QueueCollector, WorkerMetrics, serve
from typedtiger.worker import Worker
from typedtiger.worker.executor import Executor

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _scrape(url: str) -> Samples:
    with urllib.request.urlopen(url, timeout=10) as reply:
        text = reply.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _served(registry: CollectorRegistry) -> str:
    host, port = serve(registry, 0, "127.0.0.1")
    return f"http://{host}:{port}/metrics"


def _of(func: object, queue: str = "default") -> tuple[tuple[str, str], ...]:
    name = f"{func.__module__}:{func.__qualname__}"  # type: ignore[attr-defined]
    return (("function", name), ("queue", queue))


def _value(samples: Samples, name: str, labels: tuple[tuple[str, str], ...]) -> float:
    return samples.get((name, labels), 0.0)


def test_the_counters_after_tasks_succeed_fail_retry_and_time_out(
    tiger: Tiger, clock: ManualClock
) -> None:
    registry = CollectorRegistry()
    url = _served(registry)
    clock.advance(0)
    tiger.enqueue(TaskSpec.of(tasks.simple, 1))
    tiger.enqueue(TaskSpec.of(tasks.simple, 2))
    clock.advance(3)  # they waited 3 s; the others wait none
    tiger.enqueue(TaskSpec.of(tasks.failing))
    tiger.enqueue(TaskSpec.of(tasks.retry_me))
    tiger.enqueue(TaskSpec.of(observed_tasks.nap, 30.0).evolve(hard_timeout=0.2))
    Worker(tiger, executor=SyncExecutor(), listeners=[WorkerMetrics(registry)]).run(once=True)

    samples = _scrape(url)
    simple, failing, retry, nap = (
        _of(f) for f in (tasks.simple, tasks.failing, tasks.retry_me, observed_tasks.nap)
    )
    assert _value(samples, "typedtiger_tasks_started_total", simple) == 2
    assert _value(samples, "typedtiger_tasks_succeeded_total", simple) == 2
    assert _value(samples, "typedtiger_tasks_failed_total", failing) == 1
    assert _value(samples, "typedtiger_tasks_succeeded_total", failing) == 0
    assert _value(samples, "typedtiger_tasks_retried_total", retry) == 1
    assert _value(samples, "typedtiger_tasks_failed_total", retry) == 0
    assert _value(samples, "typedtiger_tasks_timed_out_total", nap) == 1
    assert _value(samples, "typedtiger_tasks_failed_total", nap) == 1
    assert _value(samples, "typedtiger_tasks_timed_out_total", failing) == 0
    for labels in (simple, failing, retry, nap):
        assert _value(samples, "typedtiger_tasks_running", labels) == 0
    assert _value(samples, "typedtiger_task_run_seconds_count", simple) == 2
    assert _value(samples, "typedtiger_task_queued_seconds_count", simple) == 2
    assert _value(samples, "typedtiger_task_queued_seconds_sum", simple) == 6  # 3 s each
    assert _value(samples, "typedtiger_task_queued_seconds_sum", failing) == 0
    waited = (*simple, ("le", "2.5"))
    assert _value(samples, "typedtiger_task_queued_seconds_bucket", tuple(sorted(waited))) == 0
    assert _value(samples, "typedtiger_worker_up", ()) == 1


def test_running_tasks_are_counted_while_they_run(tiger: Tiger) -> None:
    registry = CollectorRegistry()
    url = _served(registry)
    seen: list[Samples] = []
    observed_tasks.HOOKS.append(lambda: seen.append(_scrape(url)))
    try:
        tiger.enqueue(TaskSpec.of(observed_tasks.call_hooks))
        Worker(tiger, executor=SyncExecutor(), listeners=[WorkerMetrics(registry)]).run(once=True)
    finally:
        observed_tasks.HOOKS.clear()
    labels = _of(observed_tasks.call_hooks)
    assert _value(seen[0], "typedtiger_tasks_running", labels) == 1
    assert _value(_scrape(url), "typedtiger_tasks_running", labels) == 0


@pytest.mark.parametrize("executor", [ForkExecutor, PreforkExecutor], ids=["fork", "prefork"])
def test_outcomes_of_child_processes_are_counted_in_the_worker(
    redis_db: redis.Redis[str], executor: type[Executor]
) -> None:
    tiger = Tiger(RedisBackend(redis_db), Config(allowed_task_modules=("tests",)))
    registry = CollectorRegistry()
    url = _served(registry)
    for value in range(6):
        tiger.enqueue(TaskSpec.of(tasks.simple, value))
    tiger.enqueue(TaskSpec.of(tasks.failing))
    tiger.enqueue(TaskSpec.of(observed_tasks.nap, 30.0).evolve(hard_timeout=0.5))
    worker = Worker(tiger, executor=executor(), concurrency=2, listeners=[WorkerMetrics(registry)])
    worker.run(once=True)
    samples = _scrape(url)
    assert _value(samples, "typedtiger_tasks_succeeded_total", _of(tasks.simple)) == 6
    assert _value(samples, "typedtiger_tasks_failed_total", _of(tasks.failing)) == 1
    assert _value(samples, "typedtiger_tasks_timed_out_total", _of(observed_tasks.nap)) == 1
    assert _value(samples, "typedtiger_tasks_started_total", _of(observed_tasks.nap)) == 1


def test_lost_tasks_found_by_the_upkeep_are_counted(tiger: Tiger, clock: ManualClock) -> None:
    registry = CollectorRegistry()
    metrics = WorkerMetrics(registry)
    tiger.enqueue(TaskSpec.of(tasks.simple, 1))
    tiger.enqueue(TaskSpec.of(tasks.simple, 2))
    tiger.backend.claim("default", clock.now(), 2)  # a worker claims them, and dies
    clock.advance(tiger.config.active_task_update_timeout + 1)
    Worker(tiger, executor=SyncExecutor(), listeners=[metrics]).run(once=True)
    samples = _scrape(_served(registry))
    assert _value(samples, "typedtiger_tasks_lost_total", (("outcome", "requeued"),)) == 2
    assert _value(samples, "typedtiger_tasks_lost_total", (("outcome", "failed"),)) == 0
    assert _value(samples, "typedtiger_tasks_succeeded_total", _of(tasks.simple)) == 2


def test_queue_metrics_are_read_at_scrape_time(tiger: Tiger, clock: ManualClock) -> None:
    registry = CollectorRegistry()
    QueueCollector(tiger, registry)
    url = _served(registry)
    assert [name for name, _ in _scrape(url)] == []  # no queue yet
    tiger.enqueue(TaskSpec.of(tasks.simple).evolve(queue="a"))
    clock.advance(10)
    tiger.enqueue(TaskSpec.of(tasks.simple).evolve(queue="a"))
    tiger.enqueue(TaskSpec.of(tasks.simple).evolve(queue="b"), when=timedelta(seconds=60))
    tiger.enqueue(TaskSpec.of(tasks.failing).evolve(queue="c"))
    clock.advance(5)
    tiger.run_worker(executor=SyncExecutor(), once=True, queues=["c"])

    samples = _scrape(url)
    tasks_of = {
        (dict(labels)["queue"], dict(labels)["state"]): value
        for (name, labels), value in samples.items()
        if name == "typedtiger_queue_tasks"
    }
    assert tasks_of == {
        ("a", "queued"): 2, ("a", "active"): 0, ("a", "scheduled"): 0, ("a", "error"): 0,
        ("b", "queued"): 0, ("b", "active"): 0, ("b", "scheduled"): 1, ("b", "error"): 0,
        ("c", "queued"): 0, ("c", "active"): 0, ("c", "scheduled"): 0, ("c", "error"): 1,
    }  # fmt: skip
    oldest = "typedtiger_queue_oldest_queued_seconds"
    assert _value(samples, oldest, (("queue", "a"),)) == 15
    assert _value(samples, oldest, (("queue", "b"),)) == 0
    clock.advance(1)
    assert _value(_scrape(url), oldest, (("queue", "a"),)) == 16


def test_the_oldest_queued_age_counts_every_priority(tiger: Tiger, clock: ManualClock) -> None:
    tiger.enqueue(TaskSpec.of(tasks.simple, 1).evolve(priority=-3))  # oldest, claimed last
    clock.advance(7)
    tiger.enqueue(TaskSpec.of(tasks.simple, 2).evolve(priority=5))  # lowest score
    tiger.enqueue(TaskSpec.of(tasks.simple, 3))
    clock.advance(2)
    assert tiger.get_queued_ages() == {"default": 9}


def test_the_worker_command_serves_its_metrics(
    tiger: Tiger, capsys: pytest.CaptureFixture[str]
) -> None:
    tiger.enqueue(TaskSpec.of(tasks.simple, 1))
    tiger.enqueue(TaskSpec.of(tasks.failing))
    tiger.run_worker_with_args(
        ["--metrics-port=0", "--metrics-addr=127.0.0.1", "--metrics-queues", "--exit-after=idle"]
    )
    stderr = capsys.readouterr().err
    found = re.search(r"Serving metrics on (http://\S+/metrics)", stderr)
    assert found is not None, stderr
    samples = _scrape(found.group(1))
    assert _value(samples, "typedtiger_tasks_succeeded_total", _of(tasks.simple)) == 1
    assert _value(samples, "typedtiger_tasks_failed_total", _of(tasks.failing)) == 1
    assert (
        _value(samples, "typedtiger_queue_tasks", (("queue", "default"), ("state", "error"))) == 1
    )


def test_metrics_queues_needs_a_port(tiger: Tiger) -> None:
    result = CliRunner().invoke(main, ["worker", "--metrics-queues"], obj=tiger)
    assert result.exit_code == 2
    assert "--metrics-queues needs --metrics-port" in result.output


@pytest.fixture
def exporter(redis_db: redis.Redis[str]) -> Iterator[str]:
    """``typedtiger metrics --metrics-port 0`` on the test Redis, its /metrics URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "typedtiger.cli", "metrics", "--url", REDIS_URL,
         "--metrics-port", "0", "--metrics-addr", "127.0.0.1"],
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        found = re.search(r"(http://\S+/metrics)", line)
        assert found is not None, line + process.stderr.read()
        yield found.group(1)
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        assert process.stderr is not None
        process.stderr.close()


def test_the_standalone_exporter_serves_queue_metrics_fast(
    redis_db: redis.Redis[str], exporter: str
) -> None:
    tiger = Tiger(RedisBackend(redis_db), Config(allowed_task_modules=("tests",)))
    tiger.enqueue_many(
        [TaskSpec.of(tasks.simple, n).evolve(queue=f"q{n % 20}") for n in range(2000)]
    )
    _scrape(exporter)
    times = []
    for _ in range(5):
        started = time.perf_counter()
        samples = _scrape(exporter)
        times.append(time.perf_counter() - started)
    assert _value(samples, "typedtiger_queue_tasks", (("queue", "q3"), ("state", "queued"))) == 100
    assert _value(samples, "typedtiger_queue_oldest_queued_seconds", (("queue", "q3"),)) >= 0
    assert sorted(times)[2] < 0.05 * 4, times  # the target is 50 ms; a loaded machine gets 4x
