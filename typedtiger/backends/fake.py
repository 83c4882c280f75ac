"""FakeBackend: RedisBackend over an in-process fakeredis, with a ManualClock.

It runs the very Lua scripts production runs (fakeredis executes them with lupa), so there is
one behaviour and no second implementation to drift. Nothing leaves the process, so a forked
child's writes would be lost: workers on a FakeBackend run tasks in-process (SyncExecutor),
and a task that enqueues other tasks writes to the same in-process store.
"""

from __future__ import annotations

try:
    import fakeredis
except ImportError as exc:  # an extra: production workers do not need it
    raise ImportError(
        "FakeBackend needs the testing extra: pip install 'typedtiger[testing]'"
    ) from exc

from typedtiger.backends.redis import RedisBackend
from typedtiger.backends.redis_async import AsyncRedisBackend
from typedtiger.clock import ManualClock

__all__ = ["FakeBackend"]


class FakeBackend(RedisBackend):
    """An in-process backend for tests; time moves only when its ManualClock is moved."""

    forks_safely = False

    def __init__(
        self,
        clock: ManualClock | None = None,
        *,
        prefix: str = "t",
        server: fakeredis.FakeServer | None = None,
        cluster: bool = False,
    ) -> None:
        self._server = server if server is not None else fakeredis.FakeServer()
        self._manual_clock = clock if clock is not None else ManualClock()
        client = fakeredis.FakeRedis(server=self._server, decode_responses=True)
        super().__init__(client, prefix=prefix, clock=self._manual_clock, cluster=cluster)

    def __repr__(self) -> str:
        layout = ", cluster=True" if self._cluster else ""
        return f"FakeBackend(prefix={self.prefix!r}{layout})"

    @property
    def clock(self) -> ManualClock:
        return self._manual_clock

    def async_twin(self) -> AsyncRedisBackend:
        """The same in-process store through fakeredis's asyncio client."""
        client = fakeredis.FakeAsyncRedis(server=self._server, decode_responses=True)
        return AsyncRedisBackend(client, prefix=self.prefix, cluster=self._cluster)

    def without_retries(self) -> FakeBackend:
        return self  # in-process: no connection to lose

    def with_prefix(self, prefix: str, cluster: bool = False) -> FakeBackend:
        if prefix == self.prefix and (self._cluster or not cluster):
            return self
        cluster = self._cluster or cluster
        return FakeBackend(self._manual_clock, prefix=prefix, server=self._server, cluster=cluster)
