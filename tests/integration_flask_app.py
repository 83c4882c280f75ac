"""A Flask application factory using typedtiger.flask (see tests/test_integrations.py).

Tasks read the application's config through ``flask.current_app``: they only work when the
worker runs them inside the app context. Tests reload this module to start from a fresh import.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from flask import Flask, current_app, g

from typedtiger import Config, Tiger
from typedtiger.backends.base import Backend
from typedtiger.backends.redis import RedisBackend
from typedtiger.flask import init_app

#: What the tasks and the app-context teardown saw, in this process.
SEEN: list[tuple[str, object]] = []

tiger = Tiger()


@tiger.task(queue="flask")
def record_config(key: str) -> None:
    """Record ``current_app.config[key]``, and whether ``g`` came fresh (one context per task)."""
    SEEN.append(("config", current_app.config[key]))
    SEEN.append(("fresh g", "touched" not in g))
    g.touched = True


@tiger.task(queue="flask")
def write_config(key: str, path: str) -> None:
    """Append ``current_app.config[key]`` to the file at ``path`` (visible across a fork)."""
    with Path(path).open("a", encoding="utf-8") as file:
        file.write(json.dumps({"value": current_app.config[key]}) + "\n")


def create_app(
    test_config: Mapping[str, object] | None = None, *, backend: Backend | None = None
) -> Flask:
    """The factory: the Tiger gets its backend (from TYPEDTIGER_URL unless given) and Config."""
    app = Flask(__name__)
    app.config.from_mapping(GREETING="hello from the app", TYPEDTIGER_URL=None)
    if test_config is not None:
        app.config.from_mapping(test_config)
    if backend is None:
        backend = RedisBackend.from_url(str(app.config["TYPEDTIGER_URL"]))
    tiger.init(backend=backend, config=Config(default_queue="flask"))
    init_app(app, tiger)

    @app.teardown_appcontext
    def record_teardown(_exc: BaseException | None) -> None:
        SEEN.append(("teardown", None))

    return app
