"""Functions for tests/test_async.py: async ones a worker may still be asked to run (a payload
naming one by string), and plain ones that return awaitables."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine

from typedtiger import Tiger
from typedtiger.runner import BatchCall

#: What the async bodies did when a worker was asked to run them: they never run, so it stays
#: empty.
CALLS: list[str] = []
#: What ``runs_coroutine`` computed.
RESULTS: list[int] = []

tiger = Tiger()


async def fetch(url: str) -> str:
    CALLS.append(f"fetch {url}")
    return url


async def stream() -> AsyncIterator[int]:
    CALLS.append("stream")
    yield 1


@tiger.task
def returns_coroutine(url: str) -> Coroutine[object, object, str]:
    """A plain function handing back the coroutine of an async one (a common slip)."""
    return fetch(url)


@tiger.task(batch=True)
def batch_returns_coroutine(calls: list[BatchCall]) -> Coroutine[object, object, str]:
    return fetch(str(len(calls)))


async def _add_one(number: int) -> int:
    return number + 1


@tiger.task
def runs_coroutine(number: int) -> None:
    """A plain function running a coroutine to its end: a task like any other."""
    RESULTS.append(asyncio.run(_add_one(number)))
