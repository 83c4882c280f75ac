"""StorageOutage: how a worker waits out an unavailable storage.

One outage runs from the first failed call to the next call that succeeds. Waits grow from
0.1 s, doubling up to 10 s, each with jitter (so the workers of a fleet do not all come back
in the same instant). The outage ends in ``StorageGaveUp`` once it has lasted
``Config.storage_retry_deadline``, or soon after a stop is requested (a worker asked to stop
must not hang on a storage that is gone: what it could not record is left to the expiry
requeue).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Final

import structlog

from typedtiger.exceptions import BackendUnavailable, StorageGaveUp

__all__ = ["StorageOutage"]

FIRST_WAIT: Final = 0.1
MAX_WAIT: Final = 10.0
#: How long a worker asked to stop still retries (a blip should not cost its last outcome).
STOP_GRACE: Final = 2.0
#: The longest single sleep: a stop request is noticed within it.
_SLICE: Final = 0.1


class StorageOutage:
    """Backoff state across one outage. ``failed`` after each failed call (it waits, or raises
    ``StorageGaveUp``), ``succeeded`` after each call that went through.

    (The stop request is asked for per call, not kept: a worker holding this must not be held
    by it in a reference cycle, which would keep its clients open until a garbage collection.)
    """

    def __init__(
        self,
        deadline: float,
        log: structlog.typing.FilteringBoundLogger,
        *,
        max_wait: float = MAX_WAIT,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._deadline = deadline
        self._max_wait = min(MAX_WAIT, max_wait)
        self._log = log
        self._monotonic = monotonic
        self._sleep = sleep
        self._jitter = jitter
        self._started: float | None = None
        self._stop_seen: float | None = None
        self._wait = min(FIRST_WAIT, self._max_wait)

    @property
    def ongoing(self) -> bool:
        return self._started is not None

    def succeeded(self) -> None:
        if self._started is not None:
            self._log.info(
                "backend available again", outage_s=round(self._monotonic() - self._started, 3)
            )
        self._started = self._stop_seen = None
        self._wait = min(FIRST_WAIT, self._max_wait)

    def failed(self, exc: BackendUnavailable, stop_requested: Callable[[], bool]) -> None:
        """Wait before the next try; StorageGaveUp when no further try is allowed."""
        now = self._monotonic()
        if self._started is None:
            self._started = now
        give_up_at = self._started + self._deadline
        if stop_requested():
            self._stop_seen = now if self._stop_seen is None else self._stop_seen
            give_up_at = min(give_up_at, self._stop_seen + STOP_GRACE)
        if now >= give_up_at:
            raise self._give_up(exc, now)
        wait = min(self._wait * (0.5 + self._jitter() / 2), give_up_at - now)
        self._log.warning("backend unavailable", error=str(exc), retry_in=round(wait, 3))
        self._wait = min(self._max_wait, self._wait * 2)
        end = now + wait
        while (left := end - self._monotonic()) > 0:
            if stop_requested() and self._stop_seen is None:
                return  # try once more now, then within the stop's grace
            self._sleep(min(left, _SLICE))

    def _give_up(self, exc: BackendUnavailable, now: float) -> StorageGaveUp:
        assert self._started is not None
        lasted = now - self._started
        if self._stop_seen is not None and lasted < self._deadline:
            why = "a stop was requested"
        else:
            why = f"storage_retry_deadline ({self._deadline:g} s) passed"
        return StorageGaveUp(
            f"gave up on the storage after {lasted:.1f} s of outage ({why}): {exc}; "
            "tasks still running or not yet recorded are requeued once their heartbeat expires"
        )
