"""No import circle among ``forensight`` modules (DESIGN: "a test should fail on an import circle").

The graph is read from the source with ``ast``, not by importing anything. What counts as an edge:

* every ``import`` / ``from ... import`` statement of ``forensight`` modules, **wherever it is**:
  at module level, inside a function (a lazy import), under ``if TYPE_CHECKING:``. A lazy import
  only postpones the cost; it is still a dependency, and the direction rule (a module imports
  only what sits below it in the data flow) is about dependencies;
* ``from forensight.pkg import name`` is an edge to the submodule ``forensight.pkg.name`` when that
  is a module, else to the package ``forensight.pkg`` (its ``__init__``);
* relative imports are resolved against the importing module's package.

Not an edge: the implicit import of a module's parent packages that Python performs (importing
``forensight.faces.libfd`` runs ``forensight/faces/__init__.py`` first). A package ``__init__``
that imports its submodules sits above them; a submodule that imports names back from its
package's ``__init__`` makes a circle and is reported.
"""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"


def module_files(root: Path) -> dict[str, Path]:
    """Dotted module name -> file for every ``.py`` under the package folder ``root``."""
    mods = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


def _resolve(target: str, mods: dict[str, Path]) -> str | None:
    """The longest known module that ``target`` names or lies in (None: outside the package)."""
    while target:
        if target in mods:
            return target
        target = target.rpartition(".")[0]
    return None


def import_edges(name: str, path: Path, mods: dict[str, Path]) -> dict[str, int]:
    """Modules of the package that module ``name`` imports -> the first line importing each."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: dict[str, int] = {}

    def add(target: str, line: int) -> None:
        mod = _resolve(target, mods)
        if mod is not None and mod != name:
            found.setdefault(mod, line)

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                sub = f"{source}.{alias.name}"
                add(sub if sub in mods else source, node.lineno)
    return found


def import_graph(root: Path) -> dict[str, dict[str, int]]:
    """Module -> {imported module: line} over the package folder ``root``."""
    mods = module_files(root)
    return {name: import_edges(name, path, mods) for name, path in mods.items()}


def import_cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative), each sorted;
    every import circle lies inside one of them."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for start, targets in graph.items():
        if start in index:
            continue
        work = [(start, iter(targets))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            v, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(graph.get(w, {}))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))
    return sorted(out)


def describe_cycle(component: list[str], graph: dict[str, dict[str, int]]) -> str:
    """One circle through the component, with the line of each import: ``a (l.3) -> b (l.9) -> a``."""
    members = set(component)
    start = component[0]
    # breadth-first search for the shortest way back to start inside the component
    prev: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in graph[v]:
                if w not in members:
                    continue
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(prev[path[-1]])
                    path.reverse()
                    hops = [f"{a} (line {graph[a][b]})" for a, b in zip(path, path[1:] + [start])]
                    return " -> ".join(hops + [start])
                if w not in prev and w != start:
                    prev[w] = v
                    nxt.append(w)
        frontier = nxt
    return " <-> ".join(component)  # pragma: no cover - a component always holds a circle


def test_forensight_has_no_import_circle() -> None:
    graph = import_graph(SRC / "forensight")
    assert len(graph) > 50 and "forensight.cli" in graph  # the walk found the package
    assert "forensight.config" in graph["forensight.cli"]  # edges were read
    cycles = import_cycles(graph)
    assert not cycles, "import circles among forensight modules (lazy imports count):\n" + "\n".join(
        describe_cycle(c, graph) for c in cycles)


def _write_package(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return root / "pkg"


def test_finds_a_lazy_relative_circle_and_names_it(tmp_path: Path) -> None:
    pkg = _write_package(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/low.py": "import os\n",
        "pkg/a.py": "from pkg.low import x\nfrom pkg import b\n",
        "pkg/b.py": "def f():\n    from .sub.c import y  # lazy, relative\n",
        "pkg/sub/__init__.py": "",
        "pkg/sub/c.py": "from ..a import z\n",
    })
    graph = import_graph(pkg)
    assert graph["pkg.a"] == {"pkg.low": 1, "pkg.b": 2}
    assert graph["pkg.b"] == {"pkg.sub.c": 2}
    assert graph["pkg.sub.c"] == {"pkg.a": 1}
    cycles = import_cycles(graph)
    assert cycles == [["pkg.a", "pkg.b", "pkg.sub.c"]]
    assert describe_cycle(cycles[0], graph) == "pkg.a (line 2) -> pkg.b (line 2) -> pkg.sub.c (line 1) -> pkg.a"


@pytest.mark.parametrize("files, want", [
    # a submodule importing a name back from its package's __init__, which imports it lazily
    ({"pkg/__init__.py": "def load():\n    from pkg.impl import f\n", "pkg/impl.py": "from pkg import VERSION\n"},
     [["pkg", "pkg.impl"]]),
    # TYPE_CHECKING imports count too
    ({"pkg/__init__.py": "", "pkg/a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.b\n",
      "pkg/b.py": "import pkg.a\n"}, [["pkg.a", "pkg.b"]]),
    # one direction only: no circle
    ({"pkg/__init__.py": "from pkg.a import f\n", "pkg/a.py": "from pkg.b import g\n", "pkg/b.py": "import json\n"}, []),
])
def test_cycle_rules(tmp_path: Path, files: dict[str, str], want: list[list[str]]) -> None:
    assert import_cycles(import_graph(_write_package(tmp_path, files))) == want


#: The bottom of the data flow: what each of these may import from forensight (nothing else).
BOTTOM = {
    "forensight._version": set(),
    "forensight.io": set(),
    "forensight.records": set(),
    "forensight.perturbation_spec": set(),
    "forensight.config": {"forensight.perturbation_spec", "forensight.records", "forensight.io"},
    "forensight.faces.common": set(),
    "forensight.models.frame_encoder": set(),
}
#: Commands that renderers and helpers must not call back into.
COMMANDS = {"forensight.cli", "forensight.demo", "forensight.study", "forensight.sweep", "forensight.robustness",
            "forensight.evaluate", "forensight.detect", "forensight.train", "forensight.preprocess"}


def test_the_bottom_of_the_data_flow_imports_nothing_above_it() -> None:
    graph = import_graph(SRC / "forensight")
    for module, allowed in BOTTOM.items():
        extra = set(graph[module]) - allowed
        assert not extra, f"{module} imports {sorted(extra)}: it sits below them in the data flow"
    for renderer in ("forensight.report", "forensight.html_report", "forensight.result"):
        back = set(graph[renderer]) & COMMANDS
        assert not back, f"{renderer} renders data; it must not call back into {sorted(back)}"
