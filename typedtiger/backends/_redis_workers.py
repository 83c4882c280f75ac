"""RedisBackend's worker registry: each live worker's record at ``<prefix>:worker:<id>`` and
its last beat in the sorted set ``<prefix>:workers``. A record is written along with another
call's round trip (``with_beat``), never on its own. A part of ``RedisBackend``, kept apart."""

from __future__ import annotations

from typing import Any

import redis

from typedtiger.backends._redis_errors import redis_call
from typedtiger.backends._redis_wire import num
from typedtiger.backends.base import WorkerBeat

__all__ = ["RedisWorkers"]

#: How many times a beat's expiry a record lives in Redis without a beat: a garbage-collection
#: backstop only (whether a worker is alive is decided by its score against the clock). The
#: sorted set has no TTL: each beat drops the ids expired since.
_BACKSTOP = 3


class RedisWorkers:
    """The worker registry on ``_client`` under the keys ``_key`` names (RedisBackend's)."""

    _client: redis.Redis[str]

    def _key(self, *parts: str) -> str:
        raise NotImplementedError

    def with_beat(self, pipe: Any, beat: WorkerBeat) -> None:
        """Queue on ``pipe`` the commands that write ``beat`` (and drop workers expired since)."""
        workers = self._key("workers")
        backstop = max(1, round(beat.expires_after * _BACKSTOP * 1000))
        pipe.set(self._key("worker", beat.worker_id), beat.record, px=backstop)
        pipe.zadd(workers, {beat.worker_id: beat.now})
        pipe.zremrangebyscore(workers, "-inf", f"({num(beat.now - beat.expires_after)}")

    @redis_call
    def workers(self, alive_since: float) -> list[str]:
        ids = self._client.zrangebyscore(self._key("workers"), num(alive_since), "+inf")
        if not ids:
            return []
        records = self._client.mget([self._key("worker", worker_id) for worker_id in ids])
        return [record for record in records if record is not None]

    @redis_call
    def remove_worker(self, worker_id: str) -> None:
        pipe = self._client.pipeline(transaction=True)
        pipe.zrem(self._key("workers"), worker_id)
        pipe.delete(self._key("worker", worker_id))
        pipe.execute()
