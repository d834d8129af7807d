"""The package's layering, checked on the source: no import circles, and the lower layers never
reach up (``core`` is MIGU itself, ``methods`` are plugins of the engine, not parts of it).

Imports inside ``if TYPE_CHECKING:`` are annotations only and do not count; imports inside functions
do (a lazy import that closes a circle is still a circle).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    """Module -> the ``migu`` modules it imports (a ``from pkg import name`` of a submodule counts
    as an import of that submodule)."""
    modules = {_module_name(p): p for p in (SRC / "migu").rglob("*.py")}
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        typing_only = {
            id(n)
            for node in ast.walk(tree)
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
            for n in ast.walk(node)
        }
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                targets = [module] + [f"{module}.{a.name}" for a in node.names]
            else:
                continue
            graph[name].update(t for t in targets if t in modules and t != name)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in list(graph):
        if v not in index:
            visit(v)
    return found


def _reaching(graph: dict[str, set[str]], layer: str, forbidden: tuple[str, ...]) -> list[str]:
    return sorted(
        f"{a} -> {b}"
        for a, bs in graph.items()
        if a == layer or a.startswith(layer + ".")
        for b in bs
        if any(b == f or b.startswith(f + ".") for f in forbidden)
    )


def test_the_import_graph_sees_known_edges():
    # The checker itself: edges that exist must be found, or the rules below pass vacuously.
    graph = _imports()
    assert "migu.core.targets" in graph["migu.core.criteria"]
    assert "migu.config.schema" in graph["migu.engine.config"]
    assert "migu.methods" in graph["migu.engine.runner"]


def test_no_import_circles():
    assert _cycles(_imports()) == []


def test_the_cycle_finder_finds_a_circle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_core_imports_only_core():
    graph = _imports()
    outside = [
        f"{a} -> {b}"
        for a, bs in graph.items()
        if a.startswith("migu.core")
        for b in bs
        if not b.startswith("migu.core")
    ]
    assert outside == []


def test_methods_and_core_do_not_import_the_engine():
    graph = _imports()
    upward = ("migu.engine", "migu.pretrain", "migu.report", "migu.cli")
    assert _reaching(graph, "migu.methods", upward) == []
    assert _reaching(graph, "migu.core", upward) == []
    assert _reaching(graph, "migu.config", ("migu.engine", "migu.methods", "migu.pretrain")) == []


def test_reports_only_read_runs():
    # A report reads run directories (migu.engine.trained); it never trains or runs sweeps.
    assert _reaching(_imports(), "migu.report", ("migu.engine.runner", "migu.engine.sweep")) == []


def test_import_migu_needs_only_torch():
    # `import migu` (the core: attach, MiguConfig) must not pull in the engine's heavy libraries,
    # so that users who bring their own loop pay for torch only.
    import subprocess
    import sys

    heavy = ("transformers", "peft", "accelerate", "datasets", "matplotlib", "yaml", "gguf")
    code = f"import sys, migu; print(','.join(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == ""
    control = subprocess.run(
        [sys.executable, "-c", "import sys, migu.engine.config; print('yaml' in sys.modules)"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert control.stdout.strip() == "True"  # the check sees a heavy import when there is one
