"""Peer pinning (issue 14): a static peer given as NODE_ID@HOST:PORT accepts
only that identity; a HOST:PORT peer is pinned to the first identity met
there (trust on first use); another identity at a pinned address is refused
and logged while the node keeps serving its other peers; the operator sees
and resets pins with `meshlink pins`."""

from __future__ import annotations

import asyncio
import json
import logging

from helpers import cli, free_port, run, wait_until
from helpers.rigs import start_node
from meshlink_gw.config import NodeConfig
from meshlink_gw.config.schema import parse_peer
from meshlink_gw.crypto.identity import Identity
from meshlink_gw.node import Node


async def _node_at(root, name: str, port: int) -> Node:
    cfg = NodeConfig(data_dir=root / name, listen=("127.0.0.1", port))
    node = Node(cfg, Identity.load_or_create(cfg.data_dir))
    await node.start()
    return node


async def _victim(root, peer: str, other) -> Node:
    cfg = NodeConfig(data_dir=root / "victim", listen=("127.0.0.1", 0),
                     peers=(parse_peer(peer, what="--peer"), other.listen_addr),
                     reconnect_max_ms=300, idle_ping_ms=200)
    node = Node(cfg, Identity.load_or_create(cfg.data_dir))
    await node.start()
    return node


async def _refused_while_serving(victim, other, impostor) -> None:
    before = victim.peers.stats["handshakes_failed"]
    await wait_until(lambda: victim.peers.stats["handshakes_failed"] >= before + 2,
                     what=f"two more refused dials than {before}: {victim.peers.stats}")
    assert impostor.node_id not in victim.peers.links
    assert (await victim.send(other.node_id, b"others still served")).delivered


def test_unpinned_static_peer_is_pinned_on_first_use_and_reset_by_the_operator(
        tmp_path, caplog):
    port = free_port()

    async def main():
        other = await start_node(tmp_path, "other")
        first = await _node_at(tmp_path, "first", port)
        victim = await _victim(tmp_path, f"127.0.0.1:{port}", other)
        await wait_until(lambda: first.node_id in victim.peers.links)
        await first.stop()
        await wait_until(lambda: first.node_id not in victim.peers.links)
        impostor = await _node_at(tmp_path, "impostor", port)
        await _refused_while_serving(victim, other, impostor)
        pins = json.loads((await asyncio.to_thread(
            cli, "pins", "--data-dir", str(tmp_path / "victim"), "--json")).stdout)
        assert pins[f"127.0.0.1:{port}"] == first.node_id
        out = await asyncio.to_thread(cli, "pins", "--data-dir", str(tmp_path / "victim"),
                                      "--reset", f"127.0.0.1:{port}")
        assert out.returncode == 0, out.stderr
        # the operator accepted the new identity: the next dial pins it
        await wait_until(lambda: impostor.node_id in victim.peers.links)
        assert victim.peers.pins.get(("127.0.0.1", port)) == impostor.node_id
        for n in (impostor, victim, other):
            await n.stop()

    with caplog.at_level(logging.WARNING):
        run(main())
    assert "pinned 127.0.0.1:%d" % port in caplog.text
    assert "AuthError" in caplog.text


def test_pinned_static_peer_refuses_another_identity(tmp_path, caplog):
    port = free_port()

    async def main():
        other = await start_node(tmp_path, "other")
        owner = Identity.load_or_create(tmp_path / "owner")
        impostor = await _node_at(tmp_path, "impostor", port)
        victim = await _victim(tmp_path, f"{owner.node_id}@127.0.0.1:{port}", other)
        await _refused_while_serving(victim, other, impostor)
        await impostor.stop()
        real = await _node_at(tmp_path, "owner", port)
        await wait_until(lambda: real.node_id in victim.peers.links)
        assert real.node_id == owner.node_id
        for n in (real, victim, other):
            await n.stop()

    with caplog.at_level(logging.WARNING):
        run(main())
    assert "AuthError" in caplog.text
