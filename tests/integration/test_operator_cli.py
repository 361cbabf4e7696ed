"""The operator's view from the terminal, against real node processes: the
mesh-wide node list with names, name and prefix resolution, ping and trace
(which leave nothing in the target's inbox), and fast, clear failures."""

from __future__ import annotations

import json

from helpers import poll_until


def _nodes(node) -> list[dict]:
    out = node.cli("nodes", "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def _line(spawn):
    a = spawn("a", extra=("--name", "alpha"))
    b = spawn("b", peers=(a.listen,), extra=("--name", "bravo"))
    c = spawn("c", peers=(b.listen,), extra=("--name", "charlie"))
    b.wait_peers(2)

    def charlie_known():
        rows = {r["node_id"]: r for r in _nodes(a)}
        row = rows.get(c.node_id)
        return rows if row and row["name"] == "charlie" and row["hops"] == 2 else None

    return a, b, c, poll_until(charlie_known, what="alpha lists charlie, named, 2 hops away")


def test_nodes_lists_the_whole_mesh_with_names_and_routes(spawn):
    a, b, c, rows = _line(spawn)
    assert rows[a.node_id]["self"] and rows[a.node_id]["name"] == "alpha"
    assert rows[b.node_id]["name"] == "bravo" and rows[b.node_id]["hops"] == 1
    assert rows[b.node_id]["rtt_ms"] is not None  # a neighbour: measured by link pings
    assert rows[c.node_id]["next_hop"] == b.node_id and rows[c.node_id]["reachable"]
    text = a.cli("nodes")
    assert text.returncode == 0
    line = next(ln for ln in text.stdout.splitlines() if ln.startswith(c.node_id))
    assert "charlie" in line and " bravo " in f" {line} "


def test_ping_and_trace_by_name_and_prefix_leave_no_inbox_message(spawn):
    a, b, c, _ = _line(spawn)
    out = a.cli("ping", "charlie", "-c", "2", "-i", "0.1")
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("reply from") == 2 and "0% loss" in out.stdout
    out = a.cli("trace", c.node_id[:6])
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "2 hop(s)" in lines[0]
    assert "alpha" in lines[1] and "bravo" in lines[2] and "charlie" in lines[3]
    assert all("rtt" in ln and " ms" in ln for ln in lines[2:4])
    assert c.received() == [] and b.received() == []
    rows = {r["node_id"]: r for r in _nodes(a)}
    assert rows[c.node_id]["rtt_ms"] is not None  # from the answered probes
    st = c.status()
    assert st["stats"]["probes_answered"] >= 3
    # a name resolves for send too, and the message does arrive
    out = a.cli("send", "--json", "--to", "charlie", "hello by name")
    assert out.returncode == 0, out.stderr
    c.wait_received(json.loads(out.stdout)["message_id"])


def test_unknown_or_ambiguous_node_fails_at_once_with_a_clear_message(spawn):
    a = spawn("a", extra=("--name", "alpha"))
    unknown = "0123abcd-0000-4000-8000-000000000000"
    for args in (("send", "--to", unknown, "x"), ("ping", "nobody"), ("trace", "ffff")):
        out = a.cli(*args)
        assert out.returncode == 1
        err = out.stderr.strip()
        assert err.startswith("meshlink: error: ") and "meshlink nodes" in err, err
        assert "Traceback" not in out.stderr and "LocalProtocolError" not in err
    out = a.cli("send", "--to", unknown, "x")
    assert f"unknown node {unknown}" in out.stderr
