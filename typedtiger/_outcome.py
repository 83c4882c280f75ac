"""How a job ended: the values executors report (and a forked child sends through its pipe)."""

from __future__ import annotations

import attrs

from typedtiger.spec import RetryPolicy

__all__ = ["Failed", "Outcome", "Succeeded"]


@attrs.frozen(kw_only=True)
class Succeeded:
    """The task(s) returned normally."""

    time_started: float
    time_finished: float
    #: Whether the job's function, imported where the job ran, is a batch function (None: the
    #: worker had it, or the import failed): how a worker learns it without the import.
    batch_function: bool | None = None


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
