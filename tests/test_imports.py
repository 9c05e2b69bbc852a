"""The import graph of the package has no circle, its folders keep the documented layer order, and
its layers import in any order.

Every `import` counts, at module level or inside a function (a lazy import hides a circle, it does
not remove it); only imports under `if TYPE_CHECKING:` do not, since they never run. Package
`__init__.py` files are nodes like any module. `from pkg import name` points at `pkg.name` when that
is a module, else at `pkg`.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "prunepeft"
DOCS = PACKAGE.parent / "docs" / "architecture.md"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, name: str, modules: set[str]) -> set[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            if isinstance(child, ast.Import):
                out.update(a.name for a in child.names if a.name in modules)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package
                    for _ in range(child.level - 1):
                        anchor = anchor.rpartition(".")[0]
                    base = f"{anchor}.{base}" if base else anchor
                for alias in child.names:
                    target = f"{base}.{alias.name}"
                    out.add(target if target in modules else base)
            visit(child)

    visit(ast.parse(path.read_text()))
    return {m for m in out if m in modules and m != name}


def import_graph() -> dict[str, set[str]]:
    """{module: the package modules it imports}."""
    paths = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: _imports(path, name, set(paths)) for name, path in paths.items()}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_import_graph_has_no_circle():
    graph = import_graph()
    assert "prunepeft.peft.units" in graph and "prunepeft.pruning.search" in graph
    assert circles(graph) == []


def test_the_circle_finder_finds_a_circle():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_unit_type_registry_order_is_explicit():
    from prunepeft.peft.units import UNIT_TYPES

    # the built-ins' relative order (membership, not the full list: a new type must not break this)
    assert [n for n in UNIT_TYPES if n in ("lora", "dora", "adapter", "houlsby")] == ["lora", "dora", "adapter", "houlsby"]


@pytest.mark.parametrize("order", [("prunepeft.peft.units.lora", "prunepeft.peft", "prunepeft.pruning"),
                                   ("prunepeft.pruning", "prunepeft.peft.found_config", "prunepeft.peft")])
def test_layers_import_in_any_order(order):
    code = "; ".join(f"import {m}" for m in order) + "; from prunepeft.peft import UNIT_TYPES; print(list(UNIT_TYPES))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    built_ins = ["lora", "dora", "adapter", "houlsby"]
    assert [n for n in ast.literal_eval(out.stdout.strip()) if n in built_ins] == built_ins


# -- packages: folders (and loose modules) of prunepeft/ as nodes ---------------------------------
def package_of(module: str) -> str:
    """`prunepeft.pruning.criteria.zeros` -> `pruning`; the package itself -> `prunepeft`."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "prunepeft"


def package_edges(graph: dict[str, set[str]]) -> dict[tuple[str, str], list[str]]:
    """{(package, package it imports): the module-level edges behind it}, self-edges left out."""
    edges: dict[tuple[str, str], list[str]] = {}
    for module, targets in graph.items():
        for target in targets:
            a, b = package_of(module), package_of(target)
            if a != b:
                edges.setdefault((a, b), []).append(f"{module} -> {target}")
    return edges


def documented_layers() -> list[set[str]]:
    """The layers drawn in docs/architecture.md between `<!-- layers -->` and `<!-- /layers -->`, top
    down: one line per layer, its packages separated by `·`, a description after `—`."""
    text = DOCS.read_text()
    block = text.split("<!-- layers -->", 1)[1].split("<!-- /layers -->", 1)[0]
    lines = [line for line in block.splitlines() if "—" in line]
    return [{name.strip() for name in line.split("—", 1)[0].split("·")} for line in lines]


def test_the_packages_have_no_circle():
    graph = {a: set() for a in {package_of(m) for m in import_graph()}}
    for a, b in package_edges(import_graph()):
        graph[a].add(b)
    assert circles(graph) == []


def test_every_package_has_one_documented_layer():
    layers = documented_layers()
    named = [name for layer in layers for name in layer]
    assert len(named) == len(set(named)), "a package drawn on two layers"
    assert set(named) == {package_of(m) for m in import_graph()}


def test_no_import_climbs_the_documented_layers():
    """A package imports only packages on lower layers: none above it, none beside it (function-level
    imports included)."""
    depth = {name: i for i, layer in enumerate(documented_layers()) for name in layer}  # 0 = top
    climbing = [f"{a} -> {b}: {edges[0]}" for (a, b), edges in sorted(package_edges(import_graph()).items())
                if depth[b] <= depth[a]]
    assert climbing == []


def test_the_method_never_imports_the_instruments_or_the_arms():
    method = [e for (a, b), edges in package_edges(import_graph()).items() for e in edges
              if a == "pruning" and b in ("analysis", "arms")]
    assert method == []


def test_report_reaches_no_model_code():
    """`report` sits above the instruments to render their statistics, but reads run files only: nothing
    it imports, followed through every module on the way, is the method, an arm, PEFT, training, a model
    or the data layer (so `prunepeft report` needs no model and no torch)."""
    graph = import_graph()
    seen, todo = set(), [m for m in graph if package_of(m) == "report"]
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo.extend(graph[m])
    assert sorted(m for m in seen if package_of(m) in ("pruning", "arms", "peft", "train", "models", "data")) == []
    assert "prunepeft.analysis.stats" in seen  # the statistics are the instruments' one implementation


def test_the_layer_check_sees_a_climb():
    graph = {"prunepeft.run.io": {"prunepeft.pruning.search"}, "prunepeft.pruning.search": set()}
    assert package_edges(graph) == {("run", "pruning"): ["prunepeft.run.io -> prunepeft.pruning.search"]}
