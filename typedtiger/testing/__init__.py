"""Helpers for testing code that uses typedtiger, and the pytest plugin (fixtures).

A :class:`TigerHarness` drives a :class:`~typedtiger.Tiger` on a
:class:`~typedtiger.backends.fake.FakeBackend` (in-process, the production Lua scripts on
fakeredis) whose time is a :class:`~typedtiger.clock.ManualClock`::

    with fake_tiger(shop.tasks.tiger) as harness:   # the app's Tiger, bound for the block
        shop.tasks.charge_order.delay("order-1", 1999)
        result = harness.advance(timedelta(hours=1))  # every retry due in the hour, in order
        assert [e.retry_in for e in result.executions] == [60, 120, None]

Tasks go through the same path as in production: arguments are serialized to JSON at enqueue
(a non-JSON argument fails in the test too), workers claim, run and record them with the same
scripts; only the executor is in-process (``SyncExecutor``) and time moves when told to.

The pytest plugin (registered through the ``pytest11`` entry point; without the package
installed, load it with ``-p typedtiger.testing``) offers the fixtures ``typedtiger_harness``,
``typedtiger_app`` and ``typedtiger_config`` and the ini option ``typedtiger_app``. It never
leaves the application's Tiger on its real backend: ``typedtiger_harness`` fails a test when the
application's Tiger is named neither by the ini option nor by an override of ``typedtiger_app``.

This module is imported by every pytest run of an environment where typedtiger is installed: it
has no import side effects, imports fakeredis only when a harness is made, and works without
pytest (the fixtures are then simply not defined).
"""

from __future__ import annotations

from collections.abc import Iterator

from typedtiger._names import import_qualified
from typedtiger.config import Config
from typedtiger.testing.harness import DEFAULT_MAX_TASKS, TigerHarness, fake_tiger
from typedtiger.testing.records import (
    Execution,
    ExecutionStatus,
    RunResult,
    TaskFailed,
    TaskRecord,
)
from typedtiger.tiger import Tiger

__all__ = [
    "DEFAULT_MAX_TASKS",
    "Execution",
    "ExecutionStatus",
    "RunResult",
    "TaskFailed",
    "TaskRecord",
    "TigerHarness",
    "fake_tiger",
]

# --- the pytest plugin ------------------------------------------------------------------------

try:
    import pytest
except ImportError:  # pragma: no cover - the harness works without pytest
    _HAVE_PYTEST = False
else:
    _HAVE_PYTEST = True

_NOT_CONFIGURED = """\
typedtiger_harness does not know your application's Tiger, and will not guess: unbound, the
Tiger would send your tasks' .delay() to its real backend from inside a unit test. Name it in
your pytest configuration (pyproject.toml):

    [tool.pytest.ini_options]
    typedtiger_app = "myapp.tasks:tiger"

or override the typedtiger_app fixture (in a conftest.py) to return it; return None for a
fresh, empty Tiger of the test's own."""

if _HAVE_PYTEST:

    def pytest_addoption(parser: pytest.Parser) -> None:
        parser.addini(
            "typedtiger_app",
            'The application\'s Tiger as "module:attribute" (e.g. "shop.tasks:tiger"): the '
            "typedtiger_harness fixture binds it to a FakeBackend for each test (and fails "
            "tests when neither this nor an override of the typedtiger_app fixture names it).",
            default="",
        )

    @pytest.fixture
    def typedtiger_app(request: pytest.FixtureRequest) -> Tiger | None:
        """The application Tiger ``typedtiger_harness`` binds: the ``typedtiger_app`` ini
        option. Override this fixture to return your Tiger, or None for a fresh Tiger of the
        test's own. Neither configured nor overridden, it fails the test: the harness would
        otherwise leave the application's Tiger on its real backend."""
        name = str(request.config.getini("typedtiger_app") or "")
        if not name:
            pytest.fail(_NOT_CONFIGURED, pytrace=False)
        app = import_qualified(name)
        if not isinstance(app, Tiger):
            raise pytest.UsageError(f"typedtiger_app = {name!r} is a {type(app)!r}, not a Tiger")
        return app

    @pytest.fixture
    def typedtiger_config() -> Config | None:
        """The Config of ``typedtiger_harness`` (None: the app's own, else ``Config()``).
        Override this fixture to test with other settings."""
        return None

    @pytest.fixture
    def typedtiger_harness(
        typedtiger_app: Tiger | None, typedtiger_config: Config | None
    ) -> Iterator[TigerHarness]:
        """A TigerHarness on a fresh FakeBackend and ManualClock, for one test: the
        ``typedtiger_app`` Tiger bound to it (a fresh Tiger if that fixture returns None)."""
        with fake_tiger(typedtiger_app, typedtiger_config) as harness:
            yield harness
