"""The AsyncBackend protocol, the async twin of ``Backend``'s calls an application makes, and
the part of the ``Backend`` protocol that makes one (``AsyncTwin``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from typedtiger.backends._kept import ResultProbe
    from typedtiger.backends.base import Enqueued, NewTask, StoredTask, TaskState

__all__ = ["AsyncBackend", "AsyncTwin"]


class AsyncBackend(Protocol):
    """The async twin of ``Backend``'s calls an application makes from a request handler:
    storing tasks and reading one back, awaited on the running event loop, by the same scripts
    (``Backend.async_twin`` makes one)."""

    @property
    def prefix(self) -> str:
        """The key prefix this backend stores under."""
        ...

    async def enqueue(self, tasks: Sequence[NewTask], now: float, publish: bool) -> list[Enqueued]:
        """``Backend.enqueue``, awaited."""
        ...

    async def get_task(
        self, queue: str, state: TaskState, task_id: str, load_executions: int
    ) -> StoredTask | None:
        """``Backend.get_task``, awaited."""
        ...

    async def await_result(self, queue: str, task_id: str, timeout: float) -> ResultProbe:
        """``Backend.await_result``, awaited (the wait does not block the loop)."""
        ...

    async def close(self) -> None:
        """Close its connections (on the loop that made them)."""
        ...


class AsyncTwin(Protocol):
    """What every ``Backend`` offers to async callers."""

    def async_twin(self) -> AsyncBackend:
        """The same storage through an asyncio client (``AsyncBackend``), for the event loop
        running now: its connections belong to that loop."""
        ...
