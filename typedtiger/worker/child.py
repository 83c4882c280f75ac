"""A job's process, from its side: run the job under its hard timeout, report, exit.

It never writes to storage: the outcome goes to the worker as JSON (never pickle) through the
pipe the ForkExecutor gave it, followed by OUTCOME_END.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from typing import Final

from typedtiger.worker.executor import RunJob, run_under_alarm
from typedtiger.worker.job import Job, Outcome, encode_outcome, failed_from_exception
from typedtiger.worker.process import fork_process, write_all

__all__ = ["OUTCOME_END", "fork_job_process", "run_in_child"]

#: Ends a child's outcome (JSON text, which never holds a raw newline) on its pipe.
OUTCOME_END: Final = b"\n"


def fork_job_process(
    job: Job,
    run: RunJob,
    now: Callable[[], float],
    write_fd: int,
    close_in_child: Sequence[int],
    cleanup: Callable[[], None],
) -> int:
    """Fork the process that runs ``job`` and writes its outcome to ``write_fd``; its pid."""
    return fork_process(
        functools.partial(_report, job, run, now, write_fd), close_in_child, cleanup
    )


def _report(job: Job, run: RunJob, now: Callable[[], float], write_fd: int) -> int:
    outcome = run_in_child(job, run, now)
    write_all(write_fd, encode_outcome(outcome).encode("utf-8") + OUTCOME_END)
    os.close(write_fd)  # EOF now: the parent need not wait for the exit to finish
    return 0


def run_in_child(job: Job, run: RunJob, now: Callable[[], float]) -> Outcome:
    """Run ``job`` under its hard-timeout alarm; how it ended, whatever it raised."""
    started = now()
    try:
        return run_under_alarm(job, run, now)
    except BaseException as exc:  # a BaseException the runner let through (KeyboardInterrupt)
        return failed_from_exception(exc, started, now(), job.store_traceback)
