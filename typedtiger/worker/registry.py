"""The worker's record in the worker registry: who it is and what it runs, handed as a
``WorkerBeat`` to a call the worker makes anyway (the upkeep's, a heartbeat's) at most once per
heartbeat period, so that it costs no round trip of its own."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import attrs

from typedtiger._worker_info import RunningTask, WorkerInfo, encode_worker_info
from typedtiger.backends.base import WorkerBeat

__all__ = ["WorkerRecord"]


def _at(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


class WorkerRecord:
    """This worker's registry record; ``beat`` says when the next write is due.

    Jobs are added and removed by the worker's main thread and the record is read by the
    heartbeat thread too, hence the lock.
    """

    def __init__(
        self,
        info: WorkerInfo,
        now: Callable[[], float],
        period: float,
        expires_after: float,
    ) -> None:
        self._info = info
        self._now = now
        self._period = period
        self._expires_after = expires_after
        self._lock = threading.Lock()
        self._running: dict[object, tuple[RunningTask, ...]] = {}
        self._next_beat: float | None = None

    def job_started(self, key: object, tasks: Sequence[RunningTask]) -> None:
        """A job (``key`` stands for it) runs ``tasks`` from now on."""
        with self._lock:
            self._running[key] = tuple(tasks)

    def job_ended(self, key: object) -> None:
        with self._lock:
            self._running.pop(key, None)

    def beat(self) -> WorkerBeat | None:
        """The record to write with the call about to be made, if one is due (else None)."""
        now = self._now()
        with self._lock:
            if self._next_beat is not None and now < self._next_beat:
                return None
            self._next_beat = now + self._period
            tasks = tuple(task for job in self._running.values() for task in job)
        info = attrs.evolve(self._info, last_beat=_at(now), tasks=tasks)
        return WorkerBeat(
            worker_id=info.id,
            record=encode_worker_info(info),
            now=now,
            expires_after=self._expires_after,
        )
