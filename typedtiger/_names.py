"""Functions and classes by name: "module:qualname", as stored in task payloads."""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable, Sequence

from typedtiger.exceptions import JobTimeoutException, TaskImportError

__all__ = [
    "check_allowed",
    "import_allowed",
    "import_qualified",
    "is_allowed",
    "qualified_name",
    "split_name",
]


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


def is_allowed(name: str, allowed_modules: Sequence[str] | None) -> bool:
    """Whether ``name``'s module is one of ``allowed_modules`` or below one (None allows all)."""
    if allowed_modules is None:
        return True
    module = name.partition(":")[0]
    return any(module == prefix or module.startswith(prefix + ".") for prefix in allowed_modules)


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


def check_allowed(name: str, allowed_modules: Sequence[str] | None) -> None:
    """TaskImportError unless ``name`` is within ``allowed_modules`` (nothing is imported)."""
    if not is_allowed(name, allowed_modules):
        raise TaskImportError(
            f"{name!r} is outside Config.allowed_task_modules; refusing to import it"
        )


def import_allowed(name: str, allowed_modules: Sequence[str] | None) -> object:
    """``import_qualified``, refusing (TaskImportError) anything outside ``allowed_modules``.

    With an allowlist, the name must be the object's own "module:qualname" in an allowed
    module: ``app:os.system`` (an allowed module's import of ``os``) or
    ``app:client.flushall`` (a method of an object in it) are refused.
    """
    if allowed_modules is None:
        return import_qualified(name)
    check_allowed(name, allowed_modules)
    target = import_qualified(name)
    real: object = getattr(target, "__wrapped__", target)
    own = f"{getattr(real, '__module__', None)}:{getattr(real, '__qualname__', None)}"
    if own != name or not is_allowed(own, allowed_modules):
        raise TaskImportError(
            f"{name!r} leads to {own!r}, which is not defined there; refusing it under "
            "Config.allowed_task_modules"
        )
    return target
