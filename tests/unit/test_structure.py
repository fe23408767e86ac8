"""The shape of the code, checked by reading it: layers, sizes, dependencies.

Every module is parsed with ``ast`` (nothing is imported), so imports inside functions
count as much as those at the top: a cycle hidden in a function is still a cycle.
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import re
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "durable_nb"
MAX_LINES = 600


@dataclass(frozen=True)
class Import:
    """One imported name as written: ``from <module> import <name>`` or ``import <module>``."""

    module: str  # absolute dotted name
    name: str | None
    top: bool  # at module level (runs on import), not inside a function or class
    typing_only: bool  # under ``if TYPE_CHECKING:``: never runs


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    """Every durable_nb module by dotted name."""
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


@functools.cache
def parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), str(path))


@functools.cache
def imports(path: Path) -> tuple[Import, ...]:
    """Every import statement of the file at ``path``, relative ones made absolute."""
    return tuple(_imports(path))


#: The nodes an import statement may be found in (a lambda's body is an expression).
_HOLDS_STATEMENTS = (ast.stmt, ast.excepthandler, ast.match_case)


def _imports(path: Path) -> Iterator[Import]:
    tree = parse(path)
    here = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]

    def visit(node: ast.AST, top: bool, typing_only: bool) -> Iterator[Import]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                for alias in child.names:
                    yield Import(alias.name, None, top, typing_only)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = here.split(".")[: len(here.split(".")) - child.level + 1]
                    module = ".".join(base + ([child.module] if child.module else []))
                else:
                    module = child.module or ""
                for alias in child.names:
                    yield Import(module, alias.name, top, typing_only)
            elif isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                yield from visit(ast.Module(child.body, []), top, True)
                yield from visit(ast.Module(child.orelse, []), top, typing_only)
            elif isinstance(child, _HOLDS_STATEMENTS):  # (an expression holds no import)
                nested = isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
                yield from visit(child, top and not nested, typing_only)

    yield from visit(tree, True, False)


def import_graph() -> dict[str, set[str]]:
    """Module -> the durable_nb modules it imports (a submodule when one is named)."""
    mods = modules()

    def owner(name: str) -> str:
        while name not in mods:
            name = name.rpartition(".")[0]
        return name

    graph: dict[str, set[str]] = {}
    for mod, path in mods.items():
        out = set()
        for imp in imports(path):
            if imp.typing_only or imp.module.partition(".")[0] != "durable_nb":
                continue
            full = f"{imp.module}.{imp.name}" if imp.name else imp.module
            out.add(full if full in mods else owner(imp.module))
        out.discard(mod)
        graph[mod] = out
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path ``[a, b, ..., a]``, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def dfs(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := dfs(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := dfs(node)):
            return cycle
    return None


def test_the_graph_sees_imports_inside_functions():
    graph = import_graph()
    assert "durable_nb.errors" in graph["durable_nb.codec"]  # at the top
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    inner = [i for p in modules().values() for i in imports(p) if not i.top]
    assert any(i.module.startswith("durable_nb") for i in inner)  # and inside functions


def test_no_import_cycle_among_durable_nb_modules():
    cycle = find_cycle(import_graph())
    assert cycle is None, (
        "import cycle: " + " -> ".join(cycle) + ". Move what both need into a lower module "
        "(errors.py, _report.py, _version.py) rather than importing inside a function."
    )


def test_no_module_over_600_lines():
    long = {
        str(p.relative_to(ROOT)): n
        for p in modules().values()
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"modules over {MAX_LINES} lines (split by concept): {long}"


def test_only_the_store_imports_duckdb():
    store = PACKAGE / "store"
    outside = sorted(
        str(path.relative_to(ROOT))
        for path in modules().values()
        if store not in path.parents
        and any(i.module.partition(".")[0] == "duckdb" for i in imports(path))
    )
    assert not outside, f"duckdb imported outside durable_nb/store/: {outside}"


def test_the_private_modules_import_nothing_of_the_package():
    graph = import_graph()
    for name in ("durable_nb.errors", "durable_nb._report", "durable_nb._version"):
        assert not graph.get(name), f"{name} imports {graph.get(name)}"


# -- dependencies declared in pyproject.toml -------------------------------------------


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared() -> dict[str, set[str]]:
    """Distribution names by where pyproject declares them: ``""`` core, else the extra."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    self_name = _normalize(project["name"])
    groups = {"": project["dependencies"], **project.get("optional-dependencies", {})}

    def names(group: str, seen: frozenset = frozenset()) -> set[str]:
        out = set()
        for req in groups[group]:
            m = re.match(r"([A-Za-z0-9_.\-]+)(?:\[([^\]]+)\])?", req)
            name = _normalize(m.group(1))
            if name == self_name:
                for extra in (m.group(2) or "").split(","):
                    if extra.strip() and extra.strip() not in seen:
                        out |= names(extra.strip(), seen | {extra.strip()})
            else:
                out.add(name)
        return out

    return {group: names(group) for group in groups}


def third_party(folder: Path, local: set[str]) -> dict[str, list[Import]]:
    """Top-level import names of the files under ``folder`` that are not ours nor stdlib."""
    found: dict[str, list[Import]] = {}
    for path in sorted(folder.rglob("*.py")):
        for imp in imports(path):
            top = imp.module.partition(".")[0]
            if top and top not in sys.stdlib_module_names and top not in local:
                found.setdefault(top, []).append(imp)
    return found


@functools.cache
def _providers() -> dict[str, list[str]]:
    found = dict(importlib.metadata.packages_distributions())
    # It leaves out compiled top-level modules (DuckDB's ``_duckdb.<abi>.so``).
    for dist in importlib.metadata.distributions():
        for file in dist.files or ():
            if len(file.parts) == 1 and file.suffix in (".so", ".pyd"):
                found.setdefault(file.name.partition(".")[0], []).append(dist.metadata["Name"])
    return found


def distributions(top: str) -> set[str]:
    dists = _providers().get(top)
    assert dists, f"{top} is imported but no installed distribution provides it"
    return {_normalize(d) for d in dists}


def test_every_third_party_import_of_the_package_is_declared():
    deps = declared()
    extras = set().union(*(names for group, names in deps.items() if group not in ("", "test")))
    missing = []
    for top, uses in third_party(PACKAGE, {"durable_nb"}).items():
        dists = distributions(top)
        if dists & deps[""]:
            continue
        if dists & extras and not any(i.top for i in uses):
            continue  # an optional extra, imported only when used
        missing.append(f"{top} ({', '.join(sorted(dists))})")
    assert not missing, f"imported but not in [project] dependencies: {missing}"


def test_every_third_party_import_of_the_tests_is_declared():
    deps = declared()
    allowed = deps[""] | deps["test"]
    local = {"durable_nb"} | {
        p.stem for folder in ("tests", "notebooks") for p in (ROOT / folder).rglob("*.py")
    }
    missing = sorted(
        f"{top} ({', '.join(sorted(dists))})"
        for top in third_party(ROOT / "tests", local)
        if not (dists := distributions(top)) & allowed
    )
    assert not missing, f"imported by tests but not in dependencies or the test extra: {missing}"


def test_test_modules_have_distinct_names():
    # pytest's default import mode puts each test folder on sys.path: two test modules of
    # one name in two folders break collection of the whole suite ("import file mismatch").
    names = [p.name for p in (ROOT / "tests").rglob("test_*.py")]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
