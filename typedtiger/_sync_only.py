"""Task functions are plain functions: async ones are refused until async tasks are supported.

An ``async def`` function called by a worker returns a coroutine without running its body;
the task would be recorded as done. So coroutine functions are refused where a callable becomes
a task (decoration, ``TaskSpec.of``, ``tiger.delay``...), and an awaitable a task returns
anyway (a payload naming an async function, a plain function returning a coroutine) fails it.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable

__all__ = ["refuse_async", "refuse_awaitable", "sync_only"]

_HINT = "async tasks are not supported yet; write a plain def (it may call asyncio.run)"


def _display(func: object) -> str:
    while isinstance(func, functools.partial):
        func = func.func
    module = getattr(func, "__module__", None)
    qualname = getattr(func, "__qualname__", None)
    if isinstance(module, str) and isinstance(qualname, str):
        return f"{module}:{qualname}"
    return repr(func)


def _is_async(func: object) -> bool:
    if inspect.iscoroutinefunction(func) or inspect.isasyncgenfunction(func):
        return True  # also through functools.partial and bound methods
    if not callable(func) or isinstance(func, type) or inspect.isroutine(func):
        return False
    call = type(func).__call__  # an instance with an async __call__
    return inspect.iscoroutinefunction(call) or inspect.isasyncgenfunction(call)


def refuse_async(func: object) -> None:
    """TypeError if ``func`` is an async function, or wraps one (functools.wraps, partial)."""
    target: object = func
    for _ in range(100):  # a __wrapped__ chain may loop
        if _is_async(target):
            shown, inner = _display(func), _display(target)
            behind = "" if inner == shown else f" (it wraps {inner})"
            raise TypeError(f"{shown} is an async function{behind}: {_HINT}")
        if isinstance(target, functools.partial):
            target = target.func
            continue
        wrapped = getattr(target, "__wrapped__", None)
        if wrapped is None:
            return
        target = wrapped


def refuse_awaitable(result: object, func: str) -> None:
    """TypeError if ``result`` (what the task ``func`` returned) is an awaitable; a coroutine
    is closed first (it never ran, and is not reported as never awaited)."""
    if inspect.isawaitable(result) or inspect.isasyncgen(result):
        if inspect.iscoroutine(result):
            result.close()
        raise TypeError(f"task {func} returned an awaitable ({type(result).__name__}): {_HINT}")


def sync_only(func: Callable[..., object], name: str) -> Callable[..., object]:
    """``func`` (the task ``name``), failing with TypeError when a call returns an awaitable."""

    @functools.wraps(func, updated=())
    def call(*args: object, **kwargs: object) -> object:
        result = func(*args, **kwargs)
        refuse_awaitable(result, name)
        return result

    return call
