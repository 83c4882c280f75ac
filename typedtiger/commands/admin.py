"""The admin commands of the ``typedtiger`` CLI: inspect queues, tasks and workers, retry, delete
or cancel tasks, purge errored tasks, pause queues.

The ``typedtiger`` program (``typedtiger.cli``) and the Flask integration register them on
their group with ``register_admin_commands``, which receives the Tiger factory and the connection
options. A Tiger put in the click context object (``CliRunner().invoke(main, args, obj=tiger)``)
is used instead of connecting, which is how the tests run the commands on a FakeBackend. The
commands that read are in ``_admin_inspect`` (``workers`` in ``_admin_workers``), those that
change tasks in ``_admin_actions``;
``pause``/``unpause`` are here.

Output is for humans by default; ``--json`` prints one JSON document on stdout for scripts.
Errors are ``click.ClickException`` (exit status 1, "Error: ..." on stderr).
"""

from __future__ import annotations

from typing import Any

import click

from typedtiger.commands._admin_actions import (
    cancel_command,
    delete_command,
    purge_command,
    retry_command,
)
from typedtiger.commands._admin_common import (
    ConnectionOptions,
    Duration,
    Env,
    TigerFactory,
    clear_errors,
    echo_json,
    format_seconds,
    human_time,
    iso,
    json_option,
    parse_duration,
    queue_names,
)
from typedtiger.commands._admin_inspect import queues_command, show_command, tasks_command
from typedtiger.commands._admin_workers import workers_command
from typedtiger.commands.connection import connection_options, make_tiger
from typedtiger.commands.metrics import metrics_command

__all__ = [
    "ConnectionOptions",
    "Duration",
    "TigerFactory",
    "connection_options",
    "make_tiger",
    "parse_duration",
    "register_admin_commands",
]


def register_admin_commands(
    group: click.Group,
    make_tiger: TigerFactory = make_tiger,
    connection_options: ConnectionOptions = connection_options,
) -> None:
    """Add ``queues``, ``tasks``, ``show``, ``retry``, ``delete``, ``cancel``, ``purge-errors``,
    ``pause``, ``unpause``, ``workers`` and ``metrics`` (the Prometheus exporter) to ``group``.

    ``make_tiger`` builds the Tiger from the connection options that ``connection_options``
    adds (the defaults are the ones ``typedtiger worker`` uses too).
    """
    env = Env(make_tiger)
    for build in (
        queues_command,
        tasks_command,
        show_command,
        retry_command,
        delete_command,
        cancel_command,
        purge_command,
        _pause_command,
        _unpause_command,
        workers_command,
        metrics_command,
    ):
        group.add_command(build(env, connection_options))


# --- pause / unpause -----------------------------------------------------------------------


def _pause_command(env: Env, connection: ConnectionOptions) -> click.Command:
    @click.command("pause", context_settings={"help_option_names": ["--help"]})
    @click.argument("queue")
    @click.option(
        "--for",
        "duration",
        type=Duration(positive=True),
        required=True,
        help="How long (60s, 15m, 2h, ...).",
    )
    @connection
    @json_option
    def pause(queue: str, duration: float, as_json: bool, **options: Any) -> None:
        """Pause QUEUE: no worker claims its tasks until the time is up (`unpause` ends it).

        This sets the queue's system lock; it applies to QUEUE itself, not to its subqueues.
        """
        queue_names([queue])
        tiger = env.tiger(options)
        with clear_errors():
            tiger.set_queue_system_lock(queue, duration)
            until = tiger.get_queue_system_lock(queue)
        if as_json:
            echo_json({"queue": queue, "paused_until": iso(until)})
            return
        click.echo(
            f"Queue {queue!r} is paused until {human_time(until)} (for {format_seconds(duration)})."
        )

    return pause


def _unpause_command(env: Env, connection: ConnectionOptions) -> click.Command:
    @click.command("unpause", context_settings={"help_option_names": ["--help"]})
    @click.argument("queue")
    @connection
    @json_option
    def unpause(queue: str, as_json: bool, **options: Any) -> None:
        """End the pause of QUEUE now."""
        queue_names([queue])
        tiger = env.tiger(options)
        with clear_errors():
            was_paused = tiger.get_queue_system_lock(queue) is not None
            if was_paused:
                # A lock that ended at the epoch: expired for every clock.
                tiger.clear_queue_system_lock(queue)
        if as_json:
            echo_json({"queue": queue, "was_paused": was_paused})
            return
        click.echo(
            f"Queue {queue!r} " + ("is no longer paused." if was_paused else "was not paused.")
        )

    return unpause
