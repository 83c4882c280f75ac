"""The package's layering, checked on its source: imports flow one way, bottom to top.

The module graph is read with ``ast`` (no import runs): module-level imports, those under
``if TYPE_CHECKING:`` and function-level (lazy) ones. A failure names the offending import.
To place a new module, add it to ``LAYERS``; an exception to a rule is an entry with its reason.
"""

from __future__ import annotations

import ast
import itertools
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import attrs

PACKAGE: Final = "typedtiger"
ROOT: Final = Path(__file__).resolve().parent.parent / PACKAGE

#: Bottom to top. A module is in the layer of the longest name here that is it or its package
#: ("typedtiger" itself matches only the package's __init__). A module may import modules of
#: its own layer or of a lower one.
LAYERS: Final[tuple[tuple[str, tuple[str, ...]], ...]] = (
    (
        "values",
        (
            "typedtiger.spec",
            "typedtiger.config",
            "typedtiger.clock",
            "typedtiger.exceptions",
            "typedtiger.serialization",
            "typedtiger._policies",
            "typedtiger._schedules",
            "typedtiger._json",
            "typedtiger._names",
            "typedtiger._cron",
            "typedtiger._allowlist",
            "typedtiger._coroutines",
            "typedtiger._queues",
            "typedtiger._worker_info",
            "typedtiger._priorities",
            "typedtiger._results",
        ),
    ),
    ("backends", ("typedtiger.backends",)),
    (
        "facade",
        (
            "typedtiger.tiger",
            "typedtiger.task",
            "typedtiger.runner",
            "typedtiger._registry",
            "typedtiger._context",
            "typedtiger._logging",
            "typedtiger._payloads",
            "typedtiger._inspection",
            "typedtiger._delay",
            "typedtiger._awaiting",
            "typedtiger._async_client",
            "typedtiger._status",
        ),
    ),
    (
        "worker",
        ("typedtiger.worker", "typedtiger.executor"),
    ),
    ("observability", ("typedtiger.observability",)),
    ("commands", ("typedtiger.commands",)),
    ("dashboard", ("typedtiger.dashboard",)),
    (
        "integrations",
        ("typedtiger.integrations", "typedtiger.logging", "typedtiger.flask", "typedtiger.rollbar"),
    ),
    ("front ends", ("typedtiger.cli", "typedtiger._console", "typedtiger.testing", "typedtiger")),
)

#: Lazy imports that go up a layer, each with its reason.
LAZY_UPWARD: Final = {
    ("typedtiger.tiger", "typedtiger.worker"): "Tiger.run_worker runs a Worker in this process",
    ("typedtiger.tiger", "typedtiger.commands.worker"): (
        "Tiger.run_worker_with_args parses the worker command's options"
    ),
}

#: Annotation-only (TYPE_CHECKING) imports that go up a layer, each with its reason.
ANNOTATION_UPWARD: Final = {
    ("typedtiger.tiger", "typedtiger.executor"): "the type of Tiger.run_worker's executor argument",
}

#: Annotation-only imports that close a cycle inside one layer, each with its reason. Every
#: other import is part of a graph without cycles.
ANNOTATION_CYCLES: Final = {
    ("typedtiger.exceptions", "typedtiger._policies"): (
        "RetryException(method=...) takes a retry policy; the policies raise StopRetry"
    ),
    ("typedtiger.task", "typedtiger.tiger"): "a Task handle is bound to the Tiger that made it",
    ("typedtiger.backends.async_base", "typedtiger.backends.base"): (
        "Backend includes AsyncTwin; AsyncBackend's calls take and give the Backend's values"
    ),
    ("typedtiger._context", "typedtiger.task"): "the running tasks are Task handles",
    ("typedtiger.runner", "typedtiger.tiger"): "BaseRunner(tiger) is public API",
}

