"""Rekey: when a session reaches its limit, a fresh handshake replaces it and
traffic keeps flowing with new keys."""

from __future__ import annotations

from helpers import run, wait_until
from helpers.rigs import start_node
from meshlink_gw.crypto.session import Session


def test_session_limit_triggers_fresh_handshake(tmp_path):
    async def main():
        a = await start_node(tmp_path, "a", idle_ping_ms=100)
        b = await start_node(tmp_path, "b", peers=[a.listen_addr], idle_ping_ms=100)
        await wait_until(lambda: b.node_id in a.peers.links and a.node_id in b.peers.links)
        old_a, old_b = a.peers.links[b.node_id], b.peers.links[a.node_id]
        old_hash = old_a.session.handshake_hash
        # Pretend both sides used up the session's budget (the real limits are
        # 120 s / 2^23 records): the heartbeat must rekey.
        worn_out = {id(old_a.session), id(old_b.session)}
        real = Session.needs_rekey
        Session.needs_rekey = lambda self, now: id(self) in worn_out or real(self, now)
        await wait_until(lambda: a.peers.links.get(b.node_id) not in (None, old_a)
                         and b.peers.links.get(a.node_id) not in (None, old_b))
        new = a.peers.links[b.node_id]
        assert new.session.handshake_hash != old_hash
        await wait_until(lambda: old_a.closed and old_b.closed)
        res = await a.send(b.node_id, b"after rekey")
        assert res.delivered
        await a.stop()
        await b.stop()

    real = Session.needs_rekey
    try:
        run(main())
    finally:
        Session.needs_rekey = real
