"""Recording outcomes: successes held back for the next claim."""

from __future__ import annotations

import structlog

from typedtiger.backends.base import Completion
from typedtiger.worker.recording import PendingDone


def test_successes_of_a_queue_join_with_their_lock_ids_still_paired() -> None:
    log = structlog.get_logger("test")
    first = PendingDone(Completion("q", ("a", "b"), ("lock-a",)), ((log, 0.5),))

    joined = first.joined(Completion("q", ("c",), ("lock-c",)), log, 0.25)

    assert joined.completion == Completion("q", ("a", "b", "c"), ("lock-a", "", "lock-c"))
    assert [duration for _, duration in joined.jobs] == [0.5, 0.25]
