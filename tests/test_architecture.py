"""The package tree shows the flow: its import rules, checked on the source with ``ast``.

The graph has one node per module of ``services/signalhub`` and one edge per import, at module
level or inside a function. ``from signalhub.x import y`` is an edge to ``signalhub.x.y`` when
``y`` is a submodule, else to ``signalhub.x``. Importing ``a.b.c`` also runs ``a/__init__`` and
``a/b/__init__``, so those are edges too, except the importer's own packages (already running)
and the root package (every module runs it; it only re-exports settings and errors). Imports
under ``if TYPE_CHECKING:`` never run and are left out.

The rules, each with a test that plants a violation so the checker is seen to catch it:

* No import cycle. A lazy (function-level) import counts like any other, except in the
  command-line modules (``signalhub.cli``, ``*.cli``, ``*.cli_*``, ``__main__``): a command
  loads its role only when it runs, which keeps ``signalhub --help`` fast. Anywhere else a lazy
  import would only hide a cycle.
* Forbidden edges: the pseudonym package does not read the settings (except where it opens a
  resource the settings name, and its commands); the enforcer imports neither the connectors nor
  the console.
* The pure core (decode, decide, pseudonymise, project) never reaches, directly or through what
  it imports, the Kafka clients, faust, the broker, the settings, the console or a CLI.
* At most 25 entries at the top of the package, no module over 450 lines.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import pytest

from ast_support import RuntimeVisitor

ROOT = Path(__file__).resolve().parents[1] / "services" / "signalhub"
PACKAGE = "signalhub"
MAX_TOP_LEVEL = 25
MAX_LINES = 450


class Edge(NamedTuple):
    target: str
    lazy: bool
    line: int


Graph = Mapping[str, Sequence[Edge]]


# -- building the graph ------------------------------------------------------------------------


def module_paths(root: Path, package: str = PACKAGE) -> dict[str, Path]:
    """``{dotted module name: file}`` for every module under ``root`` (packages by __init__)."""
    found: dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        parts = [package, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


class _Imports(RuntimeVisitor):
    """Every import statement that can run, and whether it sits inside a function."""

    def __init__(self) -> None:
        self.depth = 0
        self.found: list[tuple[ast.Import | ast.ImportFrom, bool]] = []

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._inside_function(node)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self._inside_function(node)

    def _inside_function(self, node: ast.AST) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    def visit_Import(self, node: ast.Import) -> None:
        self.found.append((node, self.depth > 0))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        self.found.append((node, self.depth > 0))


def _targets(
    module: str, is_package: bool, node: ast.Import | ast.ImportFrom, modules: Iterable[str]
) -> list[str]:
    """The dotted names one import statement loads (submodules resolved)."""
    known = set(modules)
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        anchor = module if is_package else module.rpartition(".")[0]
        for _ in range(node.level - 1):
            anchor = anchor.rpartition(".")[0]
        base = f"{anchor}.{base}" if base else anchor
    targets = [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in known]
    if len(targets) < len(node.names):
        targets.append(base)
    return targets


def _with_parents(importer: str, target: str, modules: Iterable[str]) -> list[str]:
    """``target`` and the packages it runs on the way, minus the root and the importer's own."""
    known = set(modules)
    parts = target.split(".")
    found = []
    for end in range(2, len(parts)):
        parent = ".".join(parts[:end])
        if parent in known and not (importer + ".").startswith(parent + "."):
            found.append(parent)
    return [*found, target]


def import_graph(root: Path = ROOT, package: str = PACKAGE) -> dict[str, list[Edge]]:
    """``{module: its imports}``; in-package targets are module names, others as written."""
    paths = module_paths(root, package)
    graph: dict[str, list[Edge]] = {}
    for module, path in paths.items():
        collector = _Imports()
        collector.visit(ast.parse(path.read_text("utf-8"), str(path)))
        edges: dict[tuple[str, bool], Edge] = {}
        for node, lazy in collector.found:
            for target in _targets(module, path.name == "__init__.py", node, paths):
                for name in _with_parents(module, target, paths):
                    edges.setdefault((name, lazy), Edge(name, lazy, node.lineno))
        graph[module] = list(edges.values())
    return graph


# -- the checks ----------------------------------------------------------------------------------


