"""What the parts of RedisBackend kept in modules of their own use of it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis

from typedtiger.backends._redis_keys import KeyLayout

__all__ = ["RedisPart"]


class RedisPart:
    """RedisBackend's client, key layout and script runner, as its parts see them."""

    _client: redis.Redis[str]
    _keys: KeyLayout

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
