"""The ``worker`` command (registered by the ``typedtiger`` program and the Flask integration)
and ``run_worker_command``, which ``Tiger.run_worker_with_args`` runs. It configures logging
when it runs, never on import."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import attrs
import click

from typedtiger._logging import setup_structlog
from typedtiger.commands.config_options import config_options, pop_config_overrides
from typedtiger.commands.connection import (
    ConnectionSettings,
    connection_options,
    import_module,
    open_tiger,
)
from typedtiger.commands.metrics import worker_metrics, worker_tracing
from typedtiger.config import Config
from typedtiger.exceptions import StorageGaveUp
from typedtiger.executor import (
    AsyncioExecutor,
    Executor,
    ForkExecutor,
    PreforkExecutor,
    SyncExecutor,
)
from typedtiger.tiger import Tiger
from typedtiger.worker import Worker

__all__ = ["MAX_CONCURRENCY", "run_worker_command", "worker"]

#: The largest ``-c``: each slot is a process (fork) or a task in memory (sync), and past a few
#: hundred a worker spends more on its children than on tasks; run more workers instead.
MAX_CONCURRENCY = 256


class _ExitAfter(click.ParamType):  # type: ignore[type-arg]
    name = "SECONDS|idle"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> float | None:
        if value is None or value == "idle":
            return None if value is None else -1.0
        try:
            seconds = float(str(value))
        except ValueError:
            self.fail(f"{value!r} is neither a number of seconds nor 'idle'", param, ctx)
        if not math.isfinite(seconds) or seconds <= 0:
            self.fail(f"{value!r}: must be a finite number of seconds > 0, or 'idle'", param, ctx)
        return seconds


def _worker_options(command: Callable[..., None]) -> Callable[..., None]:
    options = [
        click.option(
            "-m",
            "--module",
            "modules",
            multiple=True,
            envvar="TYPEDTIGER_MODULES",
            help="Module to import before starting (repeatable, comma-separated); its functions "
            "may run as tasks. [env: TYPEDTIGER_MODULES]",
        ),
        click.option(
            "-M",
            "--max-workers-per-queue",
            type=click.IntRange(min=1),
            envvar="TYPEDTIGER_MAX_WORKERS_PER_QUEUE",
            default=None,
            help="At most this many workers process one queue at once. "
            "[env: TYPEDTIGER_MAX_WORKERS_PER_QUEUE]",
        ),
        click.option(
            "--executor",
            "executor_name",
            type=click.Choice(["fork", "prefork", "sync", "asyncio"]),
            envvar="TYPEDTIGER_EXECUTOR",
            default=None,
            help="fork: one child process per task (the default on Redis); prefork: a pool of "
            "-c long-lived child processes, each running tasks one after the other; sync: "
            "in-process (the default on FakeBackend); asyncio: up to -c async def tasks at "
            "once on one event loop in a child process (async tasks only). "
            "[env: TYPEDTIGER_EXECUTOR]",
        ),
        click.option(
            "--max-tasks-per-child",
            type=click.IntRange(min=1),
            envvar="TYPEDTIGER_MAX_TASKS_PER_CHILD",
            default=None,
            help="prefork: replace a child after it ran this many tasks (default: never). "
            "[env: TYPEDTIGER_MAX_TASKS_PER_CHILD]",
        ),
        click.option(
            "--max-memory-per-child",
            type=click.IntRange(min=1),
            envvar="TYPEDTIGER_MAX_MEMORY_PER_CHILD",
            default=None,
            metavar="MB",
            help="prefork: replace a child once its resident memory passes this many MiB after "
            "a task (default: no limit). [env: TYPEDTIGER_MAX_MEMORY_PER_CHILD]",
        ),
        click.option(
            "-c",
            "--concurrency",
            type=click.IntRange(1, MAX_CONCURRENCY),
            envvar="TYPEDTIGER_CONCURRENCY",
            default=1,
            show_default=True,
            help=f"Run up to this many tasks at once (at most {MAX_CONCURRENCY}). "
            "[env: TYPEDTIGER_CONCURRENCY]",
        ),
        click.option(
            "--metrics-port",
            type=click.IntRange(0, 65535),
            envvar="TYPEDTIGER_METRICS_PORT",
            default=None,
            help="Serve Prometheus metrics on this port (/metrics; needs typedtiger[metrics]). "
            "[env: TYPEDTIGER_METRICS_PORT]",
        ),
        click.option(
            "--metrics-addr",
            envvar="TYPEDTIGER_METRICS_ADDR",
            default="0.0.0.0",
            show_default=True,
            help="Address the metrics are served on. [env: TYPEDTIGER_METRICS_ADDR]",
        ),
        click.option(
            "--metrics-queues",
            is_flag=True,
            envvar="TYPEDTIGER_METRICS_QUEUES",
            help="Also serve every queue's sizes and oldest queued age, read at each scrape "
            "(on one worker, or use `typedtiger metrics`). [env: TYPEDTIGER_METRICS_QUEUES]",
        ),
        click.option(
            "--otel",
            is_flag=True,
            envvar="TYPEDTIGER_OTEL",
            help="OpenTelemetry spans around each execution and enqueue, with the tracer "
            "provider the app's modules set up (needs typedtiger[otel]). [env: TYPEDTIGER_OTEL]",
        ),
        click.option(
            "--exit-after",
            type=_ExitAfter(),
            default=None,
            help="Stop after SECONDS, or 'idle' to stop once nothing is due.",
        ),
        click.option(
            "--print-config",
            is_flag=True,
            help="Print the effective settings as JSON (no secrets) and exit.",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return config_options(command)


@click.command(context_settings={"help_option_names": ["--help"]})
@connection_options
@_worker_options
def worker(**options: Any) -> None:
    """Run a worker: claim tasks of the served queues and run them until SIGTERM/SIGINT.

    Give it your application's Tiger with --app (its backend and Config), or name a Redis
    (--url, TYPEDTIGER_URL or REDIS_URL) and the task modules (-m). Every setting can also come
    from the environment; precedence: flag > environment > the app's Config > default.

    The first SIGTERM/SIGINT lets the running task finish and exits 0; a second exits at once
    (the task is requeued when its heartbeat expires).
    """
    setup_structlog()
    connection = ConnectionSettings.pop_from(options)
    tiger, app_module = open_tiger(connection)
    if connection.prefix is not None:
        options["prefix_override"] = connection.prefix
    _run_worker(tiger, app_module, **options)


def _import_modules(names: Sequence[str]) -> list[str]:
    imported = []
    for name in names:
        imported.append(import_module(name, f"-m {name}").__name__)
    return imported


def _adopt_registrations(tiger: Tiger, module_names: Sequence[str]) -> None:
    for name in module_names:
        for value in vars(sys.modules[name]).values():
            if isinstance(value, Tiger) and value is not tiger:
                tiger.adopt(value)


def _effective_config(config: Config, overrides: dict[str, Any], vouched: Sequence[str]) -> Config:
    """The app's Config with the overrides, and the modules the command line named allowed."""
    try:
        config = attrs.evolve(config, **overrides)
        if vouched and not config.allow_any_module:
            allowed = (*(config.allowed_task_modules or ()), *vouched)
            config = attrs.evolve(config, allowed_task_modules=tuple(dict.fromkeys(allowed)))
    except (ValueError, TypeError) as exc:
        raise click.UsageError(str(exc)) from exc
    return config


