"""The house rules, checked on the import graph of the shipped code (parsed, never imported).

- Beam is imported only in stages modules, `transforms/core/`, `models/handlers/`, `pipelines/`
  and the file layer `tessera/fileio.py`.
- Imports go downward only: tessera root < schemas < models < transforms/core <
  transforms/<workload> < training < pipelines; workloads never import each other; model
  families never import the Beam handlers.
- No import circles (function-level imports included), every import is namespaced (`tessera.`),
  no module over 400 lines, tests and shipped code never import `benchmarks/`.
"""
from __future__ import annotations

import ast
import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FOLDERS = ("schemas", "models", "transforms", "training", "pipelines")
MAX_LINES = 400
BEAM_OK_PREFIXES = ("tessera.transforms.core.", "tessera.models.handlers.", "tessera.pipelines.")
BEAM_OK_MODULES = {"tessera.fileio"}


def _is_stages(module: str) -> bool:
    leaf = module.rsplit(".", 1)[-1]
    return leaf == "stages" or leaf.endswith("_stages")


def beam_allowed(module: str) -> bool:
    return (_is_stages(module) or module in BEAM_OK_MODULES
            or module.startswith(BEAM_OK_PREFIXES))


def shipped_files() -> dict[str, str]:
    """Installed module name -> file path, as setup.py's package_dir maps them."""
    out = {}
    roots = [("tessera", os.path.join(REPO, "tessera"))]
    roots += [(f"tessera.{f}", os.path.join(REPO, f)) for f in FOLDERS]
    for prefix, root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
            rel = os.path.relpath(dirpath, root)
            package = prefix if rel == "." else prefix + "." + rel.replace(os.sep, ".")
            for name in sorted(filenames):
                if name.endswith(".py"):
                    stem = name[:-3]
                    out[package if stem == "__init__" else f"{package}.{stem}"] = (
                        os.path.join(dirpath, name))
    return out


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for child in node.body for n in ast.walk(child))
    return skip


def imports_of(path: str, module: str) -> list[tuple[str, int]]:
    """(imported name, line) for every import in the file, functions included, `if TYPE_CHECKING`
    blocks excluded. `from a import b` yields `a.b` (a submodule or a name inside `a`)."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    skip = _type_checking_nodes(tree)
    package = module if path.endswith("__init__.py") else module.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[:len(parts) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            out += [(f"{base}.{a.name}" if a.name != "*" else base, node.lineno)
                    for a in node.names]
    return out


def resolve(name: str, modules: dict[str, str]) -> str | None:
    """The shipped module an imported name lands in (longest matching module name)."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def layer(module: str) -> tuple[int, str | None]:
    """(rank, workload) of a shipped module."""
    parts = module.split(".")
    if len(parts) < 2 or parts[1] not in FOLDERS:
        return 0, None
    folder = parts[1]
    if folder == "schemas":
        return 1, None
    if folder == "models":
        return 2, None
    if folder == "transforms":
        workload = parts[2] if len(parts) > 2 else None
        return (3, None) if workload in (None, "core") else (4, workload)
    if folder == "training":
        return 5, parts[2] if len(parts) > 2 else None
    return 6, None


def layer_violation(importer: str, imported: str) -> str | None:
    """Why `importer` may not import `imported`, or None."""
    (rank_a, work_a), (rank_b, work_b) = layer(importer), layer(imported)
    if rank_b > rank_a:
        return "imports upward"
    if rank_a in (4, 5) and rank_b in (4, 5) and work_b != work_a:
        return f"workload {work_a} imports workload {work_b}"
    if (imported.startswith("tessera.models.handlers")
            and not importer.startswith(("tessera.models.handlers", "tessera.models.registry"))
            and rank_a == 2):
        return "a model family imports a Beam handler"
    return None


@pytest.fixture(scope="module")
def graph():
    modules = shipped_files()
    return modules, {m: imports_of(p, m) for m, p in modules.items()}


def test_finds_the_code(graph):
    modules, _ = graph
    assert {"tessera.fileio", "tessera.pipelines.cli", "tessera.models.registry",
            "tessera.transforms.buildings.stages", "tessera.training.zoo.stages"} <= set(modules)


