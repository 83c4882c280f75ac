"""The JSON values task arguments may hold, checked before anything is written and again when a
stored payload is read (another writer, a bug or an operator may have stored anything)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Final

from typedtiger.exceptions import ArgumentError

__all__ = [
    "MAX_DEPTH",
    "MAX_INT",
    "MIN_INT",
    "JSONValue",
    "document_problem",
    "json_problem",
    "text_problem",
    "to_json_value",
]

JSONValue = None | bool | int | float | str | list["JSONValue"] | dict[str, "JSONValue"]

#: The deepest nesting of lists and objects accepted (an argument is one level): every reader
#: walks it recursively, and json.loads itself gives up near 1,000 levels.
MAX_DEPTH: Final = 100
#: Integers are 64-bit signed: Redis, Lua and other JSON readers fail or round beyond.
MIN_INT: Final = -(2**63)
MAX_INT: Final = 2**63 - 1


def _scalar_problem(value: object) -> str | None:
    """Why a JSON scalar cannot travel (UTF-8 and JSON readers refuse it), or None."""
    if isinstance(value, str):
        return None if value.isascii() else _surrogate_problem(value)
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        if not MIN_INT <= value <= MAX_INT:
            return f"is the integer {_short_int(value)}, outside 64-bit signed range"
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return f"is {value!r}; NaN and Infinity are not valid JSON"
    return None


def _surrogate_problem(text: str) -> str | None:
    try:
        text.encode("utf-8")  # (finds one faster than a regex would)
    except UnicodeEncodeError as exc:
        found = text[exc.start]
        return f"holds the lone surrogate {found!r} at index {exc.start}, which UTF-8 cannot carry"
    return None


def text_problem(text: str) -> str | None:
    """Why JSON text read from storage cannot be UTF-8: the bytes a decoder refused, kept as
    lone surrogates (``surrogateescape``), or None."""
    if text.isascii():
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        code = ord(text[exc.start])
        what = f"byte 0x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"U+{code:04X}"
        return f"is not valid UTF-8 ({what} at character {exc.start})"
    return None


def _short_int(value: int) -> str:
    # (str() of a huge int is slow, and refused past 4,300 digits)
    return str(value) if value.bit_length() <= 128 else f"of {value.bit_length()} bits"


def _too_deep(where: str) -> str:
    return f"{where} is nested more than {MAX_DEPTH} levels deep"


def to_json_value(value: object, where: str, depth: int = 1) -> JSONValue:
    """``value`` as plain JSON data (tuples become lists), or ArgumentError naming ``where``.

    Refused: objects JSON has no type for, non-string dict keys (JSON would turn them into
    strings), NaN/Infinity (not JSON), integers outside 64 bits signed, strings with lone
    surrogates (not UTF-8) and nesting deeper than MAX_DEPTH.
    """
    if value is None or isinstance(value, bool | int | float | str):
        problem = _scalar_problem(value)
        if problem is not None:
            raise ArgumentError(f"{where} {problem}")
        return value
    if depth > MAX_DEPTH:
        raise ArgumentError(_too_deep(where))
    if isinstance(value, Mapping):
        result: dict[str, JSONValue] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ArgumentError(
                    f"{where} has the key {key!r} of type {type(key).__name__}; JSON object "
                    "keys must be strings"
                )
            problem = _scalar_problem(key)
            if problem is not None:
                raise ArgumentError(f"{where} has a key that {problem}")
            result[key] = to_json_value(item, f"{where}[{key!r}]", depth + 1)
        return result
    if isinstance(value, list | tuple):
        return [
            to_json_value(item, f"{where}[{index}]", depth + 1) for index, item in enumerate(value)
        ]
    raise ArgumentError(
        f"{where} is a {type(value).__module__}.{type(value).__qualname__}, which JSON cannot "
        "carry; pass plain data (str, int, float, bool, None, list, dict with str keys)"
    )


def json_problem(value: object, where: str, depth: int = 1) -> str | None:
    """What makes decoded JSON data unfit (what ``to_json_value`` refuses), naming its path
    from ``where``; None if nothing. ``depth`` counts as at enqueue: an argument is level 1."""
    if isinstance(value, dict | list) and depth > MAX_DEPTH:
        return _too_deep(where)
    if isinstance(value, dict):
        for key, item in value.items():
            if not key.isascii() and (problem := _scalar_problem(key)) is not None:
                return f"{where} has a key that {problem}"
            if _plain(item):
                continue
            problem = json_problem(item, f"{where}[{key!r}]", depth + 1)
            if problem is not None:
                return problem
        return None
    if isinstance(value, list):
        for index, item in enumerate(value):
            if _plain(item):
                continue
            problem = json_problem(item, f"{where}[{index}]", depth + 1)
            if problem is not None:
                return problem
        return None
    problem = _scalar_problem(value)
    return None if problem is None else f"{where} {problem}"


def _plain(value: object) -> bool:
    """A scalar nothing is wrong with, told without a call per item (the common case)."""
    if type(value) is str:
        return value.isascii()
    if type(value) is int:
        return MIN_INT <= value <= MAX_INT
    return value is None or type(value) is bool


def document_problem(document: dict[str, object], what: str) -> str | None:
    """``json_problem`` for each field of a stored JSON object (a payload's ``args`` list is at
    level 0, so each argument is at level 1, as at enqueue)."""
    for key, value in document.items():
        problem = _scalar_problem(key)
        if problem is not None:
            return f"{what} has a field name that {problem}"
        problem = json_problem(value, f"{what}.{key}", 0)
        if problem is not None:
            return problem
    return None


def json_args(args: Sequence[object]) -> tuple[JSONValue, ...]:
    """Positional task arguments as JSON data; ArgumentError names the first bad one."""
    return tuple(to_json_value(arg, f"argument {index}") for index, arg in enumerate(args))


def json_kwargs(kwargs: Mapping[str, object]) -> dict[str, JSONValue]:
    """Keyword task arguments as JSON data; ArgumentError names the first bad one."""
    return {key: to_json_value(value, f"keyword argument {key!r}") for key, value in kwargs.items()}
