"""Heartbeats: the worker's one thread that refreshes every running job's tasks, locks and queue
slot, and each job's heartbeat, stopped before its outcome is recorded."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import structlog

__all__ = ["Heartbeat", "Heartbeats"]

_log = structlog.get_logger("typedtiger.worker")


class Heartbeat:
    """Calls ``beat`` when called, until ``stop``.

    The heartbeat thread may still be inside a beat when the job's outcome comes back. ``stop``
    waits for a beat in progress and makes later calls no-ops, so nothing is refreshed once the
    outcome is being recorded: a late beat would re-take the queue slot just released, or extend
    a lock just let go.
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


class Heartbeats:
    """One long-lived thread calling each running job's heartbeat every ``interval`` seconds,
    the first one interval after the job was added.

    A thread per job would cost more than a short task itself. Adding a job does not wake the
    thread (a thread switch on the task's path): idle or waiting for an earlier job's beat, it
    wakes within one interval anyway, and then waits for the new job's first beat.
    """

    def __init__(self, interval: float) -> None:
        if not interval > 0:
            raise ValueError(f"the heartbeat interval must be > 0, not {interval!r}")
        self.interval = interval
        self._condition = threading.Condition()
        #: Each running job's heartbeat, and when it is due next (time.monotonic()).
        self._due: dict[Heartbeat, float] = {}
        self._thread: threading.Thread | None = None

    def add(self, heartbeat: Heartbeat) -> None:
        """Beat ``heartbeat`` every interval from now on, until ``remove``."""
        with self._condition:
            self._due[heartbeat] = time.monotonic() + self.interval
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="typedtiger-heartbeat", daemon=True
                )
                self._thread.start()

    def remove(self, heartbeat: Heartbeat) -> None:
        """Stop beating ``heartbeat``; once this returns, no beat of it is in progress or comes
        later."""
        with self._condition:
            self._due.pop(heartbeat, None)
        heartbeat.stop()

    @property
    def running(self) -> tuple[Heartbeat, ...]:
        """The heartbeats of the jobs running now."""
        with self._condition:
            return tuple(self._due)

    def beat_now(self) -> None:
        """Beat every running job now, in this thread (a test that moves a ManualClock does)."""
        for heartbeat in self.running:
            _call(heartbeat)

    def close(self) -> None:
        """End the thread (the worker stops); a later ``add`` starts another."""
        with self._condition:
            thread, self._thread = self._thread, None
            self._condition.notify_all()
        if thread is not None and thread is not threading.current_thread():
            thread.join(self.interval)  # (a beat in progress ends soon after)

    def _run(self) -> None:
        me = threading.current_thread()
        while True:
            with self._condition:
                if self._thread is not me:
                    return
                now = time.monotonic()
                due = [beat for beat, when in self._due.items() if when <= now]
                for beat in due:
                    self._due[beat] = now + self.interval
                if not due:
                    wait = min(self._due.values(), default=now + self.interval) - now
                    self._condition.wait(min(wait, self.interval))
                    continue
            for beat in due:
                _call(beat)


def _call(heartbeat: Callable[[], None]) -> None:
    try:
        heartbeat()
    except Exception:
        _log.exception("heartbeat failed")
