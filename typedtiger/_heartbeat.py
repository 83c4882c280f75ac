"""Heartbeat: one job's refresh of its tasks, locks and queue slot, stopped before its record."""

from __future__ import annotations

import threading
from collections.abc import Callable

__all__ = ["Heartbeat"]


class Heartbeat:
    """Calls ``beat`` when called, until ``stop``.

    Executors call a job's heartbeat from threads of their own (SyncExecutor's helper thread
    may still be inside a beat when the job returns). ``stop`` waits for a beat in progress and
    makes later calls no-ops, so nothing is refreshed once the outcome is being recorded: a late
    beat would re-take the queue slot just released, or extend a lock just let go.
    """

    def __init__(self, beat: Callable[[], None]) -> None:
        self._beat = beat
        self._lock = threading.Lock()
        self._stopped = False

    def __call__(self) -> None:
        with self._lock:
            if not self._stopped:
                self._beat()

    def stop(self) -> None:
        """Wait for a beat in progress; no beat after this returns."""
        with self._lock:
            self._stopped = True
