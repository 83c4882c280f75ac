"""The suite's own helpers for processes: a redis-server of a test's own, scaled waits."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import redis

from tests.redis_server import (
    PORTS_VARIABLE,
    RedisServer,
    RedisServerError,
    free_port,
    own_redis_server,
    port_is_free,
)
from tests.waiting import TIME_SCALE_VARIABLE, scaled, time_scale, wait_until


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    except ConnectionRefusedError:
        return False
    return True


def test_own_server_answers_on_its_port_until_stopped(own_redis: RedisServer) -> None:
    client: redis.Redis[str] = redis.Redis.from_url(own_redis.url(3), decode_responses=True)
    client.set("k", "v")
    assert client.get("k") == "v"
    assert not port_is_free(own_redis.port)
    client.close()
    own_redis.stop()
    assert not _listening(own_redis.port)


def test_a_restart_keeps_the_port_and_the_appended_data(own_redis: RedisServer) -> None:
    assert own_redis.client is not None
    own_redis.client.set("k", "v")
    port = own_redis.port
    own_redis.shutdown()  # SHUTDOWN fsyncs the append-only file
    own_redis.start()
    assert own_redis.port == port
    assert own_redis.client.get("k") == "v"  # the same client reconnects


def test_shutdown_refuses_a_server_it_did_not_start(own_redis: RedisServer, tmp_path: Path) -> None:
    with own_redis_server(tmp_path / "other") as other:
        assert other.client is not None
        own_redis.client = other.client  # as if another server had taken the port
        with pytest.raises(RedisServerError, match="not the one started here"):
            own_redis.shutdown()
        assert other.client.ping()


def test_ports_come_from_the_range_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PORTS_VARIABLE, "27000-27099")
    assert all(27000 <= free_port() <= 27099 for _ in range(20))
    for bad in ("80-90", "x-y", "30000-29000"):
        monkeypatch.setenv(PORTS_VARIABLE, bad)
        with pytest.raises(RedisServerError, match=PORTS_VARIABLE):
            free_port()


def test_the_time_scale_multiplies_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TIME_SCALE_VARIABLE, "2.5")
    assert time_scale() == 2.5 and scaled(2) == 5
    monkeypatch.setenv(TIME_SCALE_VARIABLE, "")
    assert time_scale() == 1
    for bad in ("fast", "0.5", "nan"):
        monkeypatch.setenv(TIME_SCALE_VARIABLE, bad)
        with pytest.raises(ValueError, match=TIME_SCALE_VARIABLE):
            time_scale()


def test_wait_until_names_what_it_waited_for(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TIME_SCALE_VARIABLE, "1")
    with pytest.raises(AssertionError, match=r"after 0\.05 s waiting for the moon"):
        wait_until(lambda: False, 0.05, "the moon")
