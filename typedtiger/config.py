"""Config: every setting typedtiger reads, typed, with TaskTiger-like defaults."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager

import attrs

from typedtiger._policies import MAX_SECONDS, Fixed, RetryPolicy
from typedtiger._queues import valid_queue_name

__all__ = ["Config"]


def _seconds_check(*, zero_ok: bool) -> Callable[[object, attrs.Attribute[float], float], None]:
    """A validator of a time setting: finite, at most MAX_SECONDS, > 0 (or >= 0)."""
    bound = ">= 0" if zero_ok else "> 0"

    def check(_: object, attribute: attrs.Attribute[float], value: float) -> None:
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if not (number and math.isfinite(value) and 0 <= value <= MAX_SECONDS) or (
            value == 0 and not zero_ok
        ):
            raise ValueError(
                f"Config.{attribute.name} must be a number of seconds {bound} and "
                f"<= {MAX_SECONDS:g}, got {value!r}"
            )

    return check


_seconds = _seconds_check(zero_ok=False)
_grace_seconds = _seconds_check(zero_ok=True)


def _non_negative_int(_: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"Config.{attribute.name} must be an integer >= 0, got {value!r}")


def _queue_names(value: Sequence[str]) -> tuple[str, ...]:
    if isinstance(value, str):
        raise TypeError("queue lists take a sequence of queue names, not a single string")
    names = tuple(value)
    for name in names:
        if not valid_queue_name(name):
            raise ValueError(f"invalid queue name {name!r}")
    return names


def _batch_queues(value: Mapping[str, int]) -> Mapping[str, int]:
    checked = dict(value)
    for name, size in checked.items():
        if not valid_queue_name(name):
            raise ValueError(f"invalid queue name {name!r} in batch_queues")
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"batch_queues[{name!r}] must be a positive integer, got {size!r}")
    return checked


def _optional_prefixes(value: Sequence[str] | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        raise TypeError("allowed_task_modules takes a sequence of module names")
    names = tuple(value)
    if not names or not all(names):
        raise ValueError(
            "allowed_task_modules must name at least one module (and no empty name); "
            "use allow_any_module=True to run any importable function"
        )
    return names


def _valid_prefix(_: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not value or any(char.isspace() for char in value):
        raise ValueError(f"Config.{attribute.name} must be a non-empty key prefix, got {value!r}")


@attrs.frozen(kw_only=True)
class Config:
    """typedtiger's settings. Times are in seconds.

    Unknown settings are a type error; out-of-range values raise ValueError here.
    """

    #: Prefix of every Redis key ("t" as in TaskTiger). A hash tag ("{t}") keeps all keys in
    #: one Redis Cluster slot.
    prefix: str = attrs.field(default="t", validator=_valid_prefix)
    #: Lay keys out for Redis Cluster (implied by a RedisCluster client, redis+cluster://):
    #: with a hash-tagged prefix every key in its one slot, else each queue's keys, its tasks'
    #: and its locks' in a slot of the queue's own, so that queues spread over the shards
    #: (docs/scaling.md). TaskTiger's workers read only the classic layout.
    cluster: bool = False
    #: Queue of tasks that name none.
    default_queue: str = "default"
    #: Run tasks at enqueue time in the calling process (scheduled tasks are still stored).
    always_eager: bool = False
    #: Queue (or subqueue) name -> how many tasks a batch task receives at once.
    batch_queues: Mapping[str, int] = attrs.field(factory=dict, converter=_batch_queues)
    #: Queues a worker serves when none are given on its command line (empty: all).
    only_queues: tuple[str, ...] = attrs.field(default=(), converter=_queue_names)
    #: Queues a worker skips when none are given on its command line.
    exclude_queues: tuple[str, ...] = attrs.field(default=(), converter=_queue_names)
    #: Retry policy of tasks with ``retry=True`` or ``retry_on`` and no policy of their own.
    default_retry: RetryPolicy = attrs.field(factory=lambda: Fixed(60, 3))
    #: A task that cannot take its lock runs again this much later.
    lock_retry: float = attrs.field(default=1.0, validator=_seconds)
    #: Hard timeout of tasks that set none.
    default_hard_timeout: float = attrs.field(default=300.0, validator=_seconds)
    #: How often a worker refreshes the heartbeat of the tasks it runs.
    active_task_update_timer: float = attrs.field(default=5.0, validator=_seconds)
    #: A task whose heartbeat is older than this is considered lost with its worker.
    active_task_update_timeout: float = attrs.field(default=20.0, validator=_seconds)
    #: How often a worker looks for lost tasks to requeue.
    requeue_expired_tasks_interval: float = attrs.field(default=5.0, validator=_seconds)
    #: How many lost tasks one requeue pass moves.
    requeue_expired_tasks_batch_size: int = attrs.field(default=100, validator=_non_negative_int)
    #: How many due scheduled tasks one pass moves to queued, per queue.
    scheduled_task_batch_size: int = attrs.field(default=1000, validator=_non_negative_int)
    #: How long an idle worker waits for activity before looking again.
    select_timeout: float = attrs.field(default=1.0, validator=_seconds)
    #: Store the traceback of failed tasks in their execution records.
    store_tracebacks: bool = True
    #: Context managers entered around every task, in the process that runs it.
    child_context_managers: tuple[Callable[[], AbstractContextManager[object]], ...] = ()
    #: Queues that at most one worker processes at a time.
    single_worker_queues: tuple[str, ...] = attrs.field(default=(), converter=_queue_names)
    #: How often an idle worker re-reads the list of non-empty queues.
    poll_task_queues_interval: float = attrs.field(default=5.0, validator=_seconds)
    #: Publish the queue name on the activity channel when a task is queued (wakes workers).
    publish_queued_tasks: bool = True
    #: How often a worker logs a ``stats`` line.
    stats_interval: float = attrs.field(default=60.0, validator=_seconds)
    #: How many times a task whose worker was lost is run again before it fails.
    max_worker_loss_retries: int = attrs.field(default=3, validator=_non_negative_int)
    #: Modules (and their submodules) whose functions, runner classes, retry functions and
    #: exception classes a worker may import from a payload, besides registered tasks and the
    #: modules its command line names (``--app``, ``-m``). None: no other module.
    allowed_task_modules: tuple[str, ...] | None = attrs.field(
        default=None, converter=_optional_prefixes
    )
    #: Import any function a payload names (TaskTiger's behaviour): an explicit opt-out of the
    #: allowlist above, logged as a warning when a worker starts.
    allow_any_module: bool = False
    #: After a hard timeout's SIGALRM, how long a task's child has before SIGKILL.
    hard_timeout_kill_grace: float = attrs.field(default=2.0, validator=_grace_seconds)
    #: How long a worker keeps retrying an unreachable storage before it exits non-zero
    #: (its in-flight tasks are then requeued by other workers when their heartbeat expires).
    storage_retry_deadline: float = attrs.field(default=300.0, validator=_seconds)
    #: Largest accepted task payload (JSON bytes); 0 disables the check.
    max_payload_bytes: int = attrs.field(default=16 * 1024 * 1024, validator=_non_negative_int)
    #: Longest rendering of task arguments put into a log line.
    log_args_max_chars: int = attrs.field(default=200, validator=_non_negative_int)

    def __attrs_post_init__(self) -> None:
        if not valid_queue_name(self.default_queue):
            raise ValueError(f"invalid default_queue {self.default_queue!r}")
        if self.active_task_update_timeout <= self.active_task_update_timer:
            raise ValueError(
                "active_task_update_timeout must be longer than active_task_update_timer, "
                f"got {self.active_task_update_timeout} <= {self.active_task_update_timer}"
            )

    def settings(self) -> dict[str, object]:
        """Every setting as a JSON value (for the worker's ``ready`` line and
        ``typedtiger worker --print-config``); callables and policies by name."""
        described: dict[str, object] = {}
        for field in attrs.fields(Config):
            value = getattr(self, field.name)
            if field.name == "child_context_managers":
                value = [getattr(cm, "__qualname__", repr(cm)) for cm in value]
            elif field.name == "default_retry":
                value = repr(value)
            elif isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, Mapping):
                value = dict(value)
            described[field.name] = value
        return described

    def batch_size_for(self, queue: str) -> int:
        """The batch size of ``queue``: its most specific entry in ``batch_queues``, else 1."""
        parts = queue.split(".")
        for end in range(len(parts), 0, -1):
            size = self.batch_queues.get(".".join(parts[:end]))
            if size is not None:
                return size
        return 1
