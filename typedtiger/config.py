"""Config: every setting typedtiger reads, typed, with TaskTiger-like defaults."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager

import attrs

from typedtiger.spec import Fixed, RetryPolicy, _valid_queue_name

__all__ = ["Config"]


def _positive(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if isinstance(value, bool) or value <= 0:
        raise ValueError(f"Config.{attribute.name} must be > 0, got {value!r}")


def _non_negative_int(_: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"Config.{attribute.name} must be an integer >= 0, got {value!r}")


def _queue_names(value: Sequence[str]) -> tuple[str, ...]:
    if isinstance(value, str):
        raise TypeError("queue lists take a sequence of queue names, not a single string")
    names = tuple(value)
    for name in names:
        if not _valid_queue_name(name):
            raise ValueError(f"invalid queue name {name!r}")
    return names


def _batch_queues(value: Mapping[str, int]) -> Mapping[str, int]:
    checked = dict(value)
    for name, size in checked.items():
        if not _valid_queue_name(name):
            raise ValueError(f"invalid queue name {name!r} in batch_queues")
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"batch_queues[{name!r}] must be a positive integer, got {size!r}")
    return checked


def _optional_prefixes(value: Sequence[str] | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        raise TypeError("allowed_task_modules takes a sequence of module names")
    return tuple(value)


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
    lock_retry: float = attrs.field(default=1.0, validator=_positive)
    #: Hard timeout of tasks that set none.
    default_hard_timeout: float = attrs.field(default=300.0, validator=_positive)
    #: How often a worker refreshes the heartbeat of the tasks it runs.
    active_task_update_timer: float = attrs.field(default=5.0, validator=_positive)
    #: A task whose heartbeat is older than this is considered lost with its worker.
    active_task_update_timeout: float = attrs.field(default=20.0, validator=_positive)
    #: How often a worker looks for lost tasks to requeue.
    requeue_expired_tasks_interval: float = attrs.field(default=5.0, validator=_positive)
    #: How many lost tasks one requeue pass moves.
    requeue_expired_tasks_batch_size: int = attrs.field(default=100, validator=_non_negative_int)
    #: How many due scheduled tasks one pass moves to queued, per queue.
    scheduled_task_batch_size: int = attrs.field(default=1000, validator=_non_negative_int)
    #: How long an idle worker waits for activity before looking again.
    select_timeout: float = attrs.field(default=1.0, validator=_positive)
    #: Store the traceback of failed tasks in their execution records.
    store_tracebacks: bool = True
    #: Context managers entered around every task, in the process that runs it.
    child_context_managers: tuple[Callable[[], AbstractContextManager[object]], ...] = ()
    #: Queues that at most one worker processes at a time.
    single_worker_queues: tuple[str, ...] = attrs.field(default=(), converter=_queue_names)
    #: How often an idle worker re-reads the list of non-empty queues.
    poll_task_queues_interval: float = attrs.field(default=5.0, validator=_positive)
    #: Publish the queue name on the activity channel when a task is queued (wakes workers).
    publish_queued_tasks: bool = True
    #: How often a worker logs a ``stats`` line.
    stats_interval: float = attrs.field(default=60.0, validator=_positive)
    #: How many times a task whose worker was lost is run again before it fails.
    max_worker_loss_retries: int = attrs.field(default=3, validator=_non_negative_int)
    #: When set, workers only import task functions, runner classes, retry functions and
    #: exception classes from these modules (and their submodules) or registered tasks.
    allowed_task_modules: tuple[str, ...] | None = attrs.field(
        default=None, converter=_optional_prefixes
    )
    #: Largest accepted task payload (JSON bytes); 0 disables the check.
    max_payload_bytes: int = attrs.field(default=16 * 1024 * 1024, validator=_non_negative_int)
    #: Longest rendering of task arguments put into a log line.
    log_args_max_chars: int = attrs.field(default=200, validator=_non_negative_int)

    def __attrs_post_init__(self) -> None:
        if not _valid_queue_name(self.default_queue):
            raise ValueError(f"invalid default_queue {self.default_queue!r}")
        if self.active_task_update_timeout <= self.active_task_update_timer:
            raise ValueError(
                "active_task_update_timeout must be longer than active_task_update_timer, "
                f"got {self.active_task_update_timeout} <= {self.active_task_update_timer}"
            )

    def batch_size_for(self, queue: str) -> int:
        """The batch size of ``queue``: its most specific entry in ``batch_queues``, else 1."""
        parts = queue.split(".")
        for end in range(len(parts), 0, -1):
            size = self.batch_queues.get(".".join(parts[:end]))
            if size is not None:
                return size
        return 1
