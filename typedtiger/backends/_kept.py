"""The values of the Backend protocol about a task's result: a result to keep and what a
waiter finds. Re-exported by ``backends.base``."""

from __future__ import annotations

import attrs

__all__ = ["KeptResult", "ResultProbe"]


@attrs.frozen
class KeptResult:
    """A finished task's outcome to keep for ``Task.result()``: the text stored (see
    typedtiger/_results.py) and how long storage holds it (a garbage-collection backstop: the
    text says when it expires)."""

    task_id: str
    text: str
    keep_for: float


@attrs.frozen(kw_only=True)
class ResultProbe:
    """What became of a task whose result is asked for."""

    #: The stored result text (see typedtiger/_results.py), or None.
    result: str | None
    #: Whether the task's payload is still stored (it is waiting, running or errored).
    stored: bool
    #: The latest execution record (encoded) of a task in the error state, with no result.
    last_execution: str | None = None

    @property
    def pending(self) -> bool:
        """Whether the task may still finish: stored, neither errored nor with a result."""
        return self.result is None and self.stored and self.last_execution is None