def is_cli(module: str) -> bool:
    last = module.rpartition(".")[2]
    return last in {"cli", "__main__"} or last.startswith("cli_")


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def import_cycles(graph: Graph) -> list[list[str]]:
    """One cycle (``[a, b, ..., a]``) per strongly connected group of modules."""
    edges = {
        module: sorted(
            {e.target for e in out if e.target in graph and not (e.lazy and is_cli(module))}
        )
        for module, out in graph.items()
    }
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def connect(node: str) -> None:  # Tarjan; the graph is a few hundred modules deep at most
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges[node]:
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1 or node in edges[node]:
                groups.append(sorted(group))

    for module in sorted(edges):
        if module not in index:
            connect(module)
    return [_cycle_in(group, edges) for group in groups]


def _cycle_in(group: list[str], edges: Mapping[str, list[str]]) -> list[str]:
    """The shortest path from the group's first module back to itself, inside the group."""
    start, members = group[0], set(group)
    paths = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for nxt in edges[node]:
            if nxt == start:
                return [*paths[node], start]
            if nxt in members and nxt not in paths:
                paths[nxt] = [*paths[node], nxt]
                queue.append(nxt)
    raise AssertionError(f"no cycle through {start}")  # unreachable for a real group


class Forbidden(NamedTuple):
    """Modules under ``source`` must not import anything under ``target`` (``allow``: exempt)."""

    source: str
    target: str
    allow: frozenset[str] = frozenset()


def forbidden_imports(graph: Graph, rules: Iterable[Forbidden]) -> list[str]:
    found = []
    for rule in rules:
        for module, out in sorted(graph.items()):
            if not _under(module, rule.source) or module in rule.allow:
                continue
            found += [
                f"{module} imports {e.target} (line {e.line})"
                for e in out
                if _under(e.target, rule.target)
            ]
    return found


def impure_paths(graph: Graph, roots: Iterable[str], impure: Callable[[str], bool]) -> list[str]:
    """For each root, the import chains (lazy ones too) that reach an impure module."""
    found = []
    for root in roots:
        paths = {root: [root]}
        queue = [root]
        while queue:
            node = queue.pop(0)
            for edge in graph[node]:
                if impure(edge.target):
                    found.append(" -> ".join([*paths[node], edge.target]))
                elif edge.target in graph and edge.target not in paths:
                    paths[edge.target] = [*paths[node], edge.target]
                    queue.append(edge.target)
    return found


def top_level_entries(root: Path) -> list[str]:
    return sorted(
        p.name
        for p in root.iterdir()
        if p.name != "py.typed"
        and not p.name.startswith((".", "__pycache__"))
        and (p.is_dir() or p.suffix == ".py")
    )


def oversized_modules(root: Path, limit: int = MAX_LINES) -> list[str]:
    return [
        f"{path.relative_to(root)}: {lines} lines"
        for path in sorted(root.rglob("*.py"))
        if (lines := len(path.read_text("utf-8").splitlines())) > limit
    ]


# -- the rules of this package -------------------------------------------------------------------

FORBIDDEN = (
    # The pseudonymiser is given its keys; only the modules that open what the settings name
    # (the key ring, the vault, the re-identification workflow) and the commands read them.
    Forbidden(
        "signalhub.pseudonym",
        "signalhub.config",
        allow=frozenset(
            {
                "signalhub.pseudonym.keys",
                "signalhub.pseudonym.vault",
                "signalhub.pseudonym.reidentify.workflow",
                "signalhub.pseudonym.cli",
            }
        ),
    ),
    Forbidden("signalhub.enforcer", "signalhub.connector"),
    Forbidden("signalhub.enforcer", "signalhub.console"),
)
CORE = (
    "signalhub.enforcer.core",
    "signalhub.enforcer.projection",
    "signalhub.schema.codec",
    "signalhub.pseudonym.pseudonyms",
    "signalhub.policy.decision",
)
_IMPURE = (
    "kafka",
    "aiokafka",
    "faust",
    "mode",
    "signalhub.broker",
    "signalhub.config",
    "signalhub.console",
    "signalhub.cli",
)


def is_impure(name: str) -> bool:
    """What the pure core must never load: the framework, the broker, settings, UI and CLIs."""
    return any(_under(name, prefix) for prefix in _IMPURE) or (
        _under(name, PACKAGE) and is_cli(name)
    )


@pytest.fixture(scope="module")
def graph() -> dict[str, list[Edge]]:
    return import_graph()


def test_the_package_has_no_import_cycle(graph: Graph) -> None:
    assert [" -> ".join(cycle) for cycle in import_cycles(graph)] == []


def test_no_package_imports_what_its_step_must_not_know(graph: Graph) -> None:
    assert forbidden_imports(graph, FORBIDDEN) == []


