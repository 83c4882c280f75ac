"""What checking stored task data costs (issue 17): the claim script's server time for one task
by payload size, and decode_payload's time by payload shape.

    python -m bench.payload_checks [--url redis://127.0.0.1:6379/11]

The database is flushed around each claim. To compare with another commit, run the same
command with that commit's ``typedtiger`` first on PYTHONPATH (e.g. from a ``git worktree``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import timeit

import redis

import typedtiger
from typedtiger.backends.redis import RedisBackend
from typedtiger.serialization import decode_payload

ID = "a" * 64
CLAIMS = [("ascii", 1_000), ("ascii", 1_000_000), ("ascii", 10_000_000), ("utf8", 10_000_000)]


def _payload(args: list[object], ascii_only: bool = True) -> str:
    return json.dumps({"id": ID, "func": "m:f", "args": args}, ensure_ascii=ascii_only)


def claim_ms(client: redis.Redis[str], kind: str, size: int, rounds: int) -> float:
    """Median server time (ms, from INFO commandstats) of a claim of one task."""
    backend = RedisBackend(client)
    body = "x" * size if kind == "ascii" else "é" * (size // 2)
    times = []
    for _ in range(rounds):
        client.flushdb()
        client.set(f"t:task:{ID}", _payload([body], ascii_only=kind == "ascii"))
        client.zadd("t:queued:q", {ID: 1})
        client.sadd("t:queued", "q")
        client.config_resetstat()
        assert backend.claim("q", 2.0, 1)
        stats = client.info("commandstats")
        times.append(stats["cmdstat_evalsha"]["usec"] / 1000)
    client.flushdb()
    return statistics.median(times)


def decode_ms(text: str) -> float:
    """Best-of-5 time (ms) of decode_payload."""
    number = 2000 if len(text) < 10_000 else 5
    return min(timeit.repeat(lambda: decode_payload(text), number=number, repeat=5)) / number * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default="redis://127.0.0.1:6379/11")
    url = parser.parse_args().url
    client: redis.Redis[str] = redis.Redis.from_url(url, decode_responses=True, socket_timeout=60)
    for kind, size in CLAIMS:
        rounds = 7 if size >= 10_000_000 else 21
        took = claim_ms(client, kind, size, rounds)
        print(f"claim, {kind} payload of {size:>10,} bytes: {took:8.3f} ms")
    shapes = {
        "1 KB": _payload(["x" * 900]),
        "10 MB string": _payload(["x" * 10_000_000]),
        "10 MB non-ASCII string": _payload(["é" * 5_000_000], ascii_only=False),
        "100,000 integers": _payload([list(range(100_000))]),
        "10,000 small objects": _payload([[{"k": i, "v": "s"} for i in range(10_000)]]),
    }
    print(f"(typedtiger from {typedtiger.__file__})")
    for name, text in shapes.items():
        print(f"decode_payload, {name:<24}: {decode_ms(text):8.3f} ms")


if __name__ == "__main__":
    main()
