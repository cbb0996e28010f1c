"""The import structure of ``pipelines/``: no module imports itself back through others, and no stage imports a
stage above it (docs/architecture.md, "The tree, by stage").

Every ``import`` counts, wherever it stands (module level, inside a function, under ``TYPE_CHECKING``): a
function-level import that closes a cycle still ties the two modules together.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Lowest first: a module may import modules of its own floor or of a lower one.
FLOORS: tuple[tuple[str, ...], ...] = (
    ("pipelines.frames", "pipelines.errors", "pipelines.secrets", "pipelines.assets", "pipelines.version",
     "pipelines.gpu", "pipelines.cpu", "pipelines.listen", "pipelines.retention"),
    ("pipelines.settings", "pipelines.config", "pipelines.credentials"),
    ("pipelines.sources", "pipelines.detection"),
    ("pipelines.processing",),
    ("pipelines.sinks", "pipelines.store"),
    ("pipelines.engine",),
    ("pipelines.web", "pipelines.cluster", "pipelines.commands", "pipelines.evaluation", "pipelines.subscriber"),
    ("pipelines.cli", "pipelines.api", "pipelines"),
)
# The config gathers the sections each stage owns (each defined beside the code it configures): the config
# floor may import these modules, and only these, from above it.
CONFIG_SECTIONS = frozenset({
    "pipelines.sources.base", "pipelines.processing.zones", "pipelines.processing.overlays",
    "pipelines.processing.schedule", "pipelines.processing.motion",  # the schedule's section reads motion masks
    "pipelines.sinks.redis_conn", "pipelines.sinks.mqtt_conn", "pipelines.web.config", "pipelines.cluster.config",
    "pipelines.store.config", "pipelines.processing.calibration",
    "pipelines.processing.ground_filter",  # the calibration section measures speed with this filter
    "pipelines.processing.heatmap",
})


def _modules() -> dict[str, Path]:
    out = {}
    for path in (ROOT / "pipelines").rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imports(modules: dict[str, Path]) -> dict[str, set[str]]:
    """module -> the modules of ``pipelines`` it imports (the most specific module a name resolves to)."""

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    edges: dict[str, set[str]] = {}
    for module, path in modules.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*up, base] if base else up)
                names = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            else:
                continue
            for name in names:
                target = resolve(name) if name.split(".")[0] == "pipelines" else None
                if target is not None and target != module:
                    found.add(target)
        edges[module] = found
    return edges


def _floor(module: str) -> int:
    best, floor = -1, -1
    for level, prefixes in enumerate(FLOORS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, floor = len(prefix), level
    return floor


@pytest.fixture(scope="module")
def imports() -> dict[str, set[str]]:
    edges = _imports(_modules())
    # The walker sees what it must: a module-level, a function-level and a TYPE_CHECKING import.
    assert "pipelines.engine.inbox" in edges["pipelines.engine.runner"]
    assert "pipelines.engine.runner" in edges["pipelines.api"]
    assert "pipelines.config" in edges["pipelines.sinks.base"]
    return edges


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
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
                out.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_no_module_of_pipelines_imports_itself_back(imports):
    cycles = _cycles(imports)
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_the_cycle_finder_sees_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_every_module_has_a_floor(imports):
    assert not [m for m in imports if _floor(m) < 0]


def test_no_stage_imports_a_stage_above_it(imports):
    upward = [f"{m} -> {t}" for m, targets in sorted(imports.items()) for t in sorted(targets)
              if _floor(t) > _floor(m) and not (_floor(m) == 1 and t in CONFIG_SECTIONS)]
    assert not upward, "imports from a lower floor into a higher one: " + ", ".join(upward)


def test_the_config_sections_are_at_the_bottom_of_their_stage(imports):
    """What the config gathers may itself import only values, the config and other sections (or it would
    pull its whole stage under the config)."""
    allowed = CONFIG_SECTIONS | set().union(*(set(FLOORS[0]), set(FLOORS[1])))
    reaching = [f"{m} -> {t}" for m in sorted(CONFIG_SECTIONS) for t in sorted(imports[m])
                if t not in allowed and _floor(t) > 1]
    assert not reaching, ", ".join(reaching)
