"""The import rules of docs/ARCHITECTURE.md, checked on the source files.

Every import counts, wherever it sits (module level, inside a function, under
TYPE_CHECKING): a dependency hidden in a function is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GW = ROOT / "gateway" / "meshlink_gw"
CORE = ROOT / "shared" / "meshlink"

# What each part of meshlink_gw may import from meshlink_gw besides itself
# (docs/ARCHITECTURE.md, "Import rules"). Any part may import meshlink.
ALLOWED = {
    "runtime": set(),
    "storecheck": set(),
    "tasks": set(),
    "announce": set(),
    "probes": set(),
    "routing_log": set(),
    "mpy_shim": set(),
    "config": set(),
    "crypto": set(),
    "sim": set(),
    "transports": {"runtime", "tasks"},
    "node": {"announce", "config", "crypto", "probes", "routing_log", "runtime", "storecheck",
             "tasks"},
    "bridges": {"announce", "config", "runtime", "storecheck", "tasks", "transports"},
    "boards": {"announce", "bridges", "config", "crypto", "runtime", "storecheck", "tasks",
               "transports"},
    "web": set(),
    "cli": {"announce", "boards", "bridges", "config", "crypto", "node", "probes",
            "routing_log", "runtime", "sim", "storecheck", "tasks", "transports", "web"},
}
# The core runs on MicroPython: no I/O, clock, randomness or tasks, only these.
CORE_STDLIB = {"binascii", "gc", "hashlib", "heapq", "json", "micropython", "re", "struct",
               "sys", "cryptolib", "cryptography"}
NOT_PRODUCT = {"bench", "examples", "tests"}


def _module_name(path: Path, pkg_dir: Path) -> str:
    name = ".".join(path.relative_to(pkg_dir.parent).with_suffix("").parts)
    return name[: -len(".__init__")] if name.endswith(".__init__") else name


def _modules(pkg_dir: Path) -> dict[str, Path]:
    return {_module_name(p, pkg_dir): p for p in sorted(pkg_dir.rglob("*.py"))}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Absolute names of what the module at path imports: `from pkg import sub`
    counts as pkg.sub when that is a module, as pkg otherwise."""
    is_pkg = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = name.split(".")
                keep = len(parts) - node.level + (1 if is_pkg else 0)
                base = ".".join(parts[:keep] + ([base] if base else []))
            subs = [f"{base}.{a.name}" for a in node.names]
            out.update(s for s in subs if s in known)
            if not all(s in known for s in subs):
                out.add(base)
    return out


def _graph(pkg_dir: Path) -> dict[str, set[str]]:
    mods = _modules(pkg_dir)
    known = set(mods)
    return {m: _imports(m, p, known) for m, p in mods.items()}


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_each_part_imports_only_what_the_rules_allow():
    graph = _graph(GW)
    assert set(map(_part, graph)) - {""} == set(ALLOWED), "a part without a rule"
    broken = []
    for mod, deps in graph.items():
        part = _part(mod)
        for dep in deps:
            top = dep.split(".")[0]
            if top in NOT_PRODUCT:
                broken.append(f"{mod} imports {dep} (not product code)")
            if top != "meshlink_gw" or dep == "meshlink_gw":
                continue
            other = _part(dep)
            if other == part or other in ALLOWED.get(part, set()):
                continue
            if mod.endswith(".__main__") and other == "cli":
                continue  # `python -m meshlink_gw.<part>` entry points run the CLI
            broken.append(f"{mod} imports {dep}")
    assert not broken, "\n".join(sorted(broken))


def test_no_import_cycle_in_the_gateway_package():
    graph = _graph(GW)
    edges = {m: {d for d in deps if d in graph and d != m} for m, deps in graph.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    assert not cycles, cycles


def test_the_core_imports_only_itself_and_what_micropython_has():
    graph = _graph(CORE)
    bad = sorted(f"{m} imports {d}" for m, deps in graph.items() for d in deps
                 if d.split(".")[0] not in CORE_STDLIB | {"meshlink"})
    assert not bad, bad


def test_the_rules_see_what_they_check():
    """The checker itself: it finds a known edge and resolves relative imports."""
    graph = _graph(GW)
    assert "meshlink_gw.node.link" in graph["meshlink_gw.node.peers"]
    assert "meshlink.delivery" in graph["meshlink_gw.node.node"]
    assert "meshlink_gw.node.node" in graph["meshlink_gw.node"]
    assert "meshlink.delivery" in graph["meshlink_gw.sim.engine"]