@contextmanager
def _configured(tiger: Tiger, config: Config) -> Iterator[None]:
    original = tiger.config
    tiger.reconfigure(config)
    try:
        yield
    finally:
        tiger.reconfigure(original)


def _run_worker(
    tiger: Tiger,
    app_module: str | None,
    *,
    modules: Sequence[str],
    max_workers_per_queue: int | None,
    executor_name: str | None,
    max_tasks_per_child: int | None,
    max_memory_per_child: int | None,
    concurrency: int,
    exit_after: float | None,
    print_config: bool,
    metrics_port: int | None,
    metrics_addr: str,
    metrics_queues: bool,
    otel: bool,
    prefix_override: str | None = None,
    **config_options: Any,
) -> None:
    executor = _executor(executor_name, max_tasks_per_child, max_memory_per_child)
    overrides: dict[str, Any] = pop_config_overrides(config_options)
    if prefix_override is not None:
        overrides["prefix"] = prefix_override
    module_names = _import_modules(_split(modules))
    _adopt_registrations(tiger, module_names)
    vouched = [name for name in (app_module, *module_names) if name is not None]
    config = _effective_config(tiger.config, overrides, vouched)
    if print_config:
        click.echo(
            json.dumps(
                {
                    "storage": repr(tiger.backend.with_prefix(config.prefix)),
                    "app": app_module,
                    "modules": module_names,
                    "executor": executor_name or "default",
                    "max_tasks_per_child": max_tasks_per_child,
                    "max_memory_per_child_mib": max_memory_per_child,
                    "concurrency": concurrency,
                    "max_workers_per_queue": max_workers_per_queue,
                    "metrics": None
                    if metrics_port is None
                    else {"port": metrics_port, "addr": metrics_addr, "queues": metrics_queues},
                    "otel": otel,
                    "config": config.settings(),
                },
                indent=2,
            )
        )
        return
    if metrics_port is None and metrics_queues:
        raise click.UsageError("--metrics-queues needs --metrics-port")
    with _configured(tiger, config):
        listeners = []
        if metrics_port is not None:
            listeners.append(worker_metrics(tiger, metrics_port, metrics_addr, metrics_queues))
        if otel:
            listeners.append(worker_tracing(tiger))
        try:
            worker = Worker(
                tiger,
                max_workers_per_queue=max_workers_per_queue,
                executor=executor,
                concurrency=concurrency,
                exit_after=exit_after if exit_after is not None and exit_after > 0 else None,
                listeners=listeners,
            )
        except ValueError as exc:
            raise click.UsageError(str(exc)) from exc
        try:
            worker.run(once=exit_after is not None and exit_after < 0)
        except StorageGaveUp as exc:  # one line and a non-zero status, not a traceback
            raise click.ClickException(str(exc)) from exc


def _executor(
    name: str | None, max_tasks_per_child: int | None, max_memory_per_child: int | None
) -> Executor | None:
    """The executor the options name (None: the Worker picks by backend)."""
    if name != "prefork":
        for option, value in (
            ("--max-tasks-per-child", max_tasks_per_child),
            ("--max-memory-per-child", max_memory_per_child),
        ):
            if value is not None:
                raise click.UsageError(f"{option} needs --executor prefork")
    if name is None:
        return None
    if name == "prefork":
        return PreforkExecutor(
            max_tasks_per_child=max_tasks_per_child,
            max_memory_per_child=None
            if max_memory_per_child is None
            else max_memory_per_child << 20,
        )
    if name == "asyncio":
        return AsyncioExecutor()
    return ForkExecutor() if name == "fork" else SyncExecutor()


def _split(values: Sequence[str]) -> list[str]:
    return [name.strip() for value in values for name in value.split(",") if name.strip()]


def run_worker_command(tiger: Tiger, args: list[str]) -> None:
    """Run ``typedtiger worker``'s options (all but the connection) against ``tiger``."""

    @click.command()
    @_worker_options
    def command(**options: Any) -> None:
        _run_worker(tiger, None, **options)

    command.main(args=args, standalone_mode=False)
