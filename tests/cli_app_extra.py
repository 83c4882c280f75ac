"""Undecorated functions of a module that tests/cli_app.py's Config allows."""

from __future__ import annotations

import redis

from tests.cli_app import RAN, URL


def record(text: str) -> None:
    """Reports ``text`` to the list the CLI tests read."""
    client = redis.Redis.from_url(URL, decode_responses=True)
    client.rpush(RAN, f"record {text}")
    client.close()
