"""Async task functions for tests/test_async.py and tests/test_asyncio_executor.py."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path

from typedtiger import Tiger
from typedtiger.runner import BatchCall

#: What the async bodies did (in the worker's own process: sync executor, eager mode).
CALLS: list[str] = []

tiger = Tiger()


@tiger.task
async def fetch(url: str) -> str:
    await asyncio.sleep(0)
    CALLS.append(f"fetch {url}")
    return url


@tiger.task
async def touch(path: str, text: str = "ran") -> None:
    """Writes ``text`` to ``path`` after a turn of the loop: proof it ran, from any process."""
    await asyncio.sleep(0)
    Path(path).write_text(text)


@tiger.task
async def fail(message: str) -> None:
    await asyncio.sleep(0)
    raise ValueError(message)


@tiger.task(hard_timeout=0.3)
async def sleeps(seconds: float) -> None:
    await asyncio.sleep(seconds)


@tiger.task(hard_timeout=0.3)
async def blocks(seconds: float) -> None:
    """Blocks the event loop (sync code inside a coroutine)."""
    time.sleep(seconds)


@tiger.task(batch=True)
async def batch_touch(calls: list[BatchCall]) -> None:
    await asyncio.sleep(0)
    for call in calls:
        path, text = call["args"]
        Path(str(path)).write_text(f"{text} of {len(calls)}")


async def retry_delay(retry_number: int) -> float:
    """An async retry function, named by string (``Custom.of`` refuses it)."""
    return 1.0


async def stream() -> AsyncIterator[int]:
    CALLS.append("stream")
    yield 1


@tiger.task
def returns_coroutine(url: str) -> Coroutine[object, object, str]:
    """A plain function handing back the coroutine of an async one: it is run too."""
    return fetch(url)


@tiger.task
def returns_generator() -> AsyncIterator[int]:
    """A plain function returning an async generator: not something a task can run."""
    return stream()


@tiger.task
def plain(path: str) -> None:
    Path(path).write_text("plain")


@tiger.task(hard_timeout=0.3)
async def cancellable(path: str) -> None:
    """Sleeps past its hard timeout; writes "cancelled" to ``path`` when cancelled."""
    try:
        await asyncio.sleep(10)
    except asyncio.CancelledError:
        Path(path).write_text("cancelled")
        raise


@tiger.task(hard_timeout=10)
async def meet(folder: str, name: str, count: int) -> None:
    """Leaves ``name`` in ``folder`` and waits (asynchronously) until ``count`` names are
    there: only tasks running side by side all get past it."""
    Path(folder, name).write_text(name)
    while len(list(Path(folder).iterdir())) < count:
        await asyncio.sleep(0.01)


@tiger.task(lock=True, lock_key=("path",), hard_timeout=10)
async def locked(*, path: str, label: str) -> None:
    """Appends start and end lines around a turn of the loop: interleaved without the lock."""
    with Path(path).open("a") as log:
        log.write(f"start {label}\n")
    await asyncio.sleep(0.05)
    with Path(path).open("a") as log:
        log.write(f"end {label}\n")


@tiger.task(unique=True)
async def once(path: str) -> None:
    with Path(path).open("a") as log:
        log.write("ran\n")


@tiger.task(hard_timeout=10)
async def slow_touch(path: str, seconds: float) -> None:
    """Writes ``path``.started (the process id), then "finished" to ``path`` ``seconds`` later."""
    Path(f"{path}.started").write_text(str(os.getpid()))
    await asyncio.sleep(seconds)
    Path(path).write_text("finished")


@tiger.task(result_ttl=60)
async def double(number: int) -> int:
    await asyncio.sleep(0)
    return 2 * number


@tiger.task(hard_timeout=20)
async def gated(path: str) -> str:
    """Writes ``path``.started, then waits (asynchronously) until ``path`` exists."""
    Path(f"{path}.started").write_text("started")
    while not Path(path).exists():
        await asyncio.sleep(0.01)
    return "through"


#: The ``counted`` tasks running now (in the loop's process, which they all share).
RUNNING: set[str] = set()


@tiger.task(hard_timeout=10, result_ttl=60)
async def counted(name: str, seconds: float) -> int:
    """Runs ``seconds``; how many ``counted`` tasks were running at once meanwhile, at most."""
    RUNNING.add(name)
    most = len(RUNNING)
    try:
        for _ in range(max(1, round(seconds / 0.01))):
            await asyncio.sleep(0.01)
            most = max(most, len(RUNNING))
    finally:
        RUNNING.discard(name)
    return most
