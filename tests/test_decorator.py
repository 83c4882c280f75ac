"""What ``@tiger.task`` returns still behaves like the function it wraps.

TaskTiger shipped a typed decorator and reverted it because it broke scheduled tasks and
these properties; each one is pinned here.
"""

from __future__ import annotations

import asyncio
import copy
import doctest
import inspect
import pickle
import sys
import typing
from datetime import timedelta
from unittest import mock

import pytest

from typedtiger import Tiger, periodic
from typedtiger._registry import AsyncTaskFunction, TaskFunction
from typedtiger.testing import fake_tiger

tiger = Tiger()
CALLS: list[object] = []


@tiger.task(queue="maths", unique=True)
def add(a: int, b: int = 2, *, scale: float = 1.0) -> float:
    """Add two numbers, then scale.

    >>> add(1, 2)
    3.0
    """
    CALLS.append(("add", a, b))
    return (a + b) * scale


@tiger.task
def bare(text: str) -> str:
    CALLS.append(("bare", text))
    return text.upper()


@tiger.task()
def empty_parentheses() -> None:
    CALLS.append(("empty_parentheses",))


@tiger.task(schedule=periodic(hours=1))
def hourly(dry_run: bool = False) -> str:
    """Runs every hour."""
    CALLS.append(("hourly", dry_run))
    return "ran"


class Shapes:
    @staticmethod
    @tiger.task(queue="shapes")
    def area(width: int, height: int) -> int:
        CALLS.append(("area", width, height))
        return width * height

    @tiger.task(queue="shapes")
    @staticmethod
    def perimeter(width: int, height: int) -> int:
        CALLS.append(("perimeter", width, height))
        return 2 * (width + height)


@tiger.task(result_ttl=60)
async def fetch(url: str, *, retries: int = 0) -> int:
    """Fetch a page; its length."""
    await asyncio.sleep(0)
    CALLS.append(("fetch", url, retries))
    return len(url)


class Pages:
    @staticmethod
    @tiger.task(queue="pages")
    async def title(url: str) -> str:
        await asyncio.sleep(0)
        CALLS.append(("title", url))
        return url.title()


def place(a: int) -> float:
    """Code under test: queues a task through the module attribute, as applications do."""
    add.delay(a, 1)
    return add(a, 1)


@pytest.fixture(autouse=True)
def _reset() -> None:
    CALLS.clear()


def attribute(task: object, name: str) -> typing.Any:
    """``task.<name>``, read untyped: TaskFunction sets ``__wrapped__``, ``__name__`` and
    ``__qualname__`` (functools.update_wrapper) but does not declare them for mypy."""
    return getattr(task, name)


def test_a_direct_call_runs_the_function_here() -> None:
    assert add(1, 2, scale=2) == 6.0
    assert bare("x") == "X"
    assert CALLS == [("add", 1, 2), ("bare", "x")]


def test_metadata_is_the_functions() -> None:
    raw = attribute(add, "__wrapped__")
    assert inspect.isfunction(raw) and raw.__code__.co_name == "add"
    assert attribute(add, "__name__") == "add"
    assert attribute(add, "__qualname__") == "add"
    assert add.__module__ == __name__
    assert add.__doc__ == raw.__doc__ and "Add two numbers" in (add.__doc__ or "")
    assert add.__annotations__ == raw.__annotations__
    assert typing.get_type_hints(add) == {"a": int, "b": int, "scale": float, "return": float}
    assert attribute(Shapes.area, "__qualname__") == "Shapes.area"


def test_inspect_sees_the_function() -> None:
    raw = attribute(add, "__wrapped__")
    assert inspect.signature(add) == inspect.signature(raw)
    assert (
        str(inspect.signature(add))
        == "(a: 'int', b: 'int' = 2, *, scale: 'float' = 1.0) -> 'float'"
    )
    assert inspect.unwrap(add) is raw
    assert inspect.getsource(add).startswith('@tiger.task(queue="maths", unique=True)\ndef add(')
    assert inspect.getdoc(add) == inspect.getdoc(raw)
    assert callable(add)


def test_doctests_of_a_task_are_found_and_pass() -> None:
    tests = {test.name: test for test in doctest.DocTestFinder().find(sys.modules[__name__])}
    found = tests[f"{__name__}.add"]
    assert len(found.examples) == 1
    result = doctest.DocTestRunner(verbose=False).run(found, out=lambda _: None)
    assert result.failed == 0 and result.attempted == 1


def test_hashable_and_compared_by_identity() -> None:
    registry = {add: "add", bare: "bare"}
    assert registry[add] == "add" and len({add, add, bare}) == 2
    assert add == add and add != typing.cast(object, bare)


def test_staticmethod_tasks_work_in_either_order() -> None:
    assert Shapes.area(2, 3) == 6 and Shapes().area(2, 3) == 6
    assert Shapes.perimeter(2, 3) == 10 and Shapes().perimeter(2, 3) == 10
    assert Shapes.area.serialized_func == f"{__name__}:Shapes.area"
    assert str(inspect.signature(Shapes.area)) == "(width: 'int', height: 'int') -> 'int'"
    with fake_tiger(tiger) as harness:
        Shapes.area.delay(4, 5)
        Shapes().area.delay(1, 1)
        result = harness.run_until_idle()
    assert result.succeeded == 2
    assert sorted(CALLS[-2:]) == [("area", 1, 1), ("area", 4, 5)]  # type: ignore[type-var]


