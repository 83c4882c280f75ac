"""Functions and classes by name: "module:qualname", as stored in task payloads."""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable

from typedtiger.exceptions import JobTimeoutException, TaskImportError

__all__ = ["import_qualified", "qualified_name", "split_name"]


_NAMES: dict[object, str] = {}


def qualified_name(obj: Callable[..., object] | type) -> str:
    """The "module:qualname" a worker imports ``obj`` by; refuses what no worker could import."""
    try:
        return _NAMES[obj]
    except (KeyError, TypeError):  # not seen yet, or unhashable
        name = _qualified_name(obj)
    if len(_NAMES) < 4096:
        with contextlib.suppress(TypeError):
            _NAMES[obj] = name
    return name


def _qualified_name(obj: Callable[..., object] | type) -> str:
    target: object = getattr(obj, "__wrapped__", obj)
    module = getattr(target, "__module__", None)
    qualname = getattr(target, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qualname, str):
        raise ValueError(f"{obj!r} has no __module__/__qualname__ and cannot be run by a worker")
    if module == "__main__":
        raise ValueError(
            f"{qualname} is defined in __main__; a worker cannot import it. "
            "Move it into an importable module."
        )
    if "<lambda>" in qualname:
        raise ValueError(f"a lambda ({module}:{qualname}) cannot be run by a worker; use a def")
    if "<locals>" in qualname:
        raise ValueError(
            f"{module}:{qualname} is defined inside a function; a worker cannot import it"
        )
    return f"{module}:{qualname}"


def split_name(name: str) -> tuple[str, str]:
    """ "module:qualname" (or TaskTiger's older "module.name") as (module, qualname)."""
    module_name, sep, qualname = name.partition(":")
    if not sep:
        module_name, _, qualname = name.rpartition(".")
    return module_name, qualname


def import_qualified(name: str) -> object:
    """Import "module:qualname" (or TaskTiger's older "module.name"); TaskImportError otherwise."""
    module_name, qualname = split_name(name)
    if not module_name or not qualname:
        raise TaskImportError(f"{name!r} is not a 'module:qualname' name")
    try:
        target: object = importlib.import_module(module_name)
    except JobTimeoutException:  # the import ran into the task's hard timeout: a timeout
        raise
    except (Exception, SystemExit) as exc:  # a module may even call sys.exit() on import
        raise TaskImportError(
            f"cannot import module {module_name!r} for {name!r}: {exc!r}"
        ) from exc
    for part in qualname.split("."):
        try:
            target = getattr(target, part)
        except (Exception, SystemExit) as exc:
            raise TaskImportError(f"{name!r}: {module_name} has no attribute {qualname!r}") from exc
    return target
