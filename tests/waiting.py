"""Waiting in tests that run real processes: bounds that grow on a slow machine.

Set $TYPEDTIGER_TEST_TIME_SCALE (a number, default 1) to multiply every bound and margin given
to these helpers, e.g. 3 on a loaded 2-core machine or under a debugger. Tests that can use a
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
