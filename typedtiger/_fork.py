"""ForkExecutor (placeholder until the forking executor lands)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typedtiger.executor import Job, Outcome


class ForkExecutor:
    """Runs each job in a forked child."""

    def execute(
        self, job: Job, heartbeat: Callable[[], None], heartbeat_interval: float
    ) -> Outcome:
        from typedtiger.executor import SyncExecutor

        return SyncExecutor().execute(job, heartbeat, heartbeat_interval)
