"""Async task functions: what may be one, and running the coroutine a call returns.

An ``async def`` function is a task like a plain one: where the task runs in a thread without an
event loop (the sync, fork and prefork executors, eager mode), the coroutine a call returns is run
to its end with ``asyncio.run``; the asyncio executor awaits it on its loop instead. An async
generator function is refused where a callable becomes a task (it yields, it returns nothing to
run), and retry and schedule functions must be plain (they answer a number or a date in the
worker's loop).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeGuard

__all__ = [
    "is_async",
    "refuse_async",
    "refuse_async_generator",
    "refuse_awaitable",
    "run_to_end",
    "running_to_end",
]


def _display(func: object) -> str:
    while isinstance(func, functools.partial):
        func = func.func
    module = getattr(func, "__module__", None)
    qualname = getattr(func, "__qualname__", None)
    if isinstance(module, str) and isinstance(qualname, str):
        return f"{module}:{qualname}"
    return repr(func)


def _called(func: object) -> object:
    """What calling ``func`` runs: an instance's ``__call__``, else ``func`` itself."""
    if not callable(func) or isinstance(func, type) or inspect.isroutine(func):
        return func
    if isinstance(func, functools.partial):
        return func
    return type(func).__call__


def _find(func: object, test: Callable[[object], bool]) -> object | None:
    """The first of ``func`` and what it wraps (functools.wraps, partial) passing ``test``."""
    target: object = func
    for _ in range(100):  # a __wrapped__ chain may loop
        if test(_called(target)):
            return target
        if isinstance(target, functools.partial):
            target = target.func
            continue
        wrapped = getattr(target, "__wrapped__", None)
        if wrapped is None:
            return None
        target = wrapped
    return None


def is_async(func: object) -> TypeGuard[Callable[..., Awaitable[object]]]:
    """Whether ``func`` is an ``async def`` function (or an async generator function), or
    wraps one (functools.wraps, partial), or is an object whose ``__call__`` is one."""
    return _find(func, _is_async_function) is not None


def _is_async_function(func: object) -> bool:
    return inspect.iscoroutinefunction(func) or inspect.isasyncgenfunction(func)


def _refuse(func: object, test: Callable[[object], bool], why: str) -> None:
    found = _find(func, test)
    if found is not None:
        shown, inner = _display(func), _display(found)
        behind = "" if inner == shown else f" (it wraps {inner})"
        raise TypeError(f"{shown} is an {why}{behind}")


def refuse_async(func: object, role: str) -> None:
    """TypeError if ``func`` (a ``role``: "retry function", "schedule function") is async."""
    _refuse(func, _is_async_function, f"async function: a {role} must be a plain def")


def refuse_async_generator(func: object) -> None:
    """TypeError if ``func`` is an async generator function: not a task (an ``async def`` that
    returns is)."""
    _refuse(
        func,
        inspect.isasyncgenfunction,
        "async generator function: a task is a def or an async def that returns",
    )


def refuse_awaitable(result: object, role: str) -> None:
    """TypeError if ``result`` (what a ``role`` returned) is an awaitable; a coroutine is closed
    first (it never ran, and is not reported as never awaited)."""
    if inspect.isawaitable(result) or inspect.isasyncgen(result):
        if inspect.iscoroutine(result):
            result.close()
        kind = type(result).__name__
        raise TypeError(f"{role} returned an awaitable ({kind}): it must be a plain def")


def run_to_end(result: object, func: str) -> object:
    """``result`` (what the task ``func`` returned), or what it returns if it is a coroutine, run
    to its end on a fresh event loop (in a thread of its own if this one runs a loop already).
    TypeError for another awaitable or an async generator (a coroutine is awaited; nothing else
    is), which is closed if it can be."""
    if inspect.iscoroutine(result):
        return _run(result)
    if inspect.isawaitable(result) or inspect.isasyncgen(result):
        raise TypeError(
            f"task {func} returned an awaitable ({type(result).__name__}) that is not a "
            "coroutine: a task is a def, or an async def whose coroutine is awaited"
        )
    return result


def _run(coroutine: Coroutine[Any, Any, object]) -> object:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    # A loop runs in this thread (eager mode in an async handler): run it beside, in the same
    # context (current_task), and wait; what it raises is raised here.
    context = contextvars.copy_context()
    done: list[object] = []
    failed: list[BaseException] = []

    def beside() -> None:
        try:
            done.append(context.run(asyncio.run, coroutine))
        except BaseException as exc:
            failed.append(exc)

    thread = threading.Thread(target=beside, name="typedtiger-eager-async")
    thread.start()
    thread.join()
    if failed:
        raise failed[0]
    return done[0]


def running_to_end(func: Callable[..., object], name: str) -> Callable[..., object]:
    """``func`` (the task ``name``), a call to it running the coroutine it returns to its end
    (``run_to_end``)."""

    @functools.wraps(func, updated=())
    def call(*args: object, **kwargs: object) -> object:
        return run_to_end(func(*args, **kwargs), name)

    return call
