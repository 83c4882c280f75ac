"""``typedtiger dashboard``: serve the web dashboard (the ``typedtiger[dashboard]`` extra)."""

from __future__ import annotations

import contextlib
import ipaddress
from typing import Any

import click

from typedtiger.commands.connection import (
    ConnectionSettings,
    import_module,
    make_tiger,
    url_connection_options,
)

__all__ = ["dashboard"]


@click.command(context_settings={"help_option_names": ["--help"]})
@url_connection_options
@click.option(
    "--bind",
    default="127.0.0.1",
    show_default=True,
    envvar="TYPEDTIGER_DASHBOARD_BIND",
    help="The address to listen on. Anyone who reaches it may act on tasks unless --auth or "
    "--read-only says otherwise. [env: TYPEDTIGER_DASHBOARD_BIND]",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8787,
    show_default=True,
    envvar="TYPEDTIGER_DASHBOARD_PORT",
    help="The port to listen on. [env: TYPEDTIGER_DASHBOARD_PORT]",
)
@click.option("--read-only", is_flag=True, help="Show everything, change nothing.")
@click.option(
    "--auth",
    "auth_hook",
    metavar="MODULE:FUNCTION",
    default=None,
    help="A function taking a typedtiger.dashboard.DashboardRequest and returning whether to "
    "serve it (403 otherwise). Default: everyone who reaches --bind.",
)
def dashboard(bind: str, port: int, read_only: bool, auth_hook: str | None, **options: Any) -> None:
    """Serve the web dashboard: queues, tasks and their failures, periodic tasks, locks; retry,
    delete, cancel, purge, pause (each confirmed). Name Redis with --url (or --app)."""
    try:
        from typedtiger.dashboard import Dashboard, allow_all
        from typedtiger.dashboard.server import dashboard_server
    except ImportError as exc:
        raise click.ClickException(
            f"the dashboard needs the typedtiger[dashboard] extra ({exc})"
        ) from exc
    tiger = make_tiger(ConnectionSettings.pop_from(options))
    auth = allow_all if auth_hook is None else _load_hook(auth_hook)
    app = Dashboard(tiger, auth=auth, read_only=read_only)
    try:
        server = dashboard_server(app, bind, port)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {bind}:{port}: {exc}") from exc
    shown = f"[{bind}]" if ":" in bind else bind
    click.echo(f"typedtiger dashboard on http://{shown}:{server.server_port}/ ({tiger.backend!r})")
    if auth_hook is None and not read_only and not _loopback(bind):
        click.echo(
            f"Warning: anyone who can reach {bind} may retry, delete and cancel tasks; "
            "use --auth, --read-only or a proxy that authenticates.",
            err=True,
        )
    with server, contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


def _load_hook(reference: str) -> Any:
    module_name, _, name = reference.partition(":")
    if not module_name or not name:
        raise click.UsageError(f"--auth {reference!r}: expected 'module:function'")
    hook = getattr(import_module(module_name, f"--auth {reference!r}"), name, None)
    if not callable(hook):
        raise click.UsageError(f"--auth {reference!r}: no function {name!r} there")
    return hook


def _loopback(bind: str) -> bool:
    if bind == "localhost":
        return True
    try:
        return ipaddress.ip_address(bind).is_loopback
    except ValueError:
        return False
