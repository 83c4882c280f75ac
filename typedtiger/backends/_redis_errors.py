"""redis-py's errors as typedtiger's: an outage (BackendUnavailable), bad data in one key or
task (StorageDataError), or anything else (TypedTigerError)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Final, ParamSpec, TypeVar

import redis.exceptions

from typedtiger.exceptions import BackendUnavailable, StorageDataError, TypedTigerError

__all__ = ["redis_call", "translate_error", "translated_errors"]

P = ParamSpec("P")
R = TypeVar("R")

#: Replies that mean Redis cannot serve now but may soon (redis-py maps some of these to
#: classes and strips the code from the message; the codes cover the rest and fakeredis).
_OUTAGE_CLASSES: Final = (
    redis.exceptions.ConnectionError,  # also LOADING (BusyLoadingError) and auth failures
    redis.exceptions.TimeoutError,
    redis.exceptions.ReadOnlyError,  # a replica (after a failover) refuses writes
    # (types-redis lags redis-py, which has had it since 4.3)
    redis.exceptions.OutOfMemoryError,  # type: ignore[attr-defined]  # maxmemory, noeviction
    redis.exceptions.MasterDownError,
    redis.exceptions.TryAgainError,
    redis.exceptions.ClusterDownError,
)
_OUTAGE_CODES: Final = (
    "READONLY",
    "LOADING",
    "BUSY",  # a script or module command runs too long
    "MASTERDOWN",
    "OOM",
    "MISCONF",  # writes refused after a failed RDB save
    "NOREPLICAS",  # min-replicas-to-write not met
    "TRYAGAIN",
    "CLUSTERDOWN",
    "command not allowed when used memory",
)
#: Replies that mean one key or task holds data of the wrong type or form (redis-py strips
#: "ERR "). A Lua runtime error (Redis: "user_script:<line>: ...", fakeredis: "Error running
#: script ...") comes from a stored value the script could not use.
_DATA_CODES: Final = (
    "WRONGTYPE",
    "value is not an integer",
    "value is not a valid float",
    "increment or decrement would overflow",
    "user_script:",
    "Error running script",
    "TASKDATA",  # a script's own refusal of one task's stored data
)


def translate_error(exc: redis.exceptions.RedisError, key: str | None = None) -> TypedTigerError:
    """typedtiger's error for a redis-py error: BackendUnavailable (try again later),
    StorageDataError (one key or task is bad) or TypedTigerError (a bug, or a setup Redis
    refuses, such as a missing ACL permission). ``key``: the one key the command read."""
    message = str(exc) if key is None else f"{exc} (key {key})"
    if isinstance(exc, _OUTAGE_CLASSES) or message.startswith(_OUTAGE_CODES):
        return BackendUnavailable(f"Redis is unavailable: {message}")
    if "UNDECLARED key" in message:  # a script's key the caller did not send in KEYS: a bug
        return TypedTigerError(f"Redis error: {message}")
    if message.startswith(_DATA_CODES):
        return StorageDataError(f"bad data in Redis: {message}")
    return TypedTigerError(f"Redis error: {message}")


@contextmanager
def translated_errors() -> Iterator[None]:
    try:
        yield
    except redis.exceptions.RedisError as exc:
        raise translate_error(exc) from exc


def redis_call(method: Callable[P, R]) -> Callable[P, R]:
    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with translated_errors():
            return method(*args, **kwargs)

    return wrapper
