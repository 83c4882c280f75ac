"""The JSON values task arguments may hold, checked before anything is written."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from typedtiger.exceptions import ArgumentError

__all__ = ["JSONValue", "to_json_value"]

JSONValue = None | bool | int | float | str | list["JSONValue"] | dict[str, "JSONValue"]


def to_json_value(value: object, where: str) -> JSONValue:
    """``value`` as plain JSON data (tuples become lists), or ArgumentError naming ``where``.

    Refused: objects JSON has no type for, non-string dict keys (JSON would turn them into
    strings) and NaN/Infinity (not JSON).
    """
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ArgumentError(f"{where} is {value!r}; NaN and Infinity are not valid JSON")
        return value
    if isinstance(value, Mapping):
        result: dict[str, JSONValue] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ArgumentError(
                    f"{where} has the key {key!r} of type {type(key).__name__}; JSON object "
                    "keys must be strings"
                )
            result[key] = to_json_value(item, f"{where}[{key!r}]")
        return result
    if isinstance(value, list | tuple):
        return [to_json_value(item, f"{where}[{index}]") for index, item in enumerate(value)]
    raise ArgumentError(
        f"{where} is a {type(value).__module__}.{type(value).__qualname__}, which JSON cannot "
        "carry; pass plain data (str, int, float, bool, None, list, dict with str keys)"
    )


def json_args(args: Sequence[object]) -> tuple[JSONValue, ...]:
    """Positional task arguments as JSON data; ArgumentError names the first bad one."""
    return tuple(to_json_value(arg, f"argument {index}") for index, arg in enumerate(args))


def json_kwargs(kwargs: Mapping[str, object]) -> dict[str, JSONValue]:
    """Keyword task arguments as JSON data; ArgumentError names the first bad one."""
    return {key: to_json_value(value, f"keyword argument {key!r}") for key, value in kwargs.items()}
