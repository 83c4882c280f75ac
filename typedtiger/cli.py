"""The ``typedtiger`` command: ``worker`` (and ``demo``). The composition root: it may configure
logging; nothing imports it but the console script and ``Tiger.run_worker_with_args``."""

from __future__ import annotations

import gc

# Load everything with the cyclic GC paused, then freeze what was loaded (moved to the permanent
# generation: never scanned again). Measured on a worker start: the ~90 collections that loading
# triggers cost ~10 ms, and the collections of interpreter finalization over the same ~40k objects
# ~30 ms, and both free next to nothing. (Forked children inherit the frozen heap.)
_gc_was_enabled = gc.isenabled()
gc.disable()
try:
    import importlib
    import sys
    from collections.abc import Callable, Sequence
    from types import ModuleType
    from typing import Any

    import attrs
    import click

    from typedtiger._connection import connection_options, make_tiger
    from typedtiger.executor import Executor, ForkExecutor, SyncExecutor
    from typedtiger.logging import setup_structlog
    from typedtiger.tiger import Tiger
    from typedtiger.worker import Worker
finally:
    gc.freeze()
    if _gc_was_enabled:
        gc.enable()

__all__ = ["main", "run_worker_command"]


def _split(values: Sequence[str]) -> list[str]:
    return [name.strip() for value in values for name in value.split(",") if name.strip()]


def _import_modules(names: Sequence[str]) -> list[ModuleType]:
    modules = []
    for name in names:
        try:
            modules.append(importlib.import_module(name))
        except Exception as exc:
            raise click.ClickException(f"cannot import module {name!r}: {exc!r}") from exc
    return modules


def _adopt_registrations(tiger: Tiger, modules: Sequence[ModuleType]) -> None:
    for module in modules:
        for value in vars(module).values():
            if isinstance(value, Tiger) and value is not tiger:
                tiger.adopt(value)


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
        if seconds <= 0:
            self.fail("must be > 0 seconds", param, ctx)
        return seconds


class _Main(click.Group):
    """The admin commands are registered on first lookup of a command other than ``worker``."""

    _admin_registered = False

    def _register_admin(self) -> None:
        if not self._admin_registered:
            self._admin_registered = True
            from typedtiger._admin import register_admin_commands

            register_admin_commands(self)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands:
            self._register_admin()
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._register_admin()
        return super().list_commands(ctx)


@click.group(cls=_Main, context_settings={"help_option_names": ["--help"]})
def main() -> None:
    """typedtiger: a typed task queue on Redis."""


@main.command()
def demo() -> None:
    """Show typedtiger at work on an in-process backend (no Redis needed)."""
    from typedtiger._demo import run_demo

    run_demo(click.echo)


def _worker_options(command: Callable[..., None]) -> Callable[..., None]:
    options = [
        click.option(
            "-q",
            "--queues",
            multiple=True,
            help="Queues to serve (comma-separated; with subqueues).",
        ),
        click.option(
            "-e", "--exclude-queues", multiple=True, help="Queues (and subqueues) to skip."
        ),
        click.option(
            "-m", "--module", "modules", multiple=True, help="Module to import before starting."
        ),
        click.option(
            "-M",
            "--max-workers-per-queue",
            type=click.IntRange(min=1),
            default=None,
            help="At most this many workers process one queue at once.",
        ),
        click.option(
            "--store-tracebacks/--no-store-tracebacks",
            default=None,
            help="Store tracebacks in execution records (default: Config's, on).",
        ),
        click.option(
            "--executor",
            "executor_name",
            type=click.Choice(["fork", "sync"]),
            default=None,
            help="fork: one child process per task (the default on Redis); sync: in-process "
            "(the default on FakeBackend).",
        ),
        click.option(
            "-c",
            "--concurrency",
            type=click.IntRange(min=1),
            default=1,
            show_default=True,
            help="Run up to this many tasks at once, each in its own child (fork executor).",
        ),
        click.option(
            "--exit-after",
            type=_ExitAfter(),
            default=None,
            help="Stop after SECONDS, or 'idle' to stop once nothing is due.",
        ),
        click.option(
            "--allow-module",
            "allowed_modules",
            multiple=True,
            help="Only import task functions, runner, retry and exception classes from these "
            "modules (and their submodules) or registered tasks; repeatable, comma-separated.",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@main.command(context_settings={"help_option_names": ["--help"]})
@connection_options
@_worker_options
def worker(
    url: str | None,
    host: str,
    port: int,
    password: str | None,
    db: int,
    prefix: str | None,
    **options: Any,
) -> None:
    """Run a worker: claim tasks of the served queues and run them until SIGTERM/SIGINT.

    The first SIGTERM/SIGINT lets the running task finish and exits 0; a second exits at once
    (the task is requeued when its heartbeat expires).
    """
    setup_structlog()
    _run_worker(make_tiger(url, host, port, password, db, prefix), **options)


def _run_worker(
    tiger: Tiger,
    *,
    queues: Sequence[str],
    exclude_queues: Sequence[str],
    modules: Sequence[str],
    max_workers_per_queue: int | None,
    store_tracebacks: bool | None,
    executor_name: str | None,
    concurrency: int,
    exit_after: float | None,
    allowed_modules: Sequence[str],
) -> None:
    allowed = _split(allowed_modules)
    if allowed:
        restricted = Tiger(
            tiger.backend,
            attrs.evolve(tiger.config, allowed_task_modules=allowed),
            clock=tiger.clock,
        )
        restricted.adopt(tiger)
        tiger = restricted
    _adopt_registrations(tiger, _import_modules(modules))
    executor: Executor | None = None  # None: the Worker picks by backend
    if executor_name is not None:
        executor = ForkExecutor() if executor_name == "fork" else SyncExecutor()
    try:
        worker = Worker(
            tiger,
            queues=_split(queues) or None,
            exclude_queues=_split(exclude_queues) or None,
            max_workers_per_queue=max_workers_per_queue,
            executor=executor,
            concurrency=concurrency,
            store_tracebacks=store_tracebacks,
            exit_after=exit_after if exit_after is not None and exit_after > 0 else None,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    worker.run(once=exit_after is not None and exit_after < 0)


def run_worker_command(tiger: Tiger, args: list[str]) -> None:
    """Run ``typedtiger worker``'s options (all but the connection) against ``tiger``."""

    @click.command()
    @_worker_options
    def command(**options: Any) -> None:
        _run_worker(tiger, **options)

    command.main(args=args, standalone_mode=False)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
