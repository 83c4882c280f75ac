"""The ``typedtiger`` program: the click group with ``worker``, ``demo``, ``dashboard`` and the
admin commands.

The composition root of the command line: nothing in the package imports it (the console script
``typedtiger._console`` loads it, and ``python -m typedtiger.cli`` runs it). The commands
themselves live in ``typedtiger.commands``, which the Flask integration registers too.
"""

from __future__ import annotations

import click

from typedtiger.commands.worker import worker

__all__ = ["main"]


class _Main(click.Group):
    """The admin commands are registered on first lookup of a command other than ``worker``."""

    _admin_registered = False

    def _register_admin(self) -> None:
        if not self._admin_registered:
            self._admin_registered = True
            from typedtiger.cli.dashboard import dashboard
            from typedtiger.commands.admin import register_admin_commands

            register_admin_commands(self)
            self.add_command(dashboard)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands:
            self._register_admin()
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._register_admin()
        return super().list_commands(ctx)


@click.group(cls=_Main, context_settings={"help_option_names": ["--help"]})
@click.version_option(package_name="typedtiger", prog_name="typedtiger")
def main() -> None:
    """typedtiger: a typed task queue on Redis."""


main.add_command(worker)


@main.command()
def demo() -> None:
    """Show typedtiger at work on an in-process backend (no Redis needed)."""
    try:
        from typedtiger.cli.demo import run_demo
    except ImportError as exc:  # FakeBackend's extra is missing; its message says which
        raise click.ClickException(str(exc)) from exc

    run_demo(click.echo)
