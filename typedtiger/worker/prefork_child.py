"""A pool child's side of the PreforkExecutor: read Jobs, run each, report, until told to exit.

The child reads one Job a line (``encode_job``'s JSON, which never holds a raw newline) from its
job pipe, runs it like a fork-per-task child does (``child.run_in_child``: under the hard-timeout
alarm), and writes one line back: its resident set size in bytes after the job, a space, and the
Outcome as JSON (``encode_outcome``; never pickle). It exits 0 when the job pipe reaches EOF (the
executor closed it). It never writes to storage.
"""

from __future__ import annotations

import functools
import os
import resource
from collections.abc import Callable, Sequence
from typing import Final

from typedtiger.worker.child import run_in_child
from typedtiger.worker.executor import RunJob
from typedtiger.worker.job import Outcome, decode_job, encode_outcome, failed_from_exception
from typedtiger.worker.process import flush_std_streams, fork_process, write_all

__all__ = ["LINE_END", "fork_pool_child", "parse_report", "resident_bytes"]

#: Ends a job sent to a child, and a child's report.
LINE_END: Final = b"\n"


def fork_pool_child(
    run: RunJob,
    now: Callable[[], float],
    job_fd: int,
    report_fd: int,
    close_in_child: Sequence[int],
    cleanup: Callable[[], None],
) -> int:
    """Fork a pool child that reads jobs from ``job_fd`` and reports to ``report_fd``; its pid."""
    return fork_process(
        functools.partial(_serve, run, now, job_fd, report_fd), close_in_child, cleanup
    )


def _serve(run: RunJob, now: Callable[[], float], job_fd: int, report_fd: int) -> int:
    with os.fdopen(job_fd, "rb") as jobs:
        for line in jobs:
            started = now()
            outcome: Outcome
            try:
                job = decode_job(line)
            except Exception as exc:  # the executor encoded it: never expected
                outcome = failed_from_exception(exc, started, now(), True)
            else:
                outcome = run_in_child(job, run, now)
            flush_std_streams()  # the task's output, now rather than whenever this exits
            report = f"{resident_bytes()} {encode_outcome(outcome)}"
            write_all(report_fd, report.encode("utf-8") + LINE_END)
    os.close(report_fd)
    return 0


def resident_bytes() -> int:
    """This process's resident set size in bytes (Linux: /proc/self/statm; elsewhere its peak,
    from getrusage)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            pages = int(statm.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def parse_report(line: bytes) -> tuple[int, bytes]:
    """A child's report: (its resident bytes, the outcome's JSON). ValueError if malformed."""
    size, _, outcome = line.partition(b" ")
    return int(size), outcome
