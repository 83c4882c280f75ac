"""Which functions a worker may run: the names a payload gives are untrusted input.

Anyone who can write to the storage can write a payload; only names the application vouched
for are imported: registered tasks (and the runner classes, retry functions and retry_on
classes their registrations name), the modules its worker was started with (``--app``,
``-m``) and ``Config.allowed_task_modules``. ``Config.allow_any_module`` is TaskTiger's
run-anything behaviour, as an explicit opt-out.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from typedtiger._names import import_qualified, split_name
from typedtiger.exceptions import TaskImportError

__all__ = ["Allowlist"]


def _own_name(target: object) -> str:
    real: object = getattr(target, "__wrapped__", target)
    return f"{getattr(real, '__module__', None)}:{getattr(real, '__qualname__', None)}"


def _tuple(names: Iterable[str]) -> tuple[str, ...]:
    return tuple(names)


def _frozenset(names: Iterable[str]) -> frozenset[str]:
    return frozenset(names)


@attrs.frozen
class Allowlist:
    """Whether a worker may import and run "module:qualname" names taken from a payload.

    ``vouched``: exact names (registered tasks and what their registrations name);
    ``modules``: module names whose functions (and submodules') are allowed;
    ``any_module``: allow every importable name (TaskTiger's behaviour).
    """

    modules: tuple[str, ...] = attrs.field(default=(), converter=_tuple)
    vouched: frozenset[str] = attrs.field(default=frozenset(), converter=_frozenset)
    any_module: bool = False

    def allows(self, name: str) -> bool:
        """Whether ``name`` may be imported (nothing is imported to decide)."""
        if self.any_module or name in self.vouched:
            return True
        module = name.partition(":")[0]
        return any(module == prefix or module.startswith(prefix + ".") for prefix in self.modules)

    def with_modules(self, modules: Iterable[str]) -> Allowlist:
        """This allowlist, also allowing ``modules`` (e.g. exception modules for retry_on)."""
        return attrs.evolve(self, modules=(*self.modules, *modules))

    def vouching(self, names: Iterable[str]) -> Allowlist:
        """This allowlist, also allowing exactly ``names``."""
        return attrs.evolve(self, vouched=self.vouched.union(names))

    def check(self, name: str, what: str = "function") -> None:
        """TaskImportError, naming ``name`` and how to allow it, unless ``allows(name)``."""
        if not self.allows(name):
            raise TaskImportError(
                f"refusing to run {what} {name!r}: it is not a registered task (@tiger.task) "
                "and its module is not allowed. A worker runs registered tasks, functions of "
                "the modules given with --app/-m, and Config.allowed_task_modules; add "
                f"{split_name(name)[0]!r} there (--allow-module), or set "
                "Config.allow_any_module (--allow-any-module) to run any importable function"
            )

    def load(self, name: str, what: str = "function") -> object:
        """Import ``name`` if allowed; TaskImportError otherwise (then nothing is imported).

        Unless ``any_module``, the name must be the object's own "module:qualname":
        ``app:os.system`` (an allowed module's import of ``os``) or ``app:client.flushall``
        (a method of an object in it) are refused.
        """
        self.check(name, what)
        target = import_qualified(name)
        if self.any_module:
            return target
        own = _own_name(target)
        same = own == name or (":" not in name and own.replace(":", ".") == name)
        if not same or not self.allows(own):
            raise TaskImportError(
                f"refusing to run {what} {name!r}: it leads to {own!r}, which is not defined "
                "there (Config.allowed_task_modules allows what a module defines, not what it "
                "imports)"
            )
        return target
