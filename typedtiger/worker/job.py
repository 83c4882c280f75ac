"""The values an executor deals in: a Job (what to run) and its Outcome (how it ended).

Both are plain data, encoded by serialization's one converter: a Job names its function, runner
class and tasks (ids and payloads) and holds no live Tiger, Task, runner, clock or backend, so
whoever runs it rebuilds those where it runs (``resolve.Resolver``). A forked child sends its
Outcome to the worker as JSON through a pipe (``encode_outcome``/``decode_outcome``).
"""

from __future__ import annotations

import functools
import traceback
import typing
from typing import Any

import attrs

from typedtiger import serialization
from typedtiger.exceptions import JobTimeoutException, PayloadError, RetryException
from typedtiger.serialization import JOB_TIMEOUT_NAME, TaskPayload
from typedtiger.spec import RetryPolicy

if typing.TYPE_CHECKING:
    import cattrs

__all__ = [
    "Failed",
    "Job",
    "Outcome",
    "Succeeded",
    "decode_job",
    "decode_outcome",
    "encode_job",
    "encode_outcome",
    "failed_from_exception",
    "timeout_failure",
]


@attrs.frozen(kw_only=True)
class Job:
    """One unit of work: a single task, or a batch of one ``batch=True`` function.

    ``batch`` None: the worker has not imported the function, so whether it is a batch function
    is known only where the job runs (which imports it; the Outcome's ``batch_function`` tells
    the worker). Such a job has one task, run as a batch of one if the function is a batch
    function. A job of several tasks (``batch`` True) fails if its function is no longer one.
    """

    queue: str
    #: The function, as "module:qualname".
    func: str
    batch: bool | None
    hard_timeout: float
    #: The runner class's "module:qualname" (None: DefaultRunner).
    runner_class: str | None = None
    store_traceback: bool = True
    tasks: tuple[TaskPayload, ...]


@attrs.frozen(kw_only=True)
class Succeeded:
    """The task(s) returned normally."""

    time_started: float
    time_finished: float
    #: Whether the job's function, imported where the job ran, is a batch function (None: the
    #: worker knew, or the import failed): how a worker learns it without the import.
    batch_function: bool | None = None
    #: The return value as JSON text, for a task that keeps its result (``result_ttl``).
    result: str | None = None


@attrs.frozen(kw_only=True)
class Failed:
    """The task(s) raised, timed out or their process died."""

    time_started: float
    time_failed: float
    #: "module:qualname" of the exception class (a hard timeout: TaskTiger's name).
    exception_name: str
    #: The names of every class in the exception's MRO, for ``retry_on`` matching.
    exception_mro: tuple[str, ...]
    message: str
    traceback: str | None = None
    #: A RetryException was raised: retry whatever ``retry_on`` says.
    retry_requested: bool = False
    retry_method: RetryPolicy | None = None
    log_error: bool = True
    #: As ``Succeeded.batch_function``.
    batch_function: bool | None = None


Outcome = Succeeded | Failed


def _class_name(cls: type) -> str:
    if cls is JobTimeoutException:
        return JOB_TIMEOUT_NAME
    return f"{cls.__module__}:{cls.__qualname__}"


def failed_from_exception(
    exc: BaseException, time_started: float, time_failed: float, store_traceback: bool
) -> Failed:
    """The Failed outcome describing ``exc``."""
    names = tuple(_class_name(cls) for cls in type(exc).__mro__)
    shown: BaseException = exc
    if isinstance(exc, RetryException) and exc.original_traceback and exc.__context__ is not None:
        shown = exc.__context__
    retry = exc if isinstance(exc, RetryException) else None
    return Failed(
        time_started=time_started,
        time_failed=time_failed,
        exception_name=names[0],
        exception_mro=names,
        message=str(exc),
        traceback="".join(traceback.format_exception(shown)) if store_traceback else None,
        retry_requested=retry is not None,
        retry_method=None if retry is None else retry.method,
        log_error=True if retry is None else retry.log_error,
    )


def timeout_failure(time_started: float, time_failed: float, hard_timeout: float) -> Failed:
    """The Failed outcome of a task stopped at its hard timeout."""
    return failed_from_exception(
        JobTimeoutException(f"the task exceeded its hard timeout of {hard_timeout:g} s"),
        time_started,
        time_failed,
        store_traceback=False,
    )


# --- the codec: serialization's converter, with Outcome as a union tagged by "kind" ------------


@functools.cache
def _codec() -> cattrs.Converter:
    """The converter, taught Outcome once and warmed (a forked child then finds every hook
    generated: the executor calls ``warm`` before it forks)."""
    from cattrs.strategies import configure_tagged_union

    converter = serialization.converter()
    configure_tagged_union(
        Outcome, converter, tag_generator=lambda cls: cls.__name__.lower(), tag_name="kind"
    )
    samples: tuple[object, ...] = (
        Succeeded(time_started=0, time_finished=0),
        Failed(time_started=0, time_failed=0, exception_name="", exception_mro=(), message=""),
    )
    outcome: Any = Outcome  # (a union, which mypy does not take for a type)
    for sample in samples:
        converter.structure(converter.unstructure(sample, outcome), outcome)
    job = Job(queue="", func="", batch=None, hard_timeout=1, tasks=(TaskPayload(id="", func=""),))
    converter.structure(converter.unstructure(job), Job)
    for sample in samples:  # structuring may register hooks lazily, which clears the caches
        converter.unstructure(sample, outcome)
    converter.unstructure(job)
    return converter


def warm() -> None:
    """Build the codec's hooks now (in a parent about to fork children that encode)."""
    _codec()


def encode_outcome(outcome: Outcome) -> str:
    """An Outcome as JSON: its fields and ``"kind": "succeeded" | "failed"``."""
    return serialization.dumps(_codec().unstructure(outcome, Outcome))


def decode_outcome(text: str | bytes) -> Outcome:
    """Read what ``encode_outcome`` wrote; PayloadError if it is not that."""
    data = serialization.loads(text, "outcome")
    if data.get("kind") not in ("succeeded", "failed"):
        raise PayloadError(f"outcome: 'kind' is {data.get('kind')!r}, not succeeded or failed")
    _codec()
    cls: Any = Outcome
    outcome: Outcome = serialization.structure(data, cls, "outcome")
    return outcome


def encode_job(job: Job) -> str:
    """A Job as JSON (its tasks' payloads in their stored form)."""
    return serialization.dumps(_codec().unstructure(job))


def decode_job(text: str | bytes) -> Job:
    """Read what ``encode_job`` wrote; PayloadError names what is wrong."""
    data = serialization.loads(text, "job", task_data=True)
    _codec()
    return serialization.structure(data, Job, "job")
