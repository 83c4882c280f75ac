"""Tiger's async client: enqueueing from a running event loop (an ASGI handler...) through the
backend's asyncio twin. A part of ``Tiger``, kept apart."""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import Coroutine, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar, overload

from typedtiger._payloads import new_task
from typedtiger.backends.async_base import AsyncBackend
from typedtiger.backends.base import (
    Backend,
    Enqueued,
    EnqueueMode,
    NewTask,
    TaskRef,
)
from typedtiger.config import Config
from typedtiger.serialization import TaskPayload
from typedtiger.spec import TaskSpec
from typedtiger.task import Task

__all__ = ["AsyncClient"]

#: Each event loop's asyncio twins of the backends used on it (connections belong to a loop).
_twins: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, weakref.WeakKeyDictionary[Backend, AsyncBackend]
] = weakref.WeakKeyDictionary()

R = TypeVar("R")

#: Payloads about to be stored, with their queues.
Timed = Sequence[tuple[TaskPayload, str]]


class AsyncClient:
    """``aenqueue``, ``aenqueue_many`` and ``aclose``, and what ``enqueue`` shares with them;
    ``Tiger`` provides the backend, config, payload building and eager runs."""

    @property
    def backend(self) -> Backend:
        raise NotImplementedError

    @property
    def config(self) -> Config:
        raise NotImplementedError

    def build(
        self,
        spec: TaskSpec,
        *,
        time_last_queued: float | None = None,
        scheduled_at: float | None = None,
    ) -> tuple[TaskPayload, str]:
        raise NotImplementedError

    def _timing(self, when: datetime | timedelta | None) -> tuple[float, float, float]:
        raise NotImplementedError

    def _run_eagerly(self, payload: TaskPayload, queue: str) -> Task:
        raise NotImplementedError

    def _traced(self, timed: Timed) -> contextlib.AbstractContextManager[Timed]:
        raise NotImplementedError

    def _stored_handle(self, payload: TaskPayload, queue: str, result: Enqueued) -> Task:
        raise NotImplementedError

    def async_backend(self) -> AsyncBackend:
        """The backend's asyncio twin for the event loop running now (made at first use)."""
        loop = asyncio.get_running_loop()
        twins = _twins.setdefault(loop, weakref.WeakKeyDictionary())
        twin = twins.get(self.backend)
        if twin is None:
            twin = twins[self.backend] = self.backend.async_twin()
        return twin

    @overload
    async def aenqueue(
        self, spec: TaskSpec[Coroutine[Any, Any, R]], *, when: datetime | timedelta | None = None
    ) -> Task[R]: ...

    @overload
    async def aenqueue(
        self, spec: TaskSpec[R], *, when: datetime | timedelta | None = None
    ) -> Task[R]: ...

    async def aenqueue(self, spec: TaskSpec, *, when: datetime | timedelta | None = None) -> Task:
        """``enqueue``, awaited on the running event loop (one round trip on its connection)."""
        return (await self.aenqueue_many([spec], when=when))[0]

    async def aenqueue_many(
        self, specs: Sequence[TaskSpec], *, when: datetime | timedelta | None = None
    ) -> list[Task]:
        """``enqueue_many``, awaited. In eager mode (``Config.always_eager``) the tasks run
        here before it returns, as ``enqueue`` runs them (an async one on a loop beside)."""
        now, due, scheduled_at = self._timing(when)
        timed = [
            self.build(spec, time_last_queued=now, scheduled_at=scheduled_at) for spec in specs
        ]
        if self.config.always_eager and due <= now:
            return [self._run_eagerly(payload, queue) for payload, queue in timed]
        with self._traced(timed) as traced:
            results = await self.async_backend().enqueue(
                self._new_tasks(traced, due, None), now, self.config.publish_queued_tasks
            )
        return [
            self._stored_handle(payload, queue, result)
            for (payload, queue), result in zip(traced, results, strict=True)
        ]

    async def aclose(self) -> None:
        """Close the connections of the backend's asyncio twin on the running loop (e.g. at an
        ASGI application's shutdown); the next async call opens new ones."""
        twins = _twins.get(asyncio.get_running_loop())
        twin = None if twins is None else twins.pop(self.backend, None)
        if twin is not None:
            await twin.close()

    def _new_tasks(
        self,
        timed: Timed,
        due: float,
        mode: EnqueueMode | None,
        after: Sequence[tuple[TaskRef, ...]] | None = None,
    ) -> list[NewTask]:
        """What the backend stores for ``timed`` (payloads and their queues), due at ``due``,
        each after the tasks ``after`` gives it (None: none)."""
        limit = self.config.max_payload_bytes
        waits = after if after is not None else [()] * len(timed)
        return [
            new_task(payload, queue, due, mode, limit, waiting)
            for (payload, queue), waiting in zip(timed, waits, strict=True)
        ]
