"""The async benchmark's task functions, for every system (plain module: no queue library
imported): a no-op, and a task awaiting ``asyncio.sleep(0.05)``."""

from __future__ import annotations

import asyncio

__all__ = ["anoop", "asleep"]

#: What ``asleep`` awaits, in seconds.
SLEEP = 0.05


async def anoop() -> None:
    """Does nothing."""


async def asleep() -> None:
    """Waits on the event loop (an I/O call, say) for SLEEP seconds."""
    await asyncio.sleep(SLEEP)
