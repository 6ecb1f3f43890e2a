"""The layout is the architecture: media <- runtime <- tools <- agent <- integrations, serving, CLI, no cycles.

Every ``import`` in polymodal's source is read with ``ast`` — module-level and function-local
alike, since a lazy import is still a dependency — and two rules are checked: no module imports
a module of a higher layer (``TYPE_CHECKING`` imports included), and the modules' imports form no
cycle, ``TYPE_CHECKING`` imports included: two modules that need each other's types are one module,
or one of them takes a small ``Protocol`` of what it needs from the other (``runtime.batching``'s
``BatchedTool``). A new module of an unknown place counts as the top layer
(an application): nothing below may import it; add it to ``LAYERS`` where it belongs.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "polymodal"

# Lowest first. A module belongs to the layer of the longest prefix listed here.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("core", ("polymodal.errors", "polymodal.redaction", "polymodal.prompts", "polymodal.threads",
              "polymodal.transient", "polymodal._lazy", "polymodal.telemetry", "polymodal.api_keys")),
    ("media", ("polymodal.media",)),
    ("runtime", ("polymodal.runtime", "polymodal.packaged", "polymodal.hub")),
    ("tools", ("polymodal.tools", "polymodal.llms")),
    ("agent", ("polymodal.agent", "polymodal.config")),
    ("sessions", ("polymodal.sessions",)),
]
TOP = "applications"  # integrations, serving, batch, CLI, profiles, the package's own __init__, anything new


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def layer(module: str) -> int:
    """Index of ``module``'s layer (len(LAYERS) for the top one)."""
    best, best_len = len(LAYERS), -1
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_len:
                best, best_len = index, len(prefix)
    return best


def layer_name(index: int) -> str:
    return LAYERS[index][0] if index < len(LAYERS) else TOP


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """ids of the import nodes inside ``if TYPE_CHECKING:`` blocks."""
    found: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for stmt in node.body:
                found.update(id(inner) for inner in ast.walk(stmt))
    return found


def imports(module: str, path: Path, *, type_checking: bool = True) -> Iterator[tuple[str, int]]:
    """(imported polymodal module, line) for every import in the file, wherever it sits."""
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    skip = set() if type_checking else _type_checking_nodes(tree)
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "polymodal":
                    yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".") if is_package else module.split(".")[:-1]
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            if base.split(".")[0] != "polymodal":
                continue
            for alias in node.names:  # `from polymodal.agent import events` imports a module
                submodule = f"{base}.{alias.name}"
                yield (submodule if submodule in MODULES else base), node.lineno


# Edges of a known cycle, named so that it stays visible until it is split; any other cycle fails.
KNOWN_CYCLE_EDGES: set[tuple[str, str]] = set()
GRAPH = {module: sorted({name for name, _ in imports(module, path, type_checking=False)} - {module}
                        - {b for a, b in KNOWN_CYCLE_EDGES if a == module})
         for module, path in MODULES.items()}


TYPED_GRAPH = {module: sorted({name for name, _ in imports(module, path)} - {module})
               for module, path in MODULES.items()}


def test_the_source_tree_was_found():
    assert {"polymodal.agent.agent", "polymodal.tools.base", "polymodal.media"} <= set(MODULES)
    assert all(target in MODULES for targets in GRAPH.values() for target in targets), "an import of no module"


def test_no_module_imports_a_higher_layer():
    violations = []
    for module, path in MODULES.items():
        for target, line in imports(module, path):
            if layer(target) > layer(module):
                violations.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {module} ({layer_name(layer(module))}) "
                                  f"imports {target} ({layer_name(layer(target))})")
    assert not violations, "imports of a higher layer:\n" + "\n".join(violations)


def find_cycle(graph: dict[str, list[str]]) -> list[str] | None:
    """One import cycle of ``graph`` as [a, b, ..., a], or None (iterative DFS, three colours)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for root in graph:
        if state.get(root):
            continue
        path, stack = [root], [iter(graph[root])]
        state[root] = 1
        while stack:
            child = next(stack[-1], None)
            if child is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(child) == 1:
                return path[path.index(child):] + [child]
            elif not state.get(child):
                state[child] = 1
                path.append(child)
                stack.append(iter(graph.get(child, [])))
    return None


def test_there_is_no_import_cycle():
    cycle = find_cycle(GRAPH)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])
    for a, b in KNOWN_CYCLE_EDGES:  # an allowance that is no longer needed must go
        assert b in {name for name, _ in imports(a, MODULES[a], type_checking=False)}, (a, b)


@pytest.mark.parametrize(("graph", "cyclic"), [
    ({"a": ["b"], "b": ["c"], "c": ["a"]}, True),
    ({"a": ["b", "c"], "b": ["c"], "c": []}, False),
    ({"a": ["a"]}, True),
])
def test_the_cycle_finder_finds_cycles(graph, cyclic):
    assert (find_cycle(graph) is not None) is cyclic


def test_function_local_imports_count(tmp_path):
    # The cycle this test was written for hid in function bodies: agent.py imported the integrations
    # layer inside methods, and events.py imported agent.py back.
    source = tmp_path / "x.py"
    source.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from polymodal.tools.base import Tool\n"
                      "def f():\n    from polymodal.integrations.langchain import AgentTool\n")
    found = {name for name, _ in imports("polymodal.agent.x", source)}
    assert found == {"polymodal.integrations.langchain", "polymodal.tools.base"}
    assert [name for name, _ in imports("polymodal.agent.x", source, type_checking=False)] == [
        "polymodal.integrations.langchain"]
    assert layer("polymodal.integrations.langchain") > layer("polymodal.agent.x") > layer("polymodal.tools.base")
    assert layer("polymodal.serving.app") == len(LAYERS)  # a new package defaults to the top layer


def test_there_is_no_import_cycle_even_through_type_checking_imports():
    cycle = find_cycle(TYPED_GRAPH)
    assert cycle is None, "import cycle (TYPE_CHECKING imports counted): " + " -> ".join(cycle or [])


def test_the_cycle_finder_sees_a_cycle_made_only_of_type_checking_imports(tmp_path):
    """The typed graph really holds ``if TYPE_CHECKING:`` imports, so the test above can fail."""
    (tmp_path / "a.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import polymodal.b\n")
    untyped = list(imports("polymodal.a", tmp_path / "a.py", type_checking=False))
    typed = list(imports("polymodal.a", tmp_path / "a.py"))
    assert untyped == [] and typed == [("polymodal.b", 3)]
    assert find_cycle({"polymodal.a": ["polymodal.b"], "polymodal.b": ["polymodal.a"]}) is not None