def test_beam_only_in_allowed_places(graph):
    modules, imports = graph
    bad = [f"{os.path.relpath(modules[m], REPO)}:{line} imports {name}"
           for m, names in imports.items() if not beam_allowed(m)
           for name, line in names if name.split(".")[0] == "apache_beam"]
    assert not bad, "Beam outside stages/core/handlers/pipelines:\n" + "\n".join(bad)


def test_imports_are_namespaced(graph):
    modules, imports = graph
    bad = [f"{os.path.relpath(modules[m], REPO)}:{line} imports {name}"
           for m, names in imports.items() for name, line in names
           if name.split(".")[0] in FOLDERS + ("tests", "benchmarks")]
    assert not bad, "use tessera.<folder>, never a bare top-level name:\n" + "\n".join(bad)


def test_imports_go_downward(graph):
    modules, imports = graph
    bad = []
    for m, names in imports.items():
        for name, line in names:
            target = resolve(name, modules)
            if target and target != m and (why := layer_violation(m, target)):
                bad.append(f"{os.path.relpath(modules[m], REPO)}:{line} -> {target}: {why}")
    assert not bad, "\n".join(bad)


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import circle in the graph, or None (iterative DFS, colours white/grey/black)."""
    state, stack_path = {}, []
    for start in sorted(edges):
        if state.get(start):
            continue
        stack = [(start, iter(sorted(edges[start])))]
        state[start] = 1
        stack_path.append(start)
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[node] = 2
                stack.pop()
                stack_path.pop()
            elif state.get(child) == 1:
                return stack_path[stack_path.index(child):] + [child]
            elif not state.get(child):
                state[child] = 1
                stack_path.append(child)
                stack.append((child, iter(sorted(edges.get(child, ())))))
    return None


def test_find_cycle_detects_a_circle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_no_import_circles(graph):
    modules, imports = graph
    edges = {m: {t for name, _ in names if (t := resolve(name, modules)) and t != m}
             for m, names in imports.items()}
    # a package's own __init__ is not an edge back from its submodules (Python imports it first)
    edges = {m: {t for t in ts if not m.startswith(t + ".")} for m, ts in edges.items()}
    assert find_cycle(edges) is None, " -> ".join(find_cycle(edges))


def _all_python_files():
    for top in ("tessera", "tests", "benchmarks", "pipelines", "setup.py") + FOLDERS:
        path = os.path.join(REPO, top)
        if os.path.isfile(path):
            yield path
        for dirpath, dirnames, filenames in os.walk(path):
            dirnames[:] = [d for d in dirnames if d != "__pycache__"]
            yield from (os.path.join(dirpath, f) for f in filenames if f.endswith(".py"))


def test_no_file_over_the_line_limit():
    long = {}
    for path in sorted(set(_all_python_files())):
        with open(path, encoding="utf-8") as f:
            n = sum(1 for _ in f)
        if n > MAX_LINES:
            long[os.path.relpath(path, REPO)] = n
    assert not long, f"split these (limit {MAX_LINES} lines): {long}"


def test_tests_never_import_benchmarks():
    bad = []
    for path in _all_python_files():
        if not path.startswith(os.path.join(REPO, "tests")):
            continue
        for name, line in imports_of(path, "tests.x"):
            if name.split(".")[0] == "benchmarks":
                bad.append(f"{os.path.relpath(path, REPO)}:{line} imports {name}")
    assert not bad, "move shared helpers to tests/fixtures/:\n" + "\n".join(bad)


def test_every_shipped_folder_is_a_package():
    missing = []
    for top in ("tessera",) + FOLDERS:
        for dirpath, dirnames, filenames in os.walk(os.path.join(REPO, top)):
            dirnames[:] = [d for d in dirnames if d != "__pycache__"]
            if any(f.endswith(".py") for f in filenames) and "__init__.py" not in filenames:
                missing.append(os.path.relpath(dirpath, REPO))
    assert not missing, f"setup.py installs packages only: add __init__.py to {missing}"
