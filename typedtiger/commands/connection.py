"""Where the ``typedtiger`` commands get their Tiger: the application's own (``--app``), or one
on the Redis the connection options name. Kept out of ``_admin`` so that ``typedtiger worker``
does not build the admin commands."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

import attrs
import click

from typedtiger.backends.redis import RedisBackend
from typedtiger.config import Config
from typedtiger.tiger import Tiger

__all__ = [
    "CONNECTION_NAMES",
    "ConnectionSettings",
    "connection_options",
    "load_app",
    "make_tiger",
    "open_tiger",
    "put_cwd_on_path",
    "redacted_url",
    "url_connection_options",
]

#: The parameters ``connection_options`` adds to a command.
CONNECTION_NAMES: Final = ("app", "url", "host", "port", "password", "db", "prefix")
#: The largest Redis database number accepted (Redis's default ``databases`` is 16; some
#: deployments raise it, so only the protocol's own bound is enforced).
_MAX_DB: Final = 2**31 - 1


@attrs.frozen
class ConnectionSettings:
    """What a command was told about where its tasks live."""

    app: str | None = None
    url: str | None = None
    host: str = "localhost"
    port: int = 6379
    password: str | None = attrs.field(default=None, repr=False)
    db: int = 0
    prefix: str | None = None
    #: Which of the options above were given (on the command line or in the environment).
    given: frozenset[str] = frozenset()

    @classmethod
    def pop_from(cls, options: dict[str, Any]) -> ConnectionSettings:
        """The connection options of a command's parameters (removed from ``options``)."""
        values = {name: options.pop(name) for name in CONNECTION_NAMES if name in options}
        context = click.get_current_context(silent=True)
        given = frozenset(
            name
            for name in values
            if context is not None
            and context.get_parameter_source(name)
            in (click.core.ParameterSource.COMMANDLINE, click.core.ParameterSource.ENVIRONMENT)
        )
        present = {name: value for name, value in values.items() if value is not None}
        return cls(**present, given=given)


def redacted_url(url: str) -> str:
    """``url`` without its password (for logs and ``--print-config``)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port is not None else ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}{port}"))


def put_cwd_on_path() -> None:
    """Put the current directory on ``sys.path``, as ``python -m`` does (and RQ, Celery,
    Dramatiq and arq do for their workers), so ``-m``/``--app`` find the application."""
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())


def import_module(name: str, what: str) -> Any:
    """Import ``name`` for ``what`` (an option), as a usage error if it cannot be imported."""
    put_cwd_on_path()
    try:
        return importlib.import_module(name)
    except Exception as exc:
        raise click.UsageError(f"{what}: cannot import module {name!r}: {exc!r}") from exc
    except SystemExit as exc:  # a module may call sys.exit() on import
        raise click.UsageError(f"{what}: module {name!r} exited on import ({exc})") from exc


def load_app(reference: str) -> tuple[Tiger, str]:
    """The Tiger ``--app`` names (``module:attribute``, or ``module`` holding ``tiger``) and its
    module. The attribute is a Tiger or a function without arguments returning one."""
    module_name, _, attribute = reference.partition(":")
    if not module_name or (":" in reference and not attribute):
        raise click.UsageError(f"--app {reference!r}: expected 'module:attribute' or 'module'")
    module = import_module(module_name, f"--app {reference!r}")
    name = attribute or "tiger"
    target: object = module
    for part in name.split("."):
        if not hasattr(target, part):
            raise click.UsageError(f"--app {reference!r}: module {module_name!r} has no {name!r}")
        target = getattr(target, part)
    if not isinstance(target, Tiger) and callable(target):
        try:
            target = target()
        except Exception as exc:
            raise click.UsageError(
                f"--app {reference!r}: calling {name}() failed: {exc!r}"
            ) from exc
    if not isinstance(target, Tiger):
        raise click.UsageError(
            f"--app {reference!r}: {name!r} is a {type(target).__name__}, not a Tiger "
            "(or a function without arguments returning one)"
        )
    if not target.initialised:
        raise click.UsageError(
            f"--app {reference!r}: this Tiger has no backend yet (tiger.init() was not called "
            "on import); point --app at a function that builds and returns the initialised Tiger"
        )
    return target, module.__name__


def _url_tiger(settings: ConnectionSettings) -> Tiger:
    config = Config() if settings.prefix is None else Config(prefix=settings.prefix)
    if settings.url is not None:
        try:
            backend = RedisBackend.from_url(settings.url, check=True)
        except ValueError as exc:
            raise click.UsageError(f"--url {redacted_url(settings.url)!r}: {exc}") from exc
    else:
        backend = RedisBackend.connect(
            host=settings.host, port=settings.port, password=settings.password, db=settings.db
        )
    return Tiger(backend, config)


def open_tiger(settings: ConnectionSettings) -> tuple[Tiger, str | None]:
    """The Tiger a command works on, as the application built it (``--app``), else one on the
    named Redis; and the application's module (None without ``--app``). ``--prefix`` is left
    to the caller."""
    if settings.app is None:
        return _url_tiger(settings), None
    clashing = sorted(settings.given & {"url", "host", "port", "password", "db"})
    if clashing:
        raise click.UsageError(
            "--app brings the application's own Redis connection; drop "
            + ", ".join(f"--{name}" for name in clashing)
            + " (or drop --app and name the Redis)"
        )
    return load_app(settings.app)


def make_tiger(settings: ConnectionSettings) -> Tiger:
    """``open_tiger``'s Tiger, with ``--prefix`` applied."""
    tiger, _ = open_tiger(settings)
    if settings.prefix is not None and settings.prefix != tiger.config.prefix:
        try:
            config = attrs.evolve(tiger.config, prefix=settings.prefix)
        except ValueError as exc:
            raise click.UsageError(str(exc)) from exc
        tiger.reconfigure(config)
    return tiger


