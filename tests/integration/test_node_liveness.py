"""The node's adaptive heartbeat (docs/PROTOCOL.md §4), in process: a
neighbour that goes silent while it owes an answer is declared down and the
router hears it; link sockets carry TCP_USER_TIMEOUT; the settings are
checked once, at the edge."""

from __future__ import annotations

import socket

import pytest
from helpers import run, wait_until
from helpers.rigs import start_node
from meshlink.errors import ConfigError
from meshlink_gw.config import NodeConfig, override


def _silence(node, peer_id: str) -> None:
    """node stops answering peer_id (as if frozen): it reads nothing more from
    that link and sends nothing on it (its kernel still acknowledges TCP)."""
    conn = node.peers.links[peer_id]
    conn.writer.transport.pause_reading()
    conn.send_encoded = lambda payload, awaits_answer=False: None


def test_a_silent_neighbour_owing_an_answer_is_declared_down(tmp_path):
    async def main():
        a = await start_node(tmp_path, "a", retry_interval_ms=60_000)
        b = await start_node(tmp_path, "b", peers=[a.listen_addr])
        try:
            await wait_until(lambda: b.node_id in a.peers.links and a.node_id in b.peers.links)
            await wait_until(lambda: b.node_id in a.router.destinations(),
                             what="a has a route to b")
            assert (await a.send(b.node_id, b"before")).delivered
            _silence(b, a.node_id)
            a.originate(b.node_id, b"unanswered")  # the link now owes an answer
            await wait_until(lambda: a.peers.stats["links_silent"] == 1,
                             what="a declared b silent")
            assert b.node_id not in a.peers.links
            assert a.peers.stats["probes"] >= 1  # found by probing, not by the idle timeout
            assert not a.router.is_up(b.node_id)  # the router heard it at once
            assert b.node_id not in a.router.destinations()  # no route through b left
            assert a.status()["stats"]["links_silent"] == 1
        finally:
            await a.stop()
            await b.stop()
    run(main())


@pytest.mark.skipif(not hasattr(socket, "TCP_USER_TIMEOUT"), reason="Linux only")
def test_link_sockets_carry_the_tcp_user_timeout(tmp_path):
    async def main():
        a = await start_node(tmp_path, "a", tcp_user_timeout_ms=1500)
        b = await start_node(tmp_path, "b", peers=[a.listen_addr], tcp_user_timeout_ms=1500)
        try:
            await wait_until(lambda: b.node_id in a.peers.links and a.node_id in b.peers.links)
            for conn in (a.peers.links[b.node_id], b.peers.links[a.node_id]):
                sock = conn.writer.get_extra_info("socket")
                assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == 1500
        finally:
            await a.stop()
            await b.stop()
    run(main())


@pytest.mark.parametrize("key,value,expected", [
    ("probe_misses", 0, r"--probe-misses must be in 1\.\.100, got 0"),
    ("probe_interval_ms", 5, r"--probe-interval-ms must be at least 10, got 5"),
    ("idle_ping_ms", "5s", r"--idle-ping-ms: wrong type str"),
    ("tcp_user_timeout_ms", -1, r"--tcp-user-timeout-ms must be in 0\.\.600000, got -1"),
])
def test_liveness_settings_are_checked_once(key, value, expected):
    with pytest.raises(ConfigError, match=expected):
        override(NodeConfig(), {key: value})