#: The only modules that may import typedtiger.cli: the console script's entry point.
CLI_IMPORTERS: Final = frozenset({"typedtiger._console"})
#: Storage clients: only backends/ imports them.
STORAGE_LIBRARIES: Final = frozenset({"redis", "fakeredis", "lupa"})
#: Modules that run a job (executors, the values they deal in and the child side): they never
#: touch storage.
EXECUTOR_MODULES: Final = (
    "typedtiger.executor",
    "typedtiger.worker.executor",
    "typedtiger.worker.job",
    "typedtiger.worker.sync",
    "typedtiger.worker.fork",
    "typedtiger.worker.process",
    "typedtiger.worker.child",
    "typedtiger.worker.prefork",
    "typedtiger.worker.prefork_child",
    "typedtiger.worker.asyncio_executor",
    "typedtiger.worker.asyncio_child",
)
#: The worker loop and its parts, and what they must not import: a concrete executor (the one
#: that picks the default, worker/default.py, is not among them).
LOOP_MODULES: Final = (
    "typedtiger.worker.loop",
    "typedtiger.worker.claims",
    "typedtiger.worker.recording",
    "typedtiger.worker.upkeep",
    "typedtiger.worker.slots",
    "typedtiger.worker.heartbeat",
    "typedtiger.worker.resolve",
)
CONCRETE_EXECUTORS: Final = frozenset(
    {
        "ForkExecutor",
        "SyncExecutor",
        "typedtiger.worker.sync",
        "typedtiger.worker.fork",
        "typedtiger.worker.process",
        "typedtiger.worker.child",
        "typedtiger.worker.prefork",
        "typedtiger.worker.prefork_child",
        "PreforkExecutor",
        "typedtiger.worker.asyncio_executor",
        "typedtiger.worker.asyncio_child",
        "AsyncioExecutor",
    }
)

MAX_LINES: Final = 500


