"""OpenTelemetry spans (``typedtiger[otel]``): one around each enqueue, whose trace context
travels in the payload (``trace_context``, a field TaskTiger ignores), and one around each
execution, in the enqueue's trace. Attributes: task id, queue, function, attempt, outcome.

    tracing = instrument(tiger)            # enqueues of this Tiger are traced
    Worker(tiger, listeners=[tracing])     # and its worker's executions (typedtiger worker --otel)

The spans use the global tracer provider unless given one, and the global propagator (W3C trace
context by default). The execution span is made in the worker process, from the job's start to
its recorded outcome, whatever the executor: spans a task makes in a forked child are not its
children.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import attrs
from opentelemetry import propagate, trace
from opentelemetry.trace import Link, SpanKind, Status, StatusCode, TracerProvider

from typedtiger._async_client import Timed
from typedtiger.serialization import TaskPayload
from typedtiger.tiger import Tiger
from typedtiger.worker.events import Ended, JobEnd, Result
from typedtiger.worker.job import Job

__all__ = ["TaskTracing", "instrument"]

_SCOPE = "typedtiger"


def _attributes(payloads: Sequence[TaskPayload], queue: str) -> dict[str, str | int]:
    first = payloads[0]
    attributes: dict[str, str | int] = {
        "typedtiger.queue": queue,
        "typedtiger.function": first.func,
    }
    if len(payloads) == 1:
        attributes["typedtiger.task.id"] = first.id
    else:
        attributes["typedtiger.task.count"] = len(payloads)
    return attributes


class TaskTracing:
    """Makes the spans: ``enqueue`` wraps a Tiger's enqueues (``instrument``), and it is a
    worker listener for the executions."""

    def __init__(self, tracer_provider: TracerProvider | None = None) -> None:
        self._tracer = trace.get_tracer(_SCOPE, tracer_provider=tracer_provider)

    @contextlib.contextmanager
    def enqueue(self, timed: Timed) -> Iterator[Timed]:
        """An ``enqueue <function>`` span around the storing of ``timed`` (one span for the
        tasks of one call), giving the payloads to store, each carrying its context."""
        first, queue = timed[0]
        attributes = _attributes([payload for payload, _ in timed], queue)
        with self._tracer.start_as_current_span(
            f"enqueue {first.func}", kind=SpanKind.PRODUCER, attributes=attributes
        ):
            carrier: dict[str, str] = {}
            propagate.inject(carrier)  # (nothing without a recording span: no field then)
            context = carrier or None
            yield [(attrs.evolve(payload, trace_context=context), q) for payload, q in timed]

    def job_started(self, job: Job, now: float, attempt: int) -> Ended:
        """Start a ``run <function>`` span in the trace of the job's first task (a batch links
        the others' traces)."""
        contexts = [propagate.extract(payload.trace_context or {}) for payload in job.tasks]
        links = [
            Link(trace.get_current_span(context).get_span_context()) for context in contexts[1:]
        ]
        attributes = {**_attributes(job.tasks, job.queue), "typedtiger.attempt": attempt}
        span = self._tracer.start_span(
            f"run {job.func}",
            context=contexts[0],
            kind=SpanKind.CONSUMER,
            attributes=attributes,
            links=[link for link in links if link.context.is_valid],
        )

        def ended(end: JobEnd) -> None:
            span.set_attribute("typedtiger.outcome", end.result.value)
            span.set_attribute("typedtiger.timed_out", end.timed_out)
            if end.result is not Result.SUCCEEDED:
                span.set_status(Status(StatusCode.ERROR, end.exception_name))
            span.end()

        return ended

    def tasks_lost(self, requeued: int, failed: int) -> None:
        """(Lost tasks make no span: their run's span ended with their worker, or never.)"""


def instrument(tiger: Tiger, tracer_provider: TracerProvider | None = None) -> TaskTracing:
    """Trace ``tiger``'s enqueues; the TaskTracing, to give its workers as a listener."""
    tracing = TaskTracing(tracer_provider)
    tiger.instrument_enqueue(tracing.enqueue)
    return tracing
