"""Observability from the command line: ``typedtiger worker --metrics-port N``
(``worker_metrics``) and ``--otel`` (``worker_tracing``), and the standalone exporter of queue
metrics, ``typedtiger metrics --metrics-port N``. prometheus-client (``typedtiger[metrics]``)
and OpenTelemetry (``typedtiger[otel]``) are imported only when asked for."""

from __future__ import annotations

import signal
import threading
from types import FrameType, ModuleType
from typing import Any

import click

from typedtiger.commands._admin_common import ConnectionOptions, Env
from typedtiger.tiger import Tiger
from typedtiger.worker.events import JobListener

__all__ = ["metrics_command", "worker_metrics", "worker_tracing"]


def _prometheus() -> ModuleType:
    try:
        from typedtiger.observability import prometheus
    except ImportError as exc:
        raise click.UsageError(
            f"metrics need prometheus-client: pip install 'typedtiger[metrics]' ({exc})"
        ) from exc
    return prometheus


def worker_metrics(tiger: Tiger, port: int, addr: str, queues: bool) -> JobListener:
    """Serve a worker's metrics on ``addr:port`` (with the queue metrics if ``queues``): the
    listener to give the Worker."""
    prometheus = _prometheus()
    registry = prometheus.CollectorRegistry()
    listener: JobListener = prometheus.WorkerMetrics(registry)
    if queues:
        prometheus.QueueCollector(tiger, registry)
    host, bound = _serve(prometheus, registry, port, addr)
    click.echo(f"Serving metrics on http://{host}:{bound}/metrics", err=True)
    return listener


def worker_tracing(tiger: Tiger) -> JobListener:
    """Trace the worker's executions and its Tiger's enqueues with OpenTelemetry (the global
    tracer provider, which the application's modules set up): the listener to give the Worker."""
    try:
        from typedtiger.observability import otel
    except ImportError as exc:
        raise click.UsageError(
            f"--otel needs OpenTelemetry: pip install 'typedtiger[otel]' ({exc})"
        ) from exc
    return otel.instrument(tiger)


def _serve(prometheus: ModuleType, registry: Any, port: int, addr: str) -> tuple[str, int]:
    try:
        served: tuple[str, int] = prometheus.serve(registry, port, addr)
    except OSError as exc:
        raise click.ClickException(f"cannot serve metrics on {addr}:{port}: {exc}") from exc
    return served


def metrics_command(env: Env, connection: ConnectionOptions) -> click.Command:
    @click.command("metrics", context_settings={"help_option_names": ["--help"]})
    @click.option(
        "--metrics-port",
        "metrics_port",
        type=click.IntRange(0, 65535),
        required=True,
        help="Port to serve /metrics on (0: a free one, printed on stderr). (-p/--port is "
        "Redis's, as in every command.)",
    )
    @click.option(
        "--metrics-addr",
        "metrics_addr",
        default="0.0.0.0",
        show_default=True,
        help="Address to listen on.",
    )
    @connection
    def metrics(metrics_port: int, metrics_addr: str, **options: Any) -> None:
        """Serve queue metrics for Prometheus until SIGTERM/SIGINT: tasks per queue and state,
        and the age of each queue's oldest queued task, read from storage at each scrape.

        Run one exporter (or one worker with --metrics-queues) per storage, not one per
        worker: each scrape reads every queue's sizes.
        """
        tiger = env.tiger(options)
        prometheus = _prometheus()
        registry = prometheus.CollectorRegistry()
        prometheus.QueueCollector(tiger, registry)
        host, bound = _serve(prometheus, registry, metrics_port, metrics_addr)
        click.echo(f"Serving queue metrics on http://{host}:{bound}/metrics", err=True)
        _wait_for_stop()

    return metrics


def _wait_for_stop() -> None:
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        while not stop.wait(1.0):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
