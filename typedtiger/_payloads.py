"""From a resolved TaskSpec to what is stored: the payload (its id, retry policy and names as
TaskTiger's workers read them) and the backend's NewTask."""

from __future__ import annotations

import attrs

from typedtiger.backends.base import EnqueueMode, NewTask, TaskRef
from typedtiger.config import Config
from typedtiger.exceptions import ArgumentError
from typedtiger.serialization import (
    JOB_TIMEOUT_NAME,
    JOB_TIMEOUT_NAMES,
    TaskPayload,
    encode_payload,
    new_task_id,
    unique_task_id,
)
from typedtiger.spec import RetryPolicy, TaskSpec

__all__ = ["build_payload", "new_task"]


def build_payload(
    spec: TaskSpec,
    config: Config,
    *,
    time_last_queued: float | None = None,
    scheduled_at: float | None = None,
) -> tuple[TaskPayload, str]:
    """The payload (with its id) and queue of ``spec``, whose options are resolved already
    (``Tiger.resolve``); Config fills what is still unset."""
    unique = bool(spec.unique or spec.unique_key)
    if spec.unique_key:
        keyed = {key: spec.kwargs.get(key) for key in spec.unique_key}
        task_id = unique_task_id(spec.func, None, keyed)
    elif unique:
        task_id = unique_task_id(spec.func, spec.args, spec.kwargs)
    else:
        task_id = new_task_id()
    queue = spec.queue or config.default_queue
    payload = TaskPayload(
        id=task_id,
        func=spec.func,
        args=spec.args,
        kwargs=spec.kwargs,
        unique=unique,
        unique_key=spec.unique_key or None,
        lock=bool(spec.lock or spec.lock_key),
        lock_key=spec.lock_key or None,
        hard_timeout=spec.hard_timeout,
        retry_method=_retry_policy(spec, config),
        retry_on=_interoperable_names(spec.retry_on),
        max_queue_size=spec.max_queue_size,
        max_stored_executions=spec.max_stored_executions,
        runner_class=spec.runner_class,
        time_last_queued=time_last_queued,
        scheduled_at=scheduled_at,
        priority=spec.priority or 0,
        result_ttl=spec.result_ttl,
        queue=queue,
    )
    return payload, queue


def new_task(
    payload: TaskPayload,
    queue: str,
    due: float,
    mode: EnqueueMode | None,
    max_payload_bytes: int | None,
    after: tuple[TaskRef, ...] = (),
) -> NewTask:
    """What the backend is given to store ``payload`` in ``queue`` (which the stored payload
    names: ``tiger.status`` finds it so): encoded, and refused (ArgumentError) when over
    ``max_payload_bytes`` (Config's; 0 or None: no limit)."""
    if payload.queue != queue:
        payload = attrs.evolve(payload, queue=queue)
    encoded = encode_payload(payload)
    size = len(encoded.encode("utf8"))
    limit = max_payload_bytes
    if limit and size > limit:
        raise ArgumentError(
            f"the task payload of {payload.func} is {size} bytes, over "
            f"Config.max_payload_bytes ({limit}); pass a reference (a key, a URL) "
            "instead of the data"
        )
    return NewTask(
        id=payload.id,
        queue=queue,
        payload=encoded,
        due=due,
        mode=mode or (EnqueueMode.UNIQUE if payload.unique else EnqueueMode.PLAIN),
        max_queue_size=payload.max_queue_size,
        priority=payload.priority,
        after=after,
    )


def _interoperable_names(exception_names: tuple[str, ...] | None) -> tuple[str, ...] | None:
    """``retry_on`` as stored: a hard timeout under the name TaskTiger workers can import."""
    if not exception_names:
        return None
    return tuple(
        JOB_TIMEOUT_NAME if name in JOB_TIMEOUT_NAMES else name for name in exception_names
    )


def _retry_policy(spec: TaskSpec, config: Config) -> RetryPolicy | None:
    if spec.retry is None or spec.retry is False:
        return config.default_retry if spec.retry_on else None
    if spec.retry is True:
        return config.default_retry
    return spec.retry
