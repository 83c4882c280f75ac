"""``Tiger.delay``: TaskTiger's untyped enqueue, a part of ``Tiger`` kept apart."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from typedtiger._coroutines import refuse_async_generator
from typedtiger._names import qualified_name
from typedtiger.runner import BaseRunner
from typedtiger.spec import KeyNames, RetryPolicy, TaskSpec, check_key_names

if TYPE_CHECKING:
    from typedtiger.task import Task

__all__ = ["TaskTigerDelay"]


class TaskTigerDelay:
    """``delay``, on ``Tiger``, which provides ``resolve`` and ``enqueue``."""

    def resolve(self, spec: TaskSpec) -> TaskSpec:
        raise NotImplementedError

    def enqueue(self, spec: TaskSpec, *, when: datetime | timedelta | None = None) -> Task:
        raise NotImplementedError

    def delay(
        self,
        func: Callable[..., object],
        args: Sequence[object] | None = None,
        kwargs: Mapping[str, object] | None = None,
        *,
        when: datetime | timedelta | None = None,
        queue: str | None = None,
        hard_timeout: float | None = None,
        unique: bool | None = None,
        unique_key: KeyNames | None = None,
        lock: bool | None = None,
        lock_key: KeyNames | None = None,
        retry: bool | None = None,
        retry_on: Sequence[type[BaseException]] | None = None,
        retry_method: RetryPolicy | None = None,
        max_queue_size: int | None = None,
        max_stored_executions: int | None = None,
        runner_class: type[BaseRunner] | None = None,
        priority: int | None = None,
    ) -> Task:
        """TaskTiger-style, untyped: queue ``func(*args, **kwargs)`` with these options."""
        refuse_async_generator(func)
        spec = TaskSpec(
            func=qualified_name(func),
            args=tuple(args or ()),
            kwargs=dict(kwargs or {}),
            queue=queue,
            hard_timeout=hard_timeout,
            unique=unique,
            unique_key=unique_key,
            lock=lock,
            lock_key=lock_key,
            retry=retry_method if retry_method is not None else retry,
            retry_on=retry_on,
            max_queue_size=max_queue_size,
            max_stored_executions=max_stored_executions,
            runner_class=runner_class,
            priority=priority,
        )
        check_key_names(func, self.resolve(spec))  # (resolved: a batch function's is not checked)
        return self.enqueue(spec, when=when)