def test_an_async_task_is_still_the_coroutine_function() -> None:
    assert isinstance(fetch, AsyncTaskFunction) and isinstance(Pages.title, AsyncTaskFunction)
    coroutine = fetch("abc", retries=1)
    assert inspect.iscoroutine(coroutine)  # a call here gives its coroutine, as the function's
    assert CALLS == []
    assert asyncio.run(coroutine) == 3
    assert asyncio.run(Pages().title("a b")) == "A B"
    assert CALLS == [("fetch", "abc", 1), ("title", "a b")]
    raw = attribute(fetch, "__wrapped__")
    assert inspect.iscoroutinefunction(raw) and inspect.unwrap(fetch) is raw
    assert attribute(fetch, "__name__") == "fetch" and fetch.__doc__ == raw.__doc__
    assert str(inspect.signature(fetch)) == "(url: 'str', *, retries: 'int' = 0) -> 'int'"
    assert pickle.loads(pickle.dumps(fetch)) is fetch
    assert fetch.serialized_func == f"{__name__}:fetch"
    assert Pages.title.registration.defaults.queue == "pages"


def test_an_async_tasks_result_is_what_its_coroutine_returns() -> None:
    with fake_tiger(tiger) as harness:
        task = fetch.delay("four")
        spec_task = tiger.enqueue(fetch.spec("five!"))
        Pages.title.delay("x")
        result = harness.run_until_idle()

        assert result.succeeded == 3
        length: int = task.result(timeout=0)  # a Task[int], for mypy and at run time
        assert length == 4 and spec_task.result(timeout=0) == 5


def test_both_decorator_spellings_register() -> None:
    assert set(tiger.registrations) >= {
        f"{__name__}:add",
        f"{__name__}:bare",
        f"{__name__}:empty_parentheses",
        f"{__name__}:hourly",
        f"{__name__}:Shapes.area",
        f"{__name__}:Shapes.perimeter",
    }
    assert isinstance(bare, TaskFunction) and isinstance(empty_parentheses, TaskFunction)


def test_options_live_in_the_registry_not_on_the_function() -> None:
    registration = tiger.registration(f"{__name__}:add")
    assert registration is add.registration
    assert registration.defaults.queue == "maths" and registration.defaults.unique is True
    for task in (add, bare, hourly, Shapes.area):
        raw = attribute(task, "__wrapped__")
        assert vars(raw) == {}  # nothing set on the function object
        assert not [name for name in dir(raw) if name.startswith("_task")]


def test_mock_patch_of_the_module_attribute_replaces_the_task() -> None:
    with mock.patch(f"{__name__}.add") as patched:
        patched.return_value = 42.0
        assert place(3) == 42.0
    patched.delay.assert_called_once_with(3, 1)
    patched.assert_called_once_with(3, 1)
    assert CALLS == []


def test_mock_patch_object_of_delay() -> None:
    with mock.patch.object(add, "delay") as delay:
        place(3)
    delay.assert_called_once_with(3, 1)
    assert CALLS == [("add", 3, 1)]


def test_mock_patch_with_autospec() -> None:
    with mock.patch(f"{__name__}.add", autospec=True) as patched:
        place(3)
    assert patched.mock_calls == [mock.call.delay(3, 1), mock.call(3, 1)]


def test_a_periodic_task_is_still_the_function() -> None:
    registration = hourly.registration
    assert registration.schedule == periodic(hours=1)
    assert registration.defaults.unique is True
    assert hourly() == "ran" and hourly(dry_run=True) == "ran"
    assert hourly.__doc__ == "Runs every hour."
    assert str(inspect.signature(hourly)) == "(dry_run: 'bool' = False) -> 'str'"
    with fake_tiger(tiger) as harness:
        result = harness.advance(timedelta(hours=3)).of(hourly)
    assert [e.started_at.hour for e in result.executions] == [1, 2, 3]


def test_enqueue_options_are_not_task_arguments() -> None:
    with pytest.raises(TypeError, match="unexpected keyword argument 'queue'"):
        add.spec(1, queue="other")  # type: ignore[call-arg]
    assert add.spec(1).evolve(queue="other").queue == "other"


def test_pickle_and_copy_keep_the_task_like_a_function() -> None:
    assert pickle.loads(pickle.dumps(add)) is add
    assert copy.deepcopy(add) is add


def test_the_package_lists_and_gives_its_lazy_exports() -> None:
    import typedtiger

    assert set(typedtiger.__all__) <= set(dir(typedtiger))
    assert all(getattr(typedtiger, name) is not None for name in typedtiger.__all__)
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        typedtiger.Nope  # type: ignore[attr-defined]  # noqa: B018  (and mypy says so)
