"""Count a process's round trips to Redis, then run its entry point: ``python -m
bench.asyncio_sends OUT MODULE:FUNCTION [ARG...]``.

Used by bench.asyncio_run in every system's venv (it imports only the standard library and
redis-py, which each of them has). It wraps redis-py's ``send_packed_command``, sync and
asyncio: one call is one command sent, or one pipeline (one round trip either way). It then
runs ``MODULE:FUNCTION`` with ``sys.argv`` set to ``[FUNCTION, ARG...]`` as a console script
would, and at exit writes ``{"round_trips": N, "by_command": {...}}`` to OUT, each round trip
labelled with its first command (``MULTI`` for a transaction). A child forked by the process
does not write. Only for counting runs: the timed runs start each worker without it.
"""

from __future__ import annotations

import atexit
import collections
import importlib
import json
import os
import sys
from typing import Any

_sends: collections.Counter[str] = collections.Counter()


def _label(command: Any) -> str:
    first = command[0] if isinstance(command, (list, tuple)) and command else command
    if isinstance(first, memoryview):
        first = first.tobytes()
    if not isinstance(first, bytes):
        return "?"
    fields = first[:200].split(b"\r\n")  # *N, $len, NAME, ...
    return fields[2].decode("ascii", "replace").upper() if len(fields) > 2 else "?"


def _wrap(cls: Any) -> None:
    original = cls.send_packed_command

    def send_packed_command(self: Any, command: Any, *args: Any, **kwargs: Any) -> Any:
        _sends[_label(command)] += 1
        return original(self, command, *args, **kwargs)

    cls.send_packed_command = send_packed_command


def install(out: str) -> None:
    import redis.asyncio.connection
    import redis.connection

    _wrap(redis.connection.AbstractConnection)
    _wrap(redis.asyncio.connection.AbstractConnection)
    pid = os.getpid()

    def write() -> None:
        if os.getpid() == pid:
            with open(out, "w", encoding="utf8") as f:
                json.dump({"round_trips": sum(_sends.values()), "by_command": dict(_sends)}, f)

    atexit.register(write)


def main() -> None:
    out, entry, *args = sys.argv[1:]
    install(out)
    module, function = entry.split(":")
    sys.argv = [function, *args]
    sys.exit(getattr(importlib.import_module(module), function)())


if __name__ == "__main__":
    main()
