"""Prometheus metrics (``typedtiger[metrics]``): a worker's task counters, run and wait times
and running tasks (``WorkerMetrics``, a worker listener: outcomes of forked children are counted
in the worker, where they are recorded), and queue sizes and ages read from storage at scrape
time (``QueueCollector``). ``serve`` exposes a registry on ``/metrics``.

    registry = CollectorRegistry()
    metrics = WorkerMetrics(registry)
    QueueCollector(tiger, registry)          # in one worker, or a standalone exporter
    serve(registry, port=9100)
    Worker(tiger, listeners=[metrics]).run()
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from typedtiger.backends.base import TaskState
from typedtiger.tiger import Tiger
from typedtiger.worker.events import Ended, JobEnd, Result
from typedtiger.worker.job import Job

__all__ = ["QueueCollector", "WorkerMetrics", "serve"]

_LABELS: Final = ("queue", "function")
#: Seconds: from a few milliseconds (a short task) to an hour (a long one, a deep backlog).
_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)


class WorkerMetrics:
    """A worker's task metrics, in ``registry`` (a worker listener: ``Worker(listeners=...)``).

    Counted per task (a batch job of n tasks counts n), labelled by queue and function; the run
    time is observed once per job.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        def counter(name: str, what: str) -> Counter:
            return Counter(name, what, _LABELS, registry=registry)

        self.started = counter("typedtiger_tasks_started", "Tasks this worker started.")
        self.succeeded = counter("typedtiger_tasks_succeeded", "Tasks that returned.")
        self.failed = counter(
            "typedtiger_tasks_failed", "Tasks that failed for good (to error, or dropped)."
        )
        self.retried = counter(
            "typedtiger_tasks_retried", "Tasks that failed and were scheduled to run again."
        )
        self.timed_out = counter(
            "typedtiger_tasks_timed_out",
            "Tasks stopped at their hard timeout (also counted as failed or retried).",
        )
        self.lost = Counter(
            "typedtiger_tasks_lost",
            "Tasks whose worker was lost (heartbeat expired), found by this worker's upkeep: "
            "requeued, or failed after max_worker_loss_retries losses.",
            ("outcome",),
            registry=registry,
        )
        self.run_time = Histogram(
            "typedtiger_task_run_seconds",
            "Run time of a job (a task, or a batch), its first line to its outcome.",
            _LABELS,
            buckets=_BUCKETS,
            registry=registry,
        )
        self.queued_time = Histogram(
            "typedtiger_task_queued_seconds",
            "Time from enqueue (the task's time_last_queued) to its start.",
            _LABELS,
            buckets=_BUCKETS,
            registry=registry,
        )
        self.running = Gauge(
            "typedtiger_tasks_running", "Tasks running now.", _LABELS, registry=registry
        )
        self.up = Gauge("typedtiger_worker_up", "1 while this worker runs.", registry=registry)
        self.up.set(1)
        self._results = {
            Result.SUCCEEDED: self.succeeded,
            Result.FAILED: self.failed,
            Result.RETRIED: self.retried,
        }

    def job_started(self, job: Job, now: float, attempt: int) -> Ended:
        labels = (job.queue, job.func)
        count = len(job.tasks)
        self.started.labels(*labels).inc(count)
        queued = self.queued_time.labels(*labels)
        for payload in job.tasks:
            if payload.time_last_queued is not None:
                queued.observe(max(0.0, now - payload.time_last_queued))
        running = self.running.labels(*labels)
        running.inc(count)

        def ended(end: JobEnd) -> None:
            running.dec(count)
            self.run_time.labels(*labels).observe(end.duration)
            self._results[end.result].labels(*labels).inc(count)
            if end.timed_out:
                self.timed_out.labels(*labels).inc(count)

        return ended

    def tasks_lost(self, requeued: int, failed: int) -> None:
        self.lost.labels("requeued").inc(requeued)
        self.lost.labels("failed").inc(failed)


class QueueCollector(Collector):
    """Queue sizes per state and the age of each queue's oldest queued task, read from the
    Tiger's storage at each scrape (three round trips, whatever the number of tasks)."""

    def __init__(self, tiger: Tiger, registry: CollectorRegistry | None = None) -> None:
        self._tiger = tiger
        # Scrapes may come at once (a server thread each): one storage read at a time.
        self._lock = threading.Lock()
        if registry is not None:
            registry.register(self)

    def describe(self) -> Iterable[Metric]:
        return ()  # (collected at scrape time only: registering reads nothing)

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            sizes = self._tiger.backend.queue_sizes(None)
            waiting = [queue for queue, counts in sizes.items() if counts[TaskState.QUEUED]]
            ages = self._tiger.get_queued_ages(waiting)
        tasks = GaugeMetricFamily(
            "typedtiger_queue_tasks", "Tasks in each queue and state.", labels=["queue", "state"]
        )
        for queue, counts in sorted(sizes.items()):
            for state, count in counts.items():
                tasks.add_metric([queue, state.value], count)
        oldest = GaugeMetricFamily(
            "typedtiger_queue_oldest_queued_seconds",
            "Seconds the longest-waiting queued task of each queue has waited (0: none queued).",
            labels=["queue"],
        )
        for queue in sorted(sizes):
            oldest.add_metric([queue], ages.get(queue, 0.0))
        yield tasks
        yield oldest


def serve(registry: CollectorRegistry, port: int, addr: str = "0.0.0.0") -> tuple[str, int]:
    """Serve ``registry`` on ``http://addr:port/metrics`` from a daemon thread; the address it
    listens on (port 0: a free one)."""
    server, _thread = start_http_server(port, addr=addr, registry=registry)
    host, bound = server.server_address[:2]
    return str(host), int(bound)
