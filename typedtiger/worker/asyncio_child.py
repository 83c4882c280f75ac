"""The asyncio executor's child: one event loop running every job it is sent, side by side.

The child reads one job a line from its job pipe (a sequence number, a space, ``encode_job``'s
JSON), starts an asyncio task for it right away, and when that ends writes one line back: the
same number, a space, and the Outcome as JSON. Each job runs under ``asyncio.timeout`` at its
hard timeout: the coroutine is cancelled and the job fails with JobTimeoutException. A coroutine
that blocks the loop cannot be cancelled; the parent's watchdog kills this process then. At EOF
on the job pipe (the executor closes it) the child lets its running jobs finish, then exits 0.
It never writes to storage.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Final

from typedtiger.worker.executor import RunJobAsync
from typedtiger.worker.job import (
    Outcome,
    decode_job,
    encode_outcome,
    failed_from_exception,
    timeout_failure,
)
from typedtiger.worker.process import flush_std_streams, write_all

__all__ = ["LINE_END", "parse_report", "serve"]

#: Ends a job sent to the child, and each of its reports.
LINE_END: Final = b"\n"
#: The longest job line the child reads (a payload is at most Config.max_payload_bytes).
_MAX_LINE: Final = 1 << 31


def serve(run: RunJobAsync, now: Callable[[], float], job_fd: int, report_fd: int) -> int:
    """The loop process's main (``process.fork_process`` runs it): serve jobs until EOF."""
    asyncio.run(_read_jobs(run, now, job_fd, report_fd))
    flush_std_streams()
    os.close(report_fd)
    return 0


async def _read_jobs(
    run: RunJobAsync, now: Callable[[], float], job_fd: int, report_fd: int
) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=_MAX_LINE)
    pipe = os.fdopen(job_fd, "rb", buffering=0)
    transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), pipe)
    running: set[asyncio.Task[None]] = set()
    try:
        while line := await reader.readline():
            sequence, _, data = line.rstrip(LINE_END).partition(b" ")
            task = asyncio.create_task(_run_one(run, now, sequence, data, report_fd))
            running.add(task)
            task.add_done_callback(running.discard)
        if running:
            await asyncio.wait(running)  # EOF: let the running jobs finish
    finally:
        transport.close()


async def _run_one(
    run: RunJobAsync, now: Callable[[], float], sequence: bytes, data: bytes, report_fd: int
) -> None:
    started = now()
    outcome: Outcome
    try:
        job = decode_job(data)
    except Exception as exc:  # the executor encoded it: never expected
        outcome = failed_from_exception(exc, started, now(), True)
    else:
        try:
            async with asyncio.timeout(job.hard_timeout):
                outcome = await run(job)
        except TimeoutError:  # (run reports the task's own exceptions in its outcome)
            outcome = timeout_failure(started, now(), job.hard_timeout)
        except BaseException as exc:  # a BaseException the runner let through
            outcome = failed_from_exception(exc, started, now(), job.store_traceback)
    report = sequence + b" " + encode_outcome(outcome).encode("utf-8") + LINE_END
    write_all(report_fd, report)


def parse_report(line: bytes) -> tuple[int, bytes]:
    """A report line: (the job's sequence number, the outcome's JSON). ValueError if malformed."""
    sequence, _, outcome = line.partition(b" ")
    return int(sequence), outcome