def test_the_core_loads_no_framework_broker_settings_console_or_cli(graph: Graph) -> None:
    roots = [module for module in CORE if module in graph]
    assert "signalhub.enforcer.core" in roots
    assert impure_paths(graph, roots, is_impure) == []


def test_the_top_of_the_package_stays_small() -> None:
    entries = top_level_entries(ROOT)
    assert len(entries) <= MAX_TOP_LEVEL, entries


def test_no_module_is_over_the_line_limit() -> None:
    assert oversized_modules(ROOT) == []


# -- each checker catches a planted violation ------------------------------------------------------


def _graph(**edges: str) -> dict[str, list[Edge]]:
    """``a="b c"``: module ``a`` imports ``b`` and ``c`` at module level (``~b``: lazily)."""
    return {
        name.replace("_", "."): [
            Edge(target.lstrip("~"), target.startswith("~"), 1) for target in targets.split()
        ]
        for name, targets in edges.items()
    }


def test_a_planted_cycle_is_reported_as_its_path() -> None:
    planted = _graph(x_a="x.b", x_b="x.c", x_c="x.a", x_d="x.a")
    assert import_cycles(planted) == [["x.a", "x.b", "x.c", "x.a"]]
    assert import_cycles(_graph(x_a="x.b", x_b="")) == []


def test_a_lazy_import_excuses_a_cycle_only_in_a_command_module() -> None:
    assert import_cycles(_graph(x_cli="x.run", x_run="~x.cli")) != []
    assert import_cycles(_graph(x_cli="~x.run", x_run="x.cli")) == []


def test_a_planted_forbidden_edge_is_caught() -> None:
    planted = _graph(x_enforcer_worker="x.console.settings", x_enforcer_core="x.wire")
    rules = [Forbidden("x.enforcer", "x.console")]
    assert forbidden_imports(planted, rules) == [
        "x.enforcer.worker imports x.console.settings (line 1)"
    ]
    exempt = [Forbidden("x.enforcer", "x.console", frozenset({"x.enforcer.worker"}))]
    assert forbidden_imports(planted, exempt) == []


def test_a_core_that_reaches_the_framework_through_a_helper_is_caught() -> None:
    planted = _graph(x_core="x.helper", x_helper="~faust.types", x_model="modelling")
    assert impure_paths(planted, ["x.core"], is_impure) == ["x.core -> x.helper -> faust.types"]
    assert impure_paths(planted, ["x.model"], is_impure) == []  # "mode" is not "modelling"
    assert is_impure("signalhub.enforcer.cli")
    assert is_impure("signalhub.pseudonym.cli_keys")


def test_planted_size_violations_are_caught(tmp_path: Path) -> None:
    for index in range(MAX_TOP_LEVEL):
        (tmp_path / f"m{index}.py").write_text('"""m"""\n')
    (tmp_path / "py.typed").write_text("")
    assert len(top_level_entries(tmp_path)) == MAX_TOP_LEVEL
    (tmp_path / "extra").mkdir()
    assert len(top_level_entries(tmp_path)) == MAX_TOP_LEVEL + 1
    (tmp_path / "extra" / "big.py").write_text("x = 1\n" * (MAX_LINES + 1))
    assert oversized_modules(tmp_path) == [f"extra/big.py: {MAX_LINES + 1} lines"]


def test_the_graph_resolves_submodules_parents_lazy_and_type_only_imports(tmp_path: Path) -> None:
    files = {
        "__init__.py": "from pkg.config import Settings\n",
        "config.py": "",
        "a/__init__.py": "from pkg.a.one import thing\n",
        "a/one.py": "from pkg.a import two\nfrom . import two as again\nthing = 1\n",
        "a/two.py": "",
        "b/__init__.py": "",
        "b/user.py": (
            "from typing import TYPE_CHECKING\n"
            "import faust\n"
            "from pkg.a.one import thing\n"
            "if TYPE_CHECKING:\n    from pkg.config import Settings\n"
            "def later() -> None:\n    from ..a import two\n"
        ),
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    planted = import_graph(tmp_path, "pkg")
    assert {(e.target, e.lazy) for e in planted["pkg.a.one"]} == {("pkg.a.two", False)}
    assert {(e.target, e.lazy) for e in planted["pkg.b.user"]} == {
        ("typing", False),
        ("faust", False),
        ("pkg.a", False),  # importing pkg.a.one runs pkg/a/__init__ first
        ("pkg.a.one", False),
        ("pkg.a", True),
        ("pkg.a.two", True),
    }
    assert import_cycles(planted) == []
