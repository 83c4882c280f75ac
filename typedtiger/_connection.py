"""The connection options of the ``typedtiger`` commands and the default Tiger factory (kept out
of ``_admin`` so that ``typedtiger worker`` does not build the admin commands)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click
import redis

from typedtiger.backends.redis import RedisBackend
from typedtiger.config import Config
from typedtiger.tiger import Tiger


def _driver_info() -> dict[str, Any]:
    # redis-py >= 7 looks its own version up with importlib.metadata per client (~4 ms).
    info = getattr(redis, "DriverInfo", None)
    return {} if info is None else {"driver_info": info(lib_version=redis.__version__)}


def make_tiger(
    url: str | None,
    host: str,
    port: int,
    password: str | None,
    db: int,
    prefix: str | None,
) -> Tiger:
    """The default factory: a Tiger on the Redis the options name."""
    config = Config() if prefix is None else Config(prefix=prefix)
    if url is not None:
        backend = RedisBackend.from_url(url)
    else:
        client = redis.Redis(
            host=host, port=port, password=password, db=db, decode_responses=True, **_driver_info()
        )
        backend = RedisBackend(client)
    return Tiger(backend, config)


def connection_options(command: Callable[..., None]) -> Callable[..., None]:
    """The connection options every command takes (``typedtiger worker`` too)."""
    options = [
        click.option("--url", envvar="TYPEDTIGER_URL", help="Redis URL (redis://host:port/db)."),
        click.option("-h", "--host", default="localhost", show_default=True, help="Redis host."),
        click.option("-p", "--port", default=6379, show_default=True, help="Redis port."),
        click.option("-a", "--password", default=None, help="Redis password."),
        click.option("-n", "--db", default=0, show_default=True, help="Redis database number."),
        click.option("--prefix", default=None, help="Key prefix (default: Config's, 't')."),
    ]
    for option in reversed(options):
        command = option(command)
    return command
