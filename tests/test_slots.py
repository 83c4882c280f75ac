"""JobSlots refuses what it cannot do; running jobs side by side is covered by the worker tests."""

from __future__ import annotations

import pytest

from typedtiger._slots import JobSlots
from typedtiger.executor import ForkExecutor, SyncExecutor


def test_concurrency_needs_an_executor_that_can_start_jobs() -> None:
    with pytest.raises(ValueError, match="SyncExecutor cannot"):
        JobSlots(SyncExecutor(), 2, 1.0)
    with pytest.raises(ValueError, match="concurrency must be >= 1"):
        JobSlots(ForkExecutor(), 0, 1.0)
    assert JobSlots(ForkExecutor(), 2, 1.0).side_by_side
    assert not JobSlots(SyncExecutor(), 1, 1.0).side_by_side