@attrs.frozen
class Import:
    """One import statement's target, as written in ``source``."""

    source: str
    target: str  # the imported module (a typedtiger module, or a top-level library)
    names: tuple[str, ...]
    line: int
    kind: str  # "module" | "annotation" | "lazy"

    def __str__(self) -> str:
        where = f"{self.source.replace('.', '/')}.py:{self.line}"
        names = f" ({', '.join(self.names)})" if self.names else ""
        return f"{where}: {self.kind} import of {self.target}{names}"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES: Final = {_module_name(path): path for path in sorted(ROOT.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _targets(
    node: ast.Import | ast.ImportFrom, source: str
) -> Iterator[tuple[str, tuple[str, ...]]]:
    if isinstance(node, ast.Import):
        for alias in node.names:
            yield alias.name, ()
        return
    module = node.module or ""
    if node.level:
        base = source.split(".")
        if MODULES[source].name != "__init__.py":
            base.pop()
        base = base[: len(base) - node.level + 1]
        module = ".".join([*base, module] if module else base)
    submodules = [alias.name for alias in node.names if f"{module}.{alias.name}" in MODULES]
    others = tuple(alias.name for alias in node.names if alias.name not in submodules)
    for name in submodules:
        yield f"{module}.{name}", ()
    if others or not submodules:
        yield module, others


def _imports_of(source: str) -> list[Import]:
    found: list[Import] = []

    def visit(node: ast.AST, kind: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                visit(child, "lazy")
            elif isinstance(child, ast.If) and _is_type_checking(child.test):
                for statement in child.body:
                    visit_statement(statement, "annotation" if kind == "module" else kind)
                for statement in child.orelse:
                    visit_statement(statement, kind)
            elif isinstance(child, ast.Import | ast.ImportFrom):
                visit_statement(child, kind)
            else:
                visit(child, kind)

    def visit_statement(statement: ast.stmt, kind: str) -> None:
        if isinstance(statement, ast.Import | ast.ImportFrom):
            for target, names in _targets(statement, source):
                found.append(Import(source, _owner(target), names, statement.lineno, kind))
        else:
            wrapper = ast.Module(body=[statement], type_ignores=[])
            visit(wrapper, kind)

    visit(ast.parse(MODULES[source].read_text(), str(MODULES[source])), "module")
    return found


def _owner(target: str) -> str:
    """The typedtiger module ``target`` names (itself or its nearest existing package), or the
    top-level library name."""
    if target != PACKAGE and not target.startswith(PACKAGE + "."):
        return target.split(".", maxsplit=1)[0]
    while target not in MODULES:
        target = target.rpartition(".")[0]
    return target


IMPORTS: Final = {source: _imports_of(source) for source in MODULES}


def _internal(kinds: frozenset[str] = frozenset({"module", "annotation", "lazy"})) -> list[Import]:
    return [
        imp
        for imports in IMPORTS.values()
        for imp in imports
        if imp.kind in kinds and imp.target in MODULES and imp.target != imp.source
    ]


def _layer(module: str) -> int:
    best: tuple[int, int] | None = None  # (length of the matching name, layer index)
    for index, (_, names) in enumerate(LAYERS):
        for name in names:
            matches = module == name or (name != PACKAGE and module.startswith(name + "."))
            if matches and (best is None or len(name) > best[0]):
                best = (len(name), index)
    if best is None:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS in {__file__}")
    return best[1]


def _layer_name(module: str) -> str:
    return LAYERS[_layer(module)][0]


def test_every_module_is_in_a_layer() -> None:
    for module in MODULES:
        _layer(module)


def test_imports_go_to_the_same_or_a_lower_layer() -> None:
    wrong = []
    for imp in _internal():
        if _layer(imp.target) <= _layer(imp.source):
            continue
        allowed = LAZY_UPWARD if imp.kind == "lazy" else ANNOTATION_UPWARD
        if imp.kind != "module" and (imp.source, imp.target) in allowed:
            continue
        wrong.append(f"{imp} ({_layer_name(imp.source)} -> {_layer_name(imp.target)})")
    assert not wrong, "imports going up a layer:\n" + "\n".join(wrong)


def _cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """A cycle of ``edges`` (its modules in order, the first repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        path.append(module)
        for target in sorted(edges.get(module, ())):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state and (found := visit(target)) is not None:
                return found
        path.pop()
        state[module] = 2
        return None

    for module in sorted(edges):
        if module not in state and (found := visit(module)) is not None:
            return found
    return None


def _graph(
    left_out: frozenset[tuple[str, str]],
) -> tuple[dict[str, set[str]], dict[tuple[str, str], Import]]:
    """The module-level and annotation-only imports, but the annotation-only ones in
    ``left_out``: module -> what it imports, and where each pair is first imported."""
    edges: dict[str, set[str]] = {}
    where: dict[tuple[str, str], Import] = {}
    for imp in _internal(frozenset({"module", "annotation"})):
        pair = (imp.source, imp.target)
        if imp.kind == "annotation" and pair in left_out:
            continue
        edges.setdefault(imp.source, set()).add(imp.target)
        where.setdefault(pair, imp)
    return edges, where


_LEFT_OUT: Final = frozenset(ANNOTATION_CYCLES) | frozenset(ANNOTATION_UPWARD)


def test_no_import_cycle() -> None:
    """Module-level imports, with those under TYPE_CHECKING, form no cycle (lazy imports are
    checked by layer); an annotation-only import listed in ANNOTATION_CYCLES or
    ANNOTATION_UPWARD is left out."""
    edges, where = _graph(_LEFT_OUT)
    cycle = _cycle(edges)
    assert cycle is None, "import cycle:\n" + "\n".join(
        str(where[pair]) for pair in itertools.pairwise(cycle)
    )


def test_every_listed_exception_is_needed() -> None:
    """Each entry of the exception lists is an import that exists, and each ANNOTATION_CYCLES
    entry closes a cycle: a stale entry would let a new import through unseen."""
    found = {(imp.source, imp.target, imp.kind) for imp in _internal()}
    stale = [f"LAZY_UPWARD {pair}" for pair in LAZY_UPWARD if (*pair, "lazy") not in found]
    stale += [
        f"{name} {pair}"
        for name, listed in (
            ("ANNOTATION_UPWARD", ANNOTATION_UPWARD),
            ("ANNOTATION_CYCLES", ANNOTATION_CYCLES),
        )
        for pair in listed
        if (*pair, "annotation") not in found
    ]
    stale += [
        f"ANNOTATION_CYCLES {pair}: no cycle without it"
        for pair in ANNOTATION_CYCLES
        if _cycle(_graph(_LEFT_OUT - {pair})[0]) is None
    ]
    assert not stale, "exceptions listed for nothing:\n" + "\n".join(stale)


def test_annotation_exceptions_stay_in_their_layer() -> None:
    for source, target in ANNOTATION_CYCLES:
        if source in MODULES and target in MODULES:
            assert _layer(source) == _layer(target), (source, target)


def test_nothing_imports_the_cli() -> None:
    wrong = [
        str(imp)
        for imp in _internal()
        if _layer_name(imp.target) == "front ends"
        and imp.target.startswith("typedtiger.cli")
        and not imp.source.startswith("typedtiger.cli")
        and imp.source not in CLI_IMPORTERS
    ]
    assert not wrong, "typedtiger.cli is imported by:\n" + "\n".join(wrong)


def test_only_backends_import_storage_libraries() -> None:
    wrong = [
        str(imp)
        for imports in IMPORTS.values()
        for imp in imports
        if imp.target in STORAGE_LIBRARIES and not imp.source.startswith("typedtiger.backends")
    ]
    assert not wrong, "storage libraries imported outside backends/:\n" + "\n".join(wrong)


def test_no_executor_touches_storage_or_the_tiger() -> None:
    present = [module for module in EXECUTOR_MODULES if module in MODULES]
    assert present, f"none of {EXECUTOR_MODULES} exists: update EXECUTOR_MODULES"
    wrong = [
        str(imp)
        for imp in _internal()
        if imp.source in present
        and (imp.target == "typedtiger.tiger" or imp.target.startswith("typedtiger.backends"))
    ]
    assert not wrong, "an executor imports storage or the Tiger:\n" + "\n".join(wrong)


def test_the_worker_loop_imports_no_concrete_executor() -> None:
    missing = [m for m in LOOP_MODULES if m not in MODULES]
    assert not missing, f"{missing} do not exist: update LOOP_MODULES"
    wrong = []
    for imp in _internal():
        if imp.source not in LOOP_MODULES:
            continue
        for name in (imp.target, *imp.names):
            if name in CONCRETE_EXECUTORS:
                wrong.append(f"{imp}: {name}")
    assert not wrong, "the worker loop imports a concrete executor:\n" + "\n".join(wrong)


def test_no_module_is_too_long() -> None:
    wrong = []
    for path in MODULES.values():
        lines = len(path.read_text().splitlines())
        if lines > MAX_LINES:
            wrong.append(f"{path.relative_to(ROOT.parent)}: {lines} lines (> {MAX_LINES})")
    assert not wrong, "modules to split:\n" + "\n".join(wrong)


def test_the_checker_sees_imports() -> None:
    """The graph is not empty by mistake: a few imports it must find."""
    pairs = {(imp.source, imp.target, imp.kind) for imp in _internal()}
    assert ("typedtiger.tiger", "typedtiger.task", "module") in pairs
    assert ("typedtiger.tiger", "typedtiger.commands.worker", "lazy") in pairs
    assert any(kind == "annotation" for _, _, kind in pairs)


def test_every_package_is_shipped() -> None:
    """pyproject.toml lists every package of typedtiger/ (setuptools ships only those)."""
    pyproject = tomllib.loads((ROOT.parent / "pyproject.toml").read_text())
    listed = set(pyproject["tool"]["setuptools"]["packages"])
    packages = {module for module, path in MODULES.items() if path.name == "__init__.py"}
    assert listed == packages, (
        f"pyproject.toml [tool.setuptools] packages: missing {sorted(packages - listed)}, "
        f"not packages {sorted(listed - packages)}"
    )


def test_no_private_name_crosses_a_module() -> None:
    """What one module imports from another is a public name (of a private module, maybe):
    ``from typedtiger.x import _helper`` means _helper wants a public name."""
    wrong = [
        f"{imp}: {name}"
        for imp in _internal()
        for name in imp.names
        if name.startswith("_") and not name.startswith("__")
    ]
    assert not wrong, "private names imported from another module:\n" + "\n".join(wrong)


def test_the_facade_loads_nothing_above_it() -> None:
    """What runs, not only what is written: importing the everyday API (``from typedtiger
    import Tiger, ...``) loads no module of a layer above the facade, nor click."""
    code = (
        "import sys\n"
        "from typedtiger import Config, Task, TaskSpec, Tiger, cron, exponential\n"
        "print('\\n'.join(sorted(sys.modules)))\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout.split()
    facade = next(index for index, (name, _) in enumerate(LAYERS) if name == "facade")
    above = [
        module
        for module in loaded
        if module in MODULES and module != PACKAGE and _layer(module) > facade
    ]
    assert not above, f"importing the everyday API loaded {above}"
    assert "click" not in loaded
