"""Real node processes over real sockets: a line mesh, relaying, restart."""

from __future__ import annotations

import json

from helpers import free_port


def _send(node, *args):
    out = node.cli("send", "--json", *args)
    return out.returncode, json.loads(out.stdout)


def test_line_of_three_directed_and_broadcast(spawn):
    n1 = spawn("n1")
    n2 = spawn("n2", peers=(n1.listen,))
    n3 = spawn("n3", peers=(n2.listen,))
    n2.wait_peers(2)
    assert {p["node_id"] for p in n2.status()["peers"]} == {n1.node_id, n3.node_id}
    assert {p["node_id"] for p in n1.status()["peers"]} == {n2.node_id}

    rc, res = _send(n1, "--to", n3.node_id, "over two hops")
    assert rc == 0 and res["delivered"] is True
    item = n3.wait_received(res["message_id"])
    assert item["text"] == "over two hops" and item["from"] == n1.node_id
    assert item["hops"] == 2

    rc, res = _send(n3, "--broadcast", "to everyone")
    assert rc == 0
    for node in (n1, n2):
        got = node.wait_received(res["message_id"])
        assert got["to"] is None and got["text"] == "to everyone"
    # delivered exactly once each, even though copies may arrive on several links
    assert [i["message_id"] for i in n1.received()].count(res["message_id"]) == 1


def test_status_json_fields(spawn):
    n1 = spawn("n1")
    n2 = spawn("n2", peers=(n1.listen,))
    st = n2.wait_peers(1)
    assert st["node_id"] == n2.node_id
    peer = st["peers"][0]
    assert set(peer) >= {"node_id", "address", "rtt_ms", "score"}
    assert peer["node_id"] == n1.node_id and peer["address"] == n1.listen


def test_middle_node_killed_and_restarted_restores_delivery(spawn, tmp_path):
    port2 = free_port()
    n1 = spawn("n1")
    n2 = spawn("n2", listen=f"127.0.0.1:{port2}", peers=(n1.listen,))
    n3 = spawn("n3", peers=(n2.listen,))
    n2.wait_peers(2)
    rc, res = _send(n1, "--to", n3.node_id, "before")
    assert res["delivered"]
    old_id = n2.node_id
    n2.kill()  # SIGKILL: no goodbye
    n2 = spawn("n2", listen=f"127.0.0.1:{port2}", peers=(n1.listen,))
    assert n2.node_id == old_id  # same data dir, same identity
    n2.wait_peers(2)
    rc, res = _send(n1, "--to", n3.node_id, "after restart")
    assert rc == 0 and res["delivered"], res
    assert n3.wait_received(res["message_id"])["text"] == "after restart"


def test_received_messages_survive_restart(spawn):
    n1 = spawn("n1")
    n2 = spawn("n2", peers=(n1.listen,))
    n2.wait_peers(1)
    rc, res = _send(n1, "--to", n2.node_id, "keep me")
    assert res["delivered"]
    assert n2.stop() == 0
    # node stopped: recv reads the inbox directly
    assert [i["text"] for i in n2.received()] == ["keep me"]
    n2 = spawn("n2", peers=(n1.listen,))  # same data directory
    assert [i["text"] for i in n2.received()] == ["keep me"]


def test_sigterm_exits_cleanly(spawn):
    n1 = spawn("n1")
    assert n1.stop() == 0
