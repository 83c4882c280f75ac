"""An async retrying task and an async periodic one, on a Tiger of their own (a worker of
tests/async_tasks.py's Tiger must not find a periodic task to schedule)."""

from __future__ import annotations

import asyncio

from typedtiger import Tiger, fixed, periodic

#: What the tasks did.
CALLS: list[str] = []

tiger = Tiger()


@tiger.task(retry=fixed(60, 3))
async def flaky(succeed_on: int) -> None:
    """Fails until its ``succeed_on``-th call."""
    await asyncio.sleep(0)
    CALLS.append("flaky")
    if len(CALLS) < succeed_on:
        raise ValueError(f"call {len(CALLS)}")


@tiger.task(schedule=periodic(minutes=5))
async def every_five_minutes() -> None:
    await asyncio.sleep(0)
    CALLS.append("tick")
