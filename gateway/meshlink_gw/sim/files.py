"""`meshlink sim --topology-file` and `--failures-file`: read and check once.

Topology file (JSON)::

    {"nodes": ["a", "b", "c"], "edges": [["a", "b"], ["b", "c"]]}

Failures file (JSON)::

    {"failures": [{"node": "b", "at_ms": 20000, "until_ms": 50000, "mode": "silent"}]}

at_ms / until_ms are simulated time from the start of the run (the warm-up
included); until_ms is optional (the node never comes back). mode "silent":
the node stops answering and its neighbours get no error (they detect it by
their heartbeat, docs/ROUTING.md "Failure detection"); "clean": its
connections close, so every neighbour learns at once. Without a topology
file, failure nodes are named by their index ("0" .. "n-1").

Rule: a bad file raises ConfigError naming the option and the file, one
line (cli/app.py: exit 2), before any run starts.
"""

from __future__ import annotations

import json
import math

from meshlink.errors import ConfigError

MODES = ("silent", "clean")
MAX_NODES = 100000


def _read_json(opt: str, path: str):
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise ConfigError(f"{opt} {path}: cannot read ({e.strerror})")
    except UnicodeDecodeError:
        raise ConfigError(f"{opt} {path}: not UTF-8 text")
    try:
        return json.loads(text)
    except ValueError as e:
        raise ConfigError(f"{opt} {path}: not JSON ({str(e).splitlines()[0]})")


def check_graph(g, where: str = "--topology-file") -> dict:
    """A {"nodes": [names], "edges": [[name, name]]} object -> {"nodes": names,
    "edges": [[i, j]] (indices, each link once)}. Raises ConfigError."""
    if not isinstance(g, dict) or set(g) - {"nodes", "edges"} or "nodes" not in g \
            or "edges" not in g:
        raise ConfigError(f"{where}: expected an object with exactly the keys "
                          "\"nodes\" and \"edges\"")
    nodes, edges = g["nodes"], g["edges"]
    if not isinstance(nodes, list) or not all(isinstance(x, str) and x for x in nodes):
        raise ConfigError(f"{where}: \"nodes\" must be a list of non-empty names")
    if not 2 <= len(nodes) <= MAX_NODES:
        raise ConfigError(f"{where}: needs 2 to {MAX_NODES} nodes, got {len(nodes)}")
    idx: dict = {}
    for i, name in enumerate(nodes):
        if name in idx:
            raise ConfigError(f"{where}: node {name!r} is listed twice")
        idx[name] = i
    if not isinstance(edges, list):
        raise ConfigError(f"{where}: \"edges\" must be a list of [name, name] pairs")
    seen = set()
    out = []
    for e in edges:
        if not (isinstance(e, list) and len(e) == 2 and all(isinstance(x, str) for x in e)):
            raise ConfigError(f"{where}: edge {e!r} is not a [name, name] pair")
        a, b = e
        for x in (a, b):
            if x not in idx:
                raise ConfigError(f"{where}: edge {e!r} names an unknown node {x!r}")
        if a == b:
            raise ConfigError(f"{where}: edge {e!r} links a node to itself")
        i, j = sorted((idx[a], idx[b]))
        if (i, j) in seen:
            continue  # the same link listed in both directions
        seen.add((i, j))
        out.append([i, j])
    if not out:
        raise ConfigError(f"{where}: no edges")
    return {"nodes": list(nodes), "edges": out}


def check_failures(f, names: list, where: str = "--failures-file") -> list:
    """A {"failures": [...]} object -> [{"node": index, "at_ms", "until_ms" (or
    None), "mode"}] sorted by at_ms, for nodes named in names. Overlapping
    failures of one node are refused. Raises ConfigError."""
    if not isinstance(f, dict) or set(f) != {"failures"} or not isinstance(f["failures"], list):
        raise ConfigError(f"{where}: expected an object {{\"failures\": [...]}}")
    idx = {n: i for i, n in enumerate(names)}
    out = []
    for n, item in enumerate(f["failures"]):
        at = f"{where}: failure {n + 1}"
        if not isinstance(item, dict):
            raise ConfigError(f"{at}: expected an object")
        extra = set(item) - {"node", "at_ms", "until_ms", "mode"}
        if extra:
            raise ConfigError(f"{at}: unknown key {sorted(extra)[0]!r} (known: node, at_ms, "
                              "until_ms, mode)")
        node = item.get("node")
        if not isinstance(node, str) or node not in idx:
            raise ConfigError(f"{at}: node {node!r} is not in the topology")
        t0 = item.get("at_ms")
        if not isinstance(t0, (int, float)) or not _num(t0) or t0 < 0:
            raise ConfigError(f"{at}: at_ms {t0!r} must be a number of ms, at least 0")
        t1 = item.get("until_ms")
        if t1 is not None and (not _num(t1) or not t1 > t0):
            raise ConfigError(f"{at}: until_ms {t1!r} must be a number of ms after at_ms {t0!r}")
        mode = item.get("mode", "silent")
        if mode not in MODES:
            raise ConfigError(f"{at}: mode {mode!r}: expected one of {', '.join(MODES)}")
        out.append({"node": idx[node], "at_ms": float(t0),
                    "until_ms": None if t1 is None else float(t1), "mode": mode})
    out.sort(key=lambda r: (r["node"], r["at_ms"]))
    for a, b in zip(out, out[1:], strict=False):
        if a["node"] == b["node"] and (a["until_ms"] is None or a["until_ms"] > b["at_ms"]):
            raise ConfigError(f"{where}: node {names[a['node']]!r} fails again at "
                              f"{b['at_ms']:g} ms before it is back")
    out.sort(key=lambda r: (r["at_ms"], r["node"]))
    return out


def _num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def load_topology(path: str) -> dict:
    """Read and check a topology file. Raises ConfigError."""
    return check_graph(_read_json("--topology-file", path), f"--topology-file {path}")


def load_failures(path: str, names: list) -> list:
    """Read and check a failures file against the node names. Raises ConfigError."""
    return check_failures(_read_json("--failures-file", path), names,
                          f"--failures-file {path}")
