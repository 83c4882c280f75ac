"""Waiting in tests that run real processes: bounds that grow on a slow machine.

$TYPEDTIGER_TEST_TIME_SCALE (a number, at least 1) multiplies every bound and margin given to
these helpers. Unset, the test session sets it from the load average per CPU when it starts
(1 on an idle machine, at most 4; tests/conftest.py), so a run beside other runs on a 2-core
machine waits longer instead of failing; set it yourself (e.g. 5 under a debugger) to override.
Only bounds and durations are scaled: what a test checks stays the same. Tests that can use a
ManualClock do; these are for the ones that wait for other processes.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

TIME_SCALE_VARIABLE = "TYPEDTIGER_TEST_TIME_SCALE"


def time_scale() -> float:
    """$TYPEDTIGER_TEST_TIME_SCALE, at least 1."""
    raw = os.environ.get(TIME_SCALE_VARIABLE, "").strip()
    if not raw:
        return 1.0
    try:
        scale = float(raw)
    except ValueError:
        raise ValueError(f"${TIME_SCALE_VARIABLE} is {raw!r}, not a number") from None
    if not scale >= 1:  # also refuses NaN
        raise ValueError(f"${TIME_SCALE_VARIABLE} is {raw!r}: it must be at least 1")
    return scale


def load_scale() -> float:
    """The load average (last minute) per CPU, from 1 to 4: the scale for a busy machine."""
    try:
        load = os.getloadavg()[0]
    except OSError:  # not available on this platform
        return 1.0
    return min(4.0, max(1.0, load / (os.cpu_count() or 1)))


def scaled(seconds: float) -> float:
    """``seconds`` times the time scale."""
    return seconds * time_scale()


def wait_until(
    condition: Callable[[], object], timeout: float, what: str, *, interval: float = 0.02
) -> None:
    """Poll ``condition`` every ``interval`` s until it is true; AssertionError naming ``what``
    once ``timeout`` (scaled) seconds have passed."""
    bound = scaled(timeout)
    deadline = time.monotonic() + bound
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {bound:g} s waiting for {what}")
        time.sleep(interval)


def sleep_past(timestamp: float, margin: float = 0.05) -> None:
    """Sleep until the wall clock (time.time()) is ``margin`` s past ``timestamp``."""
    while (left := timestamp + margin - time.time()) > 0:
        time.sleep(left)
