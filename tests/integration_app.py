"""An application laid out the way an app factory lays it out (see tests/test_integrations.py).

At import time it only creates its Tiger and decorates its tasks: the Redis URL and the Config
are known when ``create_app`` runs. Tests reload this module to start from a fresh import.
"""

from __future__ import annotations

import os

import attrs
import structlog

from typedtiger import Config, Tiger
from typedtiger.backends.base import Backend
from typedtiger.backends.redis import RedisBackend

#: (task name, args...) of every call run in this process.
CALLS: list[tuple[object, ...]] = []

#: Created before anything about storage is known; ``create_app`` initialises it.
tiger = Tiger()

_log = structlog.get_logger("tests.integration_app")


@tiger.task(queue="app")
def greet(name: str) -> str:
    CALLS.append(("greet", name))
    return f"hello {name}"


@tiger.task(queue="app.logging")
def log_inside(marker: str) -> None:
    """Emit one structlog event from inside the task (in whichever process runs it)."""
    _log.info("inside task", marker=marker, pid=os.getpid())


@attrs.frozen(kw_only=True)
class Settings:
    """What the application learns at start-up (from its environment, in real life)."""

    redis_url: str | None = None
    #: A ready backend instead of a URL (tests pass a FakeBackend).
    backend: Backend | None = None
    queue_config: Config = attrs.field(factory=Config)


@attrs.frozen
class App:
    """The application object the factory returns."""

    settings: Settings
    tiger: Tiger


def create_app(settings: Settings) -> App:
    """Build the application: this is where the Tiger gets its backend and Config."""
    if settings.backend is not None:
        backend = settings.backend
    elif settings.redis_url is not None:
        backend = RedisBackend.from_url(settings.redis_url)
    else:
        raise ValueError("Settings need a redis_url or a backend")
    tiger.init(backend=backend, config=settings.queue_config)
    return App(settings, tiger)