def _options() -> dict[str, Callable[[Callable[..., None]], Callable[..., None]]]:
    return {
        "app": click.option(
            "-A",
            "--app",
            envvar="TYPEDTIGER_APP",
            metavar="MODULE[:ATTRIBUTE]",
            help="The application's Tiger (default attribute: tiger), used with its own "
            "backend and Config. [env: TYPEDTIGER_APP]",
        ),
        "url": click.option(
            "--url",
            envvar=["TYPEDTIGER_URL", "REDIS_URL"],
            help="Redis URL (redis://[:password@]host:port/db). Prefer the environment, where "
            "`ps` does not show the password. [env: TYPEDTIGER_URL, REDIS_URL]",
        ),
        "host": click.option(
            "-h",
            "--host",
            envvar="TYPEDTIGER_REDIS_HOST",
            default="localhost",
            show_default=True,
            help="Redis host. [env: TYPEDTIGER_REDIS_HOST]",
        ),
        "port": click.option(
            "-p",
            "--port",
            envvar="TYPEDTIGER_REDIS_PORT",
            type=click.IntRange(1, 65535),
            default=6379,
            show_default=True,
            help="Redis port. [env: TYPEDTIGER_REDIS_PORT]",
        ),
        "password": click.option(
            "-a",
            "--password",
            envvar="TYPEDTIGER_REDIS_PASSWORD",
            default=None,
            help="Redis password (visible to `ps`: prefer the environment). "
            "[env: TYPEDTIGER_REDIS_PASSWORD]",
        ),
        "db": click.option(
            "-n",
            "--db",
            envvar="TYPEDTIGER_REDIS_DB",
            type=click.IntRange(0, _MAX_DB),
            default=0,
            show_default=True,
            help="Redis database number. [env: TYPEDTIGER_REDIS_DB]",
        ),
        "prefix": click.option(
            "--prefix",
            envvar="TYPEDTIGER_PREFIX",
            default=None,
            help="Key prefix (default: Config's, 't'). [env: TYPEDTIGER_PREFIX]",
        ),
    }


def connection_options(command: Callable[..., None]) -> Callable[..., None]:
    """The connection options every command takes (``typedtiger worker`` too)."""
    for option in reversed(_options().values()):
        command = option(command)
    return command


def url_connection_options(command: Callable[..., None]) -> Callable[..., None]:
    """``--app``, ``--url`` and ``--prefix`` only: for a command whose ``-h``/``-p``/``--port``
    mean something else (a server's address); Redis is named by its URL."""
    options = _options()
    for name in ("prefix", "url", "app"):
        command = options[name](command)
    return command
