"""What happens after a failed execution: a pure decision, no I/O."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import attrs

from typedtiger._allowlist import Allowlist
from typedtiger.backends.base import TaskState
from typedtiger.exceptions import StopRetry, TaskImportError
from typedtiger.serialization import JOB_TIMEOUT_NAME, JOB_TIMEOUT_NAMES, TaskPayload
from typedtiger.spec import Custom, RetryPolicy
from typedtiger.worker.job import Failed

__all__ = ["Decision", "decide"]


@attrs.frozen
class Decision:
    """Where a failed task goes: ERROR, SCHEDULED (retry at ``when``) or None (removed)."""

    to_state: TaskState | None
    when: float
    log_error: bool
    retry_delay: float | None = None
    reason: str | None = None


def _normalised(name: str) -> str:
    return JOB_TIMEOUT_NAME if name in JOB_TIMEOUT_NAMES else name


#: A task's process that died without reporting (killed by a signal, or exited) also matches a
#: ``retry_on`` naming the hard timeout, as in TaskTiger: it records such a death as a
#: JobTimeoutException, and its users rely on ``retry_on=[JobTimeoutException]`` to re-run
#: crashed tasks. The record keeps the true cause (ChildProcessDied).
_CHILD_DIED_NAME: Final = "typedtiger.exceptions:ChildProcessDied"


def retry_on_names(failed: Failed) -> tuple[str, ...]:
    """The class names a failure matches ``retry_on`` against."""
    if failed.exception_name == _CHILD_DIED_NAME:
        return (*failed.exception_mro, JOB_TIMEOUT_NAME)
    return failed.exception_mro


def matches_retry_on(exception_mro: Sequence[str], retry_on: Sequence[str]) -> bool:
    """Whether the failure's class (or a base of it) is one of ``retry_on``."""
    wanted = {_normalised(name) for name in retry_on}
    return any(_normalised(name) in wanted for name in exception_mro)


#: How a task whose function cannot be imported where it runs fails (no retry policy applies).
_IMPORT_ERROR: Final = f"{TaskImportError.__module__}:{TaskImportError.__qualname__}"

#: Exception modules a ``retry_on`` may always name under an allowlist (nothing is imported).
_ALWAYS_ALLOWED_EXCEPTIONS: Final = ("builtins", "typedtiger.exceptions", "tasktiger.exceptions")


def check_names(payload: TaskPayload, allowlist: Allowlist) -> None:
    """TaskImportError when ``allowlist`` refuses a name in ``payload`` besides its function
    (checked on import): its runner class, custom retry function, retry_on classes."""
    if payload.runner_class is not None:
        allowlist.check(payload.runner_class, "runner class")
    if isinstance(payload.retry_method, Custom):
        allowlist.check(payload.retry_method.func, "retry function")
    exceptions = allowlist.with_modules(_ALWAYS_ALLOWED_EXCEPTIONS)
    for name in payload.retry_on or ():
        exceptions.check(name, "retry_on class")


def decide(
    payload: TaskPayload,
    failed: Failed,
    retry_number: int,
    now: float,
    default_retry: RetryPolicy,
    allowlist: Allowlist,
) -> Decision:
    """Retry (and when) or give up, as TaskTiger does.

    A RetryException retries with its own policy, else the task's, else ``default_retry``.
    Otherwise a task with a policy retries unless ``retry_on`` is set and does not match.
    ``retry_number`` counts every failed execution including this one. Giving up moves the
    task to ERROR, or removes it when the RetryException said ``log_error=False``.
    """
    if failed.exception_name == _IMPORT_ERROR:  # its function cannot be had: a retry would loop
        return Decision(TaskState.ERROR, now, log_error=True)
    policy: RetryPolicy | None
    if isinstance(failed.retry_method, Custom):
        # named by the RetryException of task code the allowlist already let run
        allowlist = allowlist.vouching([failed.retry_method.func])
    if failed.retry_requested:
        policy = failed.retry_method or payload.retry_method or default_retry
    elif payload.retry_method is not None and (
        not payload.retry_on or matches_retry_on(retry_on_names(failed), payload.retry_on)
    ):
        policy = payload.retry_method
    else:
        policy = None
    give_up = Decision(
        TaskState.ERROR if failed.log_error else None, now, log_error=failed.log_error
    )
    if policy is None:
        return give_up
    try:
        if isinstance(policy, Custom):
            delay = policy.delay_for(retry_number, allowlist)
        else:
            delay = policy.delay_for(retry_number)
    except StopRetry:
        return give_up
    except Exception as exc:  # a custom policy that cannot be imported or fails
        return attrs.evolve(give_up, reason=f"retry policy {policy!r} failed: {exc!r}")
    return Decision(TaskState.SCHEDULED, now + delay, log_error=False, retry_delay=delay)
