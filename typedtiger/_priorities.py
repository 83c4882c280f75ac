"""Task priorities: their range, and how a priority orders a queue's sorted set.

A queued task's score is the time it was queued less a head start of ``PRIORITY_STEP`` seconds
per priority level. Claims (typedtiger's and TaskTiger's) take the lowest scores first, so a
higher priority is claimed first and equal priorities in the order they were queued; the score
stays a time (within ``MAX_PRIORITY * PRIORITY_STEP`` of the real one), which TaskTiger's
inspection can show. The Lua scripts use the same step (``_common.lua``).
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "MAX_PRIORITY",
    "MIN_PRIORITY",
    "PRIORITY_STEP",
    "check_priority",
    "queued_score",
    "queued_time",
]

#: The lowest priority a task may have (claimed last).
MIN_PRIORITY: Final = -10
#: The highest priority a task may have (claimed first).
MAX_PRIORITY: Final = 10
#: The head start one priority level gives (30 days): a task of priority p is claimed before
#: every task of a lower priority queued less than this long before it.
PRIORITY_STEP: Final = 30 * 24 * 3600.0


def check_priority(value: object) -> int:
    """``value`` if it is a priority (an int, not a bool, in the range); else TypeError or
    ValueError saying what is wrong."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"priority must be an int, got {type(value).__name__} {value!r}")
    if not MIN_PRIORITY <= value <= MAX_PRIORITY:
        raise ValueError(f"priority must be between {MIN_PRIORITY} and {MAX_PRIORITY}, got {value}")
    return value


def queued_score(queued_at: float, priority: int) -> float:
    """The score of a task of ``priority`` queued at ``queued_at`` in its queued sorted set."""
    return queued_at - priority * PRIORITY_STEP


def queued_time(score: float, priority: int) -> float:
    """When a queued task of ``priority`` with ``score`` was queued (see ``queued_score``)."""
    return score + priority * PRIORITY_STEP
