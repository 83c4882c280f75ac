"""RedisBackend's look at a task by its id alone (``status.lua``: the payload names the queue),
and its wait for a task's result: ``result.lua`` reads what became of the task and,
if it may still finish, leaves a marker in its result key; the script that stores the result
finds the marker and publishes on the key's channel, which the waiter has subscribed to first.
So a task's result costs one command (SET ... GET) when nobody waits, and a waiter is woken
without polling. A part of ``RedisBackend``, kept apart."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

from typedtiger.backends._redis_errors import redis_call
from typedtiger.backends._redis_keys import KeyLayout
from typedtiger.backends._redis_part import RedisPart
from typedtiger.backends._redis_wire import undecoded
from typedtiger.backends.base import ResultProbe, StoredStatus, TaskState

__all__ = ["RedisResults", "marker_ms", "probe_of", "result_keys"]

#: What a waiter leaves in a result key (RESULT_WAITING, _common.lua): no result.
RESULT_WAITING = "waiting"

#: How much longer than its wait a waiter's marker is kept (its last look follows the wait).
_MARKER_SLACK_MS = 5_000


def marker_ms(timeout: float) -> int:
    """How long (ms) a waiter's marker is kept for a wait of ``timeout`` seconds."""
    return math.ceil(timeout * 1000) + _MARKER_SLACK_MS


def result_keys(keys: KeyLayout, queue: str, task_id: str) -> list[str]:
    """The KEYS of result.lua: the result key, the payload, the error state, the executions."""
    base = keys.task(queue, task_id)
    return [f"{base}:result", base, keys.state(TaskState.ERROR, queue), f"{base}:executions"]


def probe_of(reply: Sequence[Any]) -> ResultProbe:
    """result.lua's reply (decoded or not) as a ResultProbe."""
    result, stored, last = (undecoded(v) if isinstance(v, bytes) else v for v in reply)
    return ResultProbe(result=result or None, stored=bool(stored), last_execution=last or None)


class RedisResults(RedisPart):
    """The result wait on ``_client`` under the keys ``_key`` names (RedisBackend's)."""

    def find_task(self, task_id: str) -> list[tuple[str, TaskState]]:
        raise NotImplementedError

    @redis_call
    def task_status(self, task_id: str) -> StoredStatus:
        home = ""  # (per queue: the key of the first queue filing it)
        if self._keys.sharded:
            home = next(iter(self.find_task(task_id)), ("", TaskState.QUEUED))[0]
            if not home:  # (gone from its queue: a result it kept may be in any)
                return StoredStatus(places=(), result=self._kept_result(task_id))
        base = self._keys.task(home, task_id)
        keys = [base, f"{base}:result"]
        queue, *filed, result = self._run("status", [task_id], keys=keys, queue=home)
        if queue:
            states = zip(TaskState, filed, strict=True)  # (the order of the script's STATES)
            places = tuple((queue, state) for state, flag in states if flag)
        else:  # (no payload, or one that names no queue: TaskTiger's)
            places = tuple(self.find_task(task_id))
        return StoredStatus(places=places, result=result or None)

    def _kept_result(self, task_id: str) -> str | None:
        """Per queue: the result the task ``task_id`` kept, looked for in every queue of the
        registry (a waiter's marker is no result; nor is a key of another type)."""
        pipe = self._client.pipeline(transaction=False)
        for queue in self._registry():
            pipe.get(f"{self._keys.task(queue, task_id)}:result")
        kept = pipe.execute(raise_on_error=False)
        return next((v for v in kept if isinstance(v, str) and v != RESULT_WAITING), None)

    def _probe(self, queue: str, task_id: str, wait_ms: int) -> ResultProbe:
        keys = result_keys(self._keys, queue, task_id)
        return probe_of(self._run("result", [task_id, wait_ms], keys=keys, queue=queue))

    @redis_call
    def await_result(self, queue: str, task_id: str, timeout: float) -> ResultProbe:
        if timeout <= 0:
            return self._probe(queue, task_id, 0)
        pubsub = self._client.pubsub(ignore_subscribe_messages=True)
        try:
            # Subscribed before the marker is left: no publication can come in between.
            pubsub.subscribe(self._keys.task(queue, task_id) + ":result")
            probe = self._probe(queue, task_id, marker_ms(timeout))
            if not probe.pending:
                return probe
            deadline = time.monotonic() + timeout
            while (left := deadline - time.monotonic()) > 0:
                # (None also after the subscription's confirmation, read and skipped)
                if pubsub.get_message(timeout=left) is not None:
                    break
            return self._probe(queue, task_id, 0)
        finally:
            pubsub.close()
