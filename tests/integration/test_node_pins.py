"""Peer pinning (issue 14), with real `meshlink node` processes: a static peer
given as NODE_ID@HOST:PORT accepts only that identity; a HOST:PORT peer is
pinned to the first identity met there (trust on first use); another
identity at a pinned address is refused and logged while the node keeps
serving its other peers; the operator sees and resets pins with `meshlink
pins`."""

from __future__ import annotations

import json

from helpers import free_port, poll_until
from helpers.procs import Node
from meshlink_gw.crypto.identity import Identity

FAST = "[node]\nreconnect_max_ms = 300\nidle_ping_ms = 200\n"


def _start(procs, node: Node) -> Node:
    procs.append(node)
    return node.start()


def _victim(tmp_path, procs, peer: str, other: Node) -> Node:
    conf = tmp_path / "victim.toml"
    conf.write_text(FAST)
    return _start(procs, Node(tmp_path / "victim", peers=(peer, other.listen),
                              extra=("--config", str(conf))))


def _peer_ids(node: Node) -> set[str]:
    return {p["node_id"] for p in node.status()["peers"]}


def _refused_while_serving(victim: Node, other: Node, impostor: Node) -> None:
    before = victim.status()["stats"]["handshakes_failed"]
    poll_until(lambda: victim.status()["stats"]["handshakes_failed"] >= before + 2,
               what=f"two more refused dials than {before}")
    assert impostor.node_id not in _peer_ids(victim)
    out = victim.cli("send", "--json", "--to", other.node_id, "others still served")
    assert json.loads(out.stdout)["delivered"], out


def test_unpinned_static_peer_is_pinned_on_first_use_and_reset_by_the_operator(
        tmp_path, procs):
    addr = f"127.0.0.1:{free_port()}"
    other = _start(procs, Node(tmp_path / "other"))
    first = _start(procs, Node(tmp_path / "first", listen=addr))
    victim = _victim(tmp_path, procs, addr, other)
    poll_until(lambda: first.node_id in _peer_ids(victim), what="first peer linked")
    first.stop()
    poll_until(lambda: first.node_id not in _peer_ids(victim), what="first peer gone")
    impostor = _start(procs, Node(tmp_path / "impostor", listen=addr))
    _refused_while_serving(victim, other, impostor)
    pins = json.loads(victim.cli("pins", "--json").stdout)
    assert pins[addr] == first.node_id
    out = victim.cli("pins", "--reset", addr)
    assert out.returncode == 0, out.stderr
    # the operator accepted the new identity: the next dial pins it
    poll_until(lambda: impostor.node_id in _peer_ids(victim), what="new identity linked")
    assert json.loads(victim.cli("pins", "--json").stdout)[addr] == impostor.node_id
    log_text = victim.log_path.read_text()
    assert f"pinned {addr}" in log_text
    assert "AuthError" in log_text


def test_pinned_static_peer_refuses_another_identity(tmp_path, procs):
    addr = f"127.0.0.1:{free_port()}"
    other = _start(procs, Node(tmp_path / "other"))
    owner = Identity.load_or_create(tmp_path / "owner")
    impostor = _start(procs, Node(tmp_path / "impostor", listen=addr))
    victim = _victim(tmp_path, procs, f"{owner.node_id}@{addr}", other)
    _refused_while_serving(victim, other, impostor)
    impostor.stop()
    real = _start(procs, Node(tmp_path / "owner", listen=addr))
    assert real.node_id == owner.node_id
    poll_until(lambda: real.node_id in _peer_ids(victim), what="the pinned owner linked")
    assert "AuthError" in victim.log_path.read_text()
