"""OpenTelemetry: the enqueue span and the run span share a trace (the context travels in the
payload), with the task's id, queue, function, attempt and outcome as attributes."""

from __future__ import annotations

import asyncio
import json

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from tests import tasks
from typedtiger import Task, TaskSpec, Tiger, fixed
from typedtiger.backends.base import TaskState
from typedtiger.clock import ManualClock
from typedtiger.executor import SyncExecutor
from typedtiger.observability.otel import TaskTracing, instrument
from typedtiger.worker import Worker


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def tracing(tiger: Tiger, exporter: InMemorySpanExporter) -> TaskTracing:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return instrument(tiger, provider)


def _run(tiger: Tiger, tracing: TaskTracing) -> None:
    Worker(tiger, executor=SyncExecutor(), listeners=[tracing]).run(once=True)


def _spans(exporter: InMemorySpanExporter) -> dict[str, list[ReadableSpan]]:
    spans: dict[str, list[ReadableSpan]] = {}
    for span in exporter.get_finished_spans():
        spans.setdefault(span.name.split()[0], []).append(span)
    return spans


def test_the_enqueue_and_run_spans_share_a_trace(
    tiger: Tiger, tracing: TaskTracing, exporter: InMemorySpanExporter
) -> None:
    task = tiger.enqueue(TaskSpec.of(tasks.simple, 1).evolve(queue="q"))
    _run(tiger, tracing)

    spans = _spans(exporter)
    (enqueue,) = spans["enqueue"]
    (run,) = spans["run"]
    assert enqueue.name == "enqueue tests.tasks:simple"
    assert run.name == "run tests.tasks:simple"
    assert (enqueue.kind, run.kind) == (SpanKind.PRODUCER, SpanKind.CONSUMER)
    assert enqueue.context is not None and run.context is not None
    assert run.context.trace_id == enqueue.context.trace_id
    assert run.parent is not None and run.parent.span_id == enqueue.context.span_id
    assert dict(enqueue.attributes or {}) == {
        "typedtiger.queue": "q",
        "typedtiger.function": "tests.tasks:simple",
        "typedtiger.task.id": task.id,
    }
    assert dict(run.attributes or {}) == {
        "typedtiger.queue": "q",
        "typedtiger.function": "tests.tasks:simple",
        "typedtiger.task.id": task.id,
        "typedtiger.attempt": 1,
        "typedtiger.outcome": "succeeded",
        "typedtiger.timed_out": False,
    }
    assert run.status.status_code is StatusCode.UNSET


def test_each_attempt_is_a_run_span_in_the_enqueue_trace(
    tiger: Tiger, tracing: TaskTracing, exporter: InMemorySpanExporter, clock: ManualClock
) -> None:
    spec = TaskSpec.of(tasks.failing).evolve(retry=fixed(10, 1))
    task = tiger.enqueue(spec)
    _run(tiger, tracing)
    clock.advance(10)
    _run(tiger, tracing)

    spans = _spans(exporter)
    (enqueue,) = spans["enqueue"]
    runs = spans["run"]
    assert enqueue.context is not None
    assert [span.context.trace_id for span in runs if span.context] == [
        enqueue.context.trace_id
    ] * 2
    assert [(span.attributes or {})["typedtiger.attempt"] for span in runs] == [1, 2]
    assert [(span.attributes or {})["typedtiger.outcome"] for span in runs] == [
        "retried",
        "failed",
    ]
    assert [span.status.status_code for span in runs] == [StatusCode.ERROR] * 2
    assert runs[0].status.description == "builtins:ValueError"
    assert Task.from_id(tiger, "default", TaskState.ERROR, task.id).id == task.id


def test_the_trace_context_travels_in_the_payload_only_when_traced(
    tiger: Tiger, exporter: InMemorySpanExporter
) -> None:
    plain = tiger.enqueue(TaskSpec.of(tasks.simple, 1))
    assert "trace_context" not in plain.data
    tracing = TaskTracing(TracerProvider())
    tiger.instrument_enqueue(tracing.enqueue)
    traced = tiger.enqueue(TaskSpec.of(tasks.simple, 2))
    stored = tiger.backend.get_task("default", TaskState.QUEUED, traced.id, 0)
    assert stored is not None and stored.payload is not None
    context = json.loads(stored.payload)["trace_context"]
    assert set(context) == {"traceparent"}
    assert context["traceparent"].startswith("00-")
    tiger.instrument_enqueue(None)
    assert "trace_context" not in tiger.enqueue(TaskSpec.of(tasks.simple, 3)).data


def test_a_batch_of_many_tasks_is_one_enqueue_span(
    tiger: Tiger, tracing: TaskTracing, exporter: InMemorySpanExporter
) -> None:
    tiger.enqueue_many([TaskSpec.of(tasks.simple, n) for n in range(3)])
    _run(tiger, tracing)
    spans = _spans(exporter)
    (enqueue,) = spans["enqueue"]
    assert (enqueue.attributes or {})["typedtiger.task.count"] == 3
    assert enqueue.context is not None
    assert {span.context.trace_id for span in spans["run"] if span.context} == {
        enqueue.context.trace_id
    }
    assert len(spans["run"]) == 3


def test_an_awaited_enqueue_is_traced_as_enqueue_is(
    tiger: Tiger, tracing: TaskTracing, exporter: InMemorySpanExporter
) -> None:
    async def enqueue() -> Task:
        try:
            return await tiger.aenqueue(TaskSpec.of(tasks.simple, 1))
        finally:
            await tiger.aclose()

    task = asyncio.run(enqueue())

    (span,) = _spans(exporter)["enqueue"]
    assert span.kind == SpanKind.PRODUCER
    stored = tiger.backend.get_task("default", TaskState.QUEUED, task.id, 0)
    assert stored is not None and stored.payload is not None
    context = json.loads(stored.payload)["trace_context"]
    assert context["traceparent"].split("-")[1] == f"{span.context.trace_id:032x}"
