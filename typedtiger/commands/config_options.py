"""The ``typedtiger worker`` options that set a Config field, each also read from a
``TYPEDTIGER_*`` environment variable. Precedence: flag > environment > the application's
Config > Config's default."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, Final, Literal

import attrs
import click

__all__ = ["SETTINGS", "Setting", "config_options", "pop_config_overrides"]

Kind = Literal["seconds", "count", "switch", "names", "sizes", "text"]


@attrs.frozen
class Setting:
    """One Config field as a command-line option."""

    field: str
    kind: Kind
    help: str
    flags: tuple[str, ...] = ()
    env: str = ""

    @property
    def option_flags(self) -> tuple[str, ...]:
        return self.flags or ("--" + self.field.replace("_", "-"),)

    @property
    def envvar(self) -> str:
        return self.env or "TYPEDTIGER_" + self.field.upper()


SETTINGS: Final = (
    Setting("only_queues", "names", "Queues to serve (and their subqueues).", ("-q", "--queues")),
    Setting(
        "exclude_queues", "names", "Queues (and subqueues) to skip.", ("-e", "--exclude-queues")
    ),
    Setting(
        "allowed_task_modules",
        "names",
        "Also run functions of these modules (and submodules); --app's and -m's modules and "
        "registered tasks always run.",
        ("--allow-module",),
    ),
    Setting(
        "allow_any_module",
        "switch",
        "Run any importable function a task names (TaskTiger's behaviour; logged as a warning).",
    ),
    Setting("batch_queues", "sizes", "Batch size of a queue, as QUEUE=SIZE.", ("--batch-queue",)),
    Setting("single_worker_queues", "names", "Queues that at most one worker processes at once."),
    Setting("default_queue", "text", "Queue of tasks enqueued without one."),
    Setting("default_hard_timeout", "seconds", "Hard timeout of tasks that set none."),
    Setting("hard_timeout_kill_grace", "seconds", "After a hard timeout, seconds until SIGKILL."),
    Setting("lock_retry", "seconds", "A task that cannot take its lock runs this much later."),
    Setting("active_task_update_timer", "seconds", "Heartbeat interval of running tasks."),
    Setting(
        "active_task_update_timeout",
        "seconds",
        "A task whose heartbeat is older is requeued as lost.",
    ),
    Setting("requeue_expired_tasks_interval", "seconds", "How often to look for lost tasks."),
    Setting("requeue_expired_tasks_batch_size", "count", "Lost tasks requeued per pass."),
    Setting("scheduled_task_batch_size", "count", "Due scheduled tasks queued per pass and queue."),
    Setting("select_timeout", "seconds", "How long an idle worker waits for activity."),
    Setting("poll_task_queues_interval", "seconds", "How often an idle worker re-reads queues."),
    Setting("stats_interval", "seconds", "How often the worker logs a stats line."),
    Setting(
        "storage_retry_deadline",
        "seconds",
        "How long to retry an unreachable storage before exiting non-zero.",
    ),
    Setting(
        "max_worker_loss_retries", "count", "Runs of a task lost with its worker before it fails."
    ),
    Setting("max_payload_bytes", "count", "Largest accepted task payload in bytes (0: no limit)."),
    Setting("log_args_max_chars", "count", "Longest rendering of task arguments in a log line."),
    Setting("store_tracebacks", "switch", "Store tracebacks in execution records."),
    Setting("publish_queued_tasks", "switch", "Publish queued tasks on the activity channel."),
)


class _Seconds(click.ParamType):  # type: ignore[type-arg]
    name = "SECONDS"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, float):
            return value
        try:
            seconds = float(str(value))
        except ValueError:
            self.fail(f"{value!r} is not a number of seconds", param, ctx)
        if not math.isfinite(seconds):
            self.fail(f"{value!r} is not a finite number of seconds", param, ctx)
        return seconds


class _QueueSize(click.ParamType):  # type: ignore[type-arg]
    name = "QUEUE=SIZE"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> tuple[str, int]:
        if isinstance(value, tuple):
            return value
        queue, sep, size = str(value).partition("=")
        if not sep or not queue.strip() or not size.strip().isdigit():
            self.fail(f"{value!r} is not QUEUE=SIZE (e.g. bulk=50)", param, ctx)
        return queue.strip(), int(size)


def _option(setting: Setting) -> Callable[[Callable[..., None]], Callable[..., None]]:
    help_text = f"{setting.help} [env: {setting.envvar}]"
    common: dict[str, Any] = {"envvar": setting.envvar, "default": None, "help": help_text}
    flags = setting.option_flags
    if setting.kind == "switch":
        long = flags[0]
        return click.option(f"{long}/--no-{long[2:]}", setting.field, **common)
    kinds: Mapping[Kind, dict[str, Any]] = {
        "seconds": {"type": _Seconds()},
        "count": {"type": click.IntRange(min=0)},
        "text": {"type": str},
        "names": {"multiple": True, "metavar": "NAMES"},
        "sizes": {"multiple": True, "type": _QueueSize()},
    }
    return click.option(*flags, setting.field, **common, **kinds[setting.kind])


def config_options(command: Callable[..., None]) -> Callable[..., None]:
    """Add an option per entry of ``SETTINGS`` to ``command``."""
    for setting in reversed(SETTINGS):
        command = _option(setting)(command)
    return command


def _names(values: tuple[str, ...]) -> tuple[str, ...]:
    # Repeatable, comma-separated; the environment's value is split on white space too.
    return tuple(
        name.strip()
        for value in values
        for part in value.split()
        for name in part.split(",")
        if name.strip()
    )


def pop_config_overrides(options: dict[str, Any]) -> dict[str, object]:
    """The Config fields that options or environment set (removed from ``options``)."""
    overrides: dict[str, object] = {}
    for setting in SETTINGS:
        value = options.pop(setting.field)
        if value is None or value == ():
            continue
        if setting.kind == "names":
            names = _names(value)
            if not names:
                raise click.BadParameter("names nothing", param_hint=setting.option_flags[-1])
            overrides[setting.field] = names
        elif setting.kind == "sizes":
            overrides[setting.field] = dict(value)
        else:
            overrides[setting.field] = value
    return overrides
