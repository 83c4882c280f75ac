"""What the parts of RedisBackend kept in modules of their own use of it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis
from redis.client import NEVER_DECODE

from typedtiger.backends._redis_keys import KeyLayout
from typedtiger.backends._redis_wire import queue_names

__all__ = ["RedisPart"]


class RedisPart:
    """RedisBackend's client, key layout and script runner, as its parts see them."""

    _client: redis.Redis[str]
    _keys: KeyLayout
    #: Per queue: the queues this process named in the registry.
    _registered: set[str]

    def _smembers_undecoded(self, key: str, pipe: Any = None) -> Any:
        target = self._client if pipe is None else pipe
        return target.execute_command("SMEMBERS", key, **{NEVER_DECODE: True})

    def _registry(self) -> list[str]:
        """Per queue: the queues named in the registry, sorted."""
        return sorted(queue_names(self._smembers_undecoded(self._keys.registry())))

    def _register(self, queue: str) -> None:
        """Per queue: name ``queue`` in the registry of queue names (once per process)."""
        if self._keys.sharded and queue not in self._registered:
            self._client.sadd(self._keys.registry(), queue)
            self._registered.add(queue)

    def _run(
        self,
        name: str,
        args: Sequence[object],
        *,
        decode: bool = True,
        keys: Sequence[str] = (),
        queue: str = "",
    ) -> Any:
        raise NotImplementedError
