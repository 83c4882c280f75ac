"""Task results as stored: a finished task's return value (or its failure) kept for its
``result_ttl`` at ``<prefix>:task:<id>:result``, and the check, at decoration, that a task's
return annotation is something JSON carries back as the same type."""

from __future__ import annotations

import collections.abc
import types
import typing
from typing import Any, Final, Literal

import attrs

from typedtiger._json import JSONValue, to_json_value
from typedtiger.exceptions import PayloadError
from typedtiger.serialization import ExecutionRecord, decode_execution, dumps, loads

__all__ = [
    "StoredResult",
    "decode_result",
    "encode_value",
    "failure_text",
    "result_type_problem",
    "success_text",
]

_SCALARS: Final = (type(None), bool, int, float, str)
_SEQUENCES: Final = (list, collections.abc.Sequence, collections.abc.MutableSequence)
_MAPPINGS: Final = (dict, collections.abc.Mapping, collections.abc.MutableMapping)


@attrs.frozen(kw_only=True)
class StoredResult:
    """A finished task's outcome as kept: its value, or the execution that failed for good."""

    #: When the result stops being kept (epoch seconds, compared with the Clock's now).
    expires: float
    value: JSONValue = None
    failed: ExecutionRecord | None = None


def encode_value(value: object, func: str) -> str:
    """A task's return value as JSON text; ArgumentError if JSON cannot carry it."""
    return dumps(to_json_value(value, f"the result of {func}"))


def success_text(value_json: str, expires: float) -> str:
    """What is stored for a task that returned the value ``value_json`` (JSON text)."""
    return f'{{"expires":{expires!r},"value":{value_json}}}'


def failure_text(execution_json: str, expires: float) -> str:
    """What is stored for a task that failed for good with this execution record (JSON)."""
    return f'{{"expires":{expires!r},"failed":{execution_json}}}'


def decode_result(text: str) -> StoredResult:
    """Read a stored result; PayloadError if it is not one."""
    data = loads(text, "task result")
    expires = data.get("expires")
    if not isinstance(expires, int | float) or isinstance(expires, bool):
        raise PayloadError(f"task result: 'expires' is {expires!r}, not a time")
    if "failed" in data:
        return StoredResult(expires=expires, failed=decode_execution(dumps(data["failed"])))
    if "value" not in data:
        raise PayloadError("task result has neither 'value' nor 'failed'")
    return StoredResult(expires=expires, value=data["value"])


def result_type_problem(annotation: object, where: str = "the return type") -> str | None:
    """Why a task returning ``annotation`` cannot keep its result (JSON would not give back a
    value of that type), or None. What cannot be told (a forward reference, ``Any``) passes."""
    if annotation in (None, Any, object) or annotation in _SCALARS:
        return None
    if isinstance(annotation, str | typing.ForwardRef | typing.TypeVar):
        return None
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return next(filter(None, (result_type_problem(arg, where) for arg in args)), None)
    if origin is Literal:
        if all(isinstance(arg, _SCALARS) for arg in args):
            return None
        return f"{where} {annotation!r} has values JSON does not carry"
    if origin in (typing.Annotated, typing.Final):
        return result_type_problem(args[0], where)
    if origin in _SEQUENCES:
        return result_type_problem(args[0], f"{where}'s items") if args else None
    if origin in _MAPPINGS or annotation in _MAPPINGS or annotation in _SEQUENCES:
        if args and args[0] is not str:
            return f"{where} {annotation!r} has keys that are not str (JSON's are)"
        return result_type_problem(args[1], f"{where}'s values") if args else None
    if typing.is_typeddict(annotation):
        hints = typing.get_type_hints(annotation)
        return next(
            filter(None, (result_type_problem(t, f"{where}.{k}") for k, t in hints.items())), None
        )
    if origin is tuple or annotation is tuple:
        return f"{where} {annotation!r} comes back from JSON as a list: annotate list[...]"
    return f"{where} {annotation!r} is not a JSON type (None, bool, int, float, str, list, dict)"
