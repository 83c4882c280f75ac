"""Flask integration: ``flask typedtiger worker ...``, running every task inside the app context.

Needs the ``flask`` extra (``pip install 'typedtiger[flask]'``); nothing else in typedtiger
imports Flask. In an application factory::

    from flask import Flask

    from typedtiger import Config, Tiger
    from typedtiger.backends.redis import RedisBackend
    from typedtiger.flask import init_app

    tiger = Tiger()                      # tasks are decorated against it at import time

    def create_app() -> Flask:
        app = Flask(__name__)
        tiger.init(backend=RedisBackend.from_url(app.config["TYPEDTIGER_URL"]), config=Config())
        init_app(app, tiger)             # adds the `flask typedtiger ...` commands
        return app

then ``flask --app myapp typedtiger worker -q email`` or ``flask --app myapp typedtiger queues``.
The commands work on the app's Tiger: its backend and Config, no connection options. Every task
the worker runs (in the forked child, or in-process with ``--executor sync``) runs in a fresh
``app.app_context()``, entered before the Config's own ``child_context_managers``: ``current_app``
and ``g`` work, and ``teardown_appcontext`` handlers (closing a database session, say) run after
each task.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs
import click
from flask import Flask, current_app
from flask.cli import AppGroup

from typedtiger.commands.admin import register_admin_commands
from typedtiger.commands.connection import ConnectionSettings
from typedtiger.config import Config
from typedtiger.exceptions import NotInitialized
from typedtiger.tiger import Tiger

__all__ = [
    "EXTENSION_NAME",
    "CommandRegistrar",
    "app_context_config",
    "get_tiger",
    "init_app",
    "worker_tiger",
]

#: The key of ``app.extensions`` holding the app's Tiger.
EXTENSION_NAME = "typedtiger"

#: What ``init_app`` calls to add commands beyond ``worker`` to the group: it receives the group
#: and a function returning the app's (initialised) Tiger.
CommandRegistrar = Callable[[click.Group, Callable[[], Tiger]], None]


def app_context_config(app: Flask, config: Config) -> Config:
    """``config`` with ``app.app_context`` entered (first) around every task.

    For a Tiger whose every worker — ``typedtiger worker``, ``tiger.run_worker()`` as well as
    ``flask typedtiger worker`` — should run its tasks in ``app``'s context:
    ``tiger.init(backend=..., config=app_context_config(app, Config(...)))``.
    """
    if app.app_context in config.child_context_managers:
        return config
    return attrs.evolve(
        config, child_context_managers=(app.app_context, *config.child_context_managers)
    )


def worker_tiger(app: Flask, tiger: Tiger) -> Tiger:
    """The Tiger a worker of ``app`` runs on: ``tiger``'s backend, clock and registered tasks,
    its Config with ``app.app_context`` entered around every task (``app_context_config``).

    ``tiger`` itself when its Config already does so. NotInitialized if ``tiger`` has no backend.
    """
    config = app_context_config(app, tiger.config)
    if config is tiger.config:
        return tiger
    worker = Tiger(tiger.backend, config, clock=tiger.clock)
    worker.adopt(tiger)
    return worker


def get_tiger(app: Flask | None = None) -> Tiger:
    """The Tiger ``init_app`` registered on ``app`` (by default the current app)."""
    target = app if app is not None else current_app
    try:
        tiger = target.extensions[EXTENSION_NAME]
    except KeyError:
        raise RuntimeError(
            "typedtiger is not set up on this Flask app: call typedtiger.flask.init_app(app, tiger)"
        ) from None
    if not isinstance(tiger, Tiger):
        raise RuntimeError(f"app.extensions[{EXTENSION_NAME!r}] is not a Tiger: {tiger!r}")
    return tiger


def init_app(
    app: Flask,
    tiger: Tiger,
    *,
    name: str = "typedtiger",
    admin: bool = True,
    extra_commands: CommandRegistrar | None = None,
) -> AppGroup:
    """Register ``tiger`` on ``app`` and add the ``flask <name> ...`` command group.

    ``tiger`` may still be uninitialised (``Tiger()``): it must be initialised by the time a
    command runs. The group holds ``worker`` and, with ``admin``, the administration commands of
    ``typedtiger`` (``queues``, ``tasks``, ``show``, ``retry``, ``delete``, ``cancel``,
    ``purge-errors``, ``pause``, ``unpause``), all working on ``tiger``.
    ``extra_commands(group, get_tiger)`` may add more; the group is returned, so commands can
    also be added to it directly.
    """
    app.extensions[EXTENSION_NAME] = tiger

    def initialised_tiger() -> Tiger:
        try:
            _ = tiger.backend  # raises NotInitialized when init() has not been called
        except NotInitialized as exc:
            raise click.ClickException(
                f"{exc}; initialise the Tiger in the application factory before running "
                f"`flask {name} ...`"
            ) from None
        return tiger

    group = AppGroup(
        name, help="typedtiger: the workers and the administration of this app's queues."
    )

    @group.command(
        "worker",
        with_appcontext=False,
        context_settings={"ignore_unknown_options": True, "help_option_names": ["--help"]},
    )
    @click.argument("worker_args", nargs=-1, type=click.UNPROCESSED)
    @click.pass_context
    def worker(ctx: click.Context, worker_args: tuple[str, ...]) -> None:
        """Run a worker on this app's Tiger; each task runs in a fresh app context.

        The options are those of `typedtiger worker` except the connection ones (the app's
        Tiger has its backend and Config):

        \b
          -q, --queues NAMES            queues to serve (comma-separated; with subqueues)
          -e, --exclude-queues NAMES    queues (and subqueues) to skip
          -m, --module NAME             module to import before starting
          -M, --max-workers-per-queue N at most N workers process one queue at once
          --executor [fork|sync]        fork (default): a child process per task
          -c, --concurrency N           run up to N tasks at once
          --exit-after SECONDS|idle     stop after SECONDS, or once nothing is due
          --print-config                print the effective settings and exit
          and a flag per Config setting (`typedtiger worker --help`; flag > environment >
          the app's Config)
        """
        running = worker_tiger(app, initialised_tiger())
        try:
            running.run_worker_with_args(list(worker_args))
        except click.UsageError as exc:
            raise click.UsageError(exc.message, ctx) from None

    if admin:

        def app_tiger(_connection: ConnectionSettings) -> Tiger:
            return initialised_tiger()

        register_admin_commands(group, make_tiger=app_tiger, connection_options=_no_options)
    if extra_commands is not None:
        extra_commands(group, initialised_tiger)
    app.cli.add_command(group)
    return group


def _no_options(command: Callable[..., None]) -> Callable[..., None]:
    """The admin commands' connection options, under Flask: none (the app's Tiger is used)."""
    return command
