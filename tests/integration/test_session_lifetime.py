"""Session lifetime (issue 14, PROTOCOL.md §5.4): every record is sealed and
opened with the clock, a session is rekeyed before its time limit, and a peer
that never rekeys loses its link at the hard stop instead of keeping the key."""

from __future__ import annotations

import asyncio
import logging

import pytest
from helpers import DEADLINE_S, run, wait_until
from helpers.rigs import start_node
from meshlink import messages
from meshlink.errors import MeshLinkError, SessionExpiredError
from meshlink.frames import encode_frame
from meshlink_gw.crypto.handshake import Initiator
from meshlink_gw.crypto.identity import Identity
from meshlink_gw.crypto.session import Session
from meshlink_gw.runtime import now_ms

SHORT = {"session_rekey_after_ms": 400, "session_reject_after_ms": 1200,
         "idle_ping_ms": 100}


def test_sessions_rekeyed_before_their_time_limit(tmp_path):
    async def main():
        a = await start_node(tmp_path, "a", **SHORT)
        b = await start_node(tmp_path, "b", peers=[a.listen_addr], **SHORT)
        await wait_until(lambda: b.node_id in a.peers.links and a.node_id in b.peers.links)
        hashes = {a.peers.links[b.node_id].session.handshake_hash}
        delivered = 0
        # honest traffic across at least three rekeys
        while len(hashes) < 4:
            res = await a.send(b.node_id, b"across rekeys %d" % delivered)
            assert res.delivered, res
            delivered += 1
            link = a.peers.links.get(b.node_id)
            if link is not None and link.session is not None:
                hashes.add(link.session.handshake_hash)
            await asyncio.sleep(0.05)
        for node, other in ((a, b), (b, a)):
            live = node.peers.links[other.node_id].session
            assert live.reject_after_ms == 1200  # the operator's shorter limit applies
            assert not live.expired(now_ms())
        await b.stop()
        await a.stop()

    run(main())


async def _stubborn_peer(victim):
    """A peer (the project's own handshake code) that answers pings but never
    rekeys and announces listen_port 0: it cannot be dialed back."""
    init = Initiator(Identity.generate(), listen_port=0)
    r, w = await asyncio.open_connection(*victim.listen_addr)
    w.write(encode_frame(init.start()))
    w.write(encode_frame(init.receive(await _next_frame(r))))
    await w.drain()
    return init.session, r, w


async def _next_frame(r: asyncio.StreamReader) -> bytes:
    """One whole frame (every frame counts here: records are in sequence)."""
    length = int.from_bytes(await r.readexactly(4), "big")
    return await r.readexactly(length)


def test_peer_that_never_rekeys_is_cut_at_the_hard_stop(tmp_path, caplog):
    async def main():
        victim = await start_node(tmp_path, "victim", **SHORT)
        honest = await start_node(tmp_path, "honest", peers=[victim.listen_addr], **SHORT)
        session, r, w = await _stubborn_peer(victim)
        rekey_requests = 0
        pings_answered = 0
        loop = asyncio.get_running_loop()
        end = loop.time() + DEADLINE_S
        closed = False
        while loop.time() < end:
            try:
                frame = await asyncio.wait_for(_next_frame(r), end - loop.time())
            except (asyncio.IncompleteReadError, ConnectionError, EOFError, OSError):
                closed = True
                break
            try:
                msg = messages.decode(session.open(frame))
            except MeshLinkError:  # a record after our own limit: still a sign of life
                continue
            if msg.TYPE == "ping":
                w.write(encode_frame(session.seal(
                    messages.Pong(seq=msg.seq, sent_ms=msg.sent_ms).encode())))
                pings_answered += 1
            elif msg.TYPE == "error" and msg.code == "rekey":
                rekey_requests += 1
            elif msg.TYPE == "close":
                closed = True
                break
        w.close()
        assert closed, "the victim kept a session past its hard stop"
        assert pings_answered > 0
        await wait_until(lambda: victim.node_id in honest.peers.links)
        res = await honest.send(victim.node_id, b"honest traffic still flows")
        assert res.delivered, res
        await honest.stop()
        await victim.stop()
        return rekey_requests

    with caplog.at_level(logging.INFO):
        asked = run(main())
    # The stubborn peer cannot be dialed (listen_port 0), so the victim asked it.
    assert asked > 0
    assert "expired" in caplog.text


def test_session_refuses_records_past_its_time_limit():
    keys = {"send_key": b"k" * 32, "send_iv": b"i" * 12, "recv_key": b"k" * 32,
            "recv_iv": b"i" * 12}
    tx, rx = Session(**keys, created_ms=0), Session(**keys, created_ms=0)
    tx.shorten_lifetime(100, 200)
    rx.shorten_lifetime(100, 200)
    assert rx.open(tx.seal(b"fresh", 199), 199) == b"fresh"
    assert tx.needs_rekey(100) and not tx.expired(199) and tx.expired(200)
    with pytest.raises(SessionExpiredError):
        tx.seal(b"late", 200)
    late = Session(**keys, created_ms=0).seal(b"x", 0)
    with pytest.raises(SessionExpiredError):
        Session(**keys, created_ms=0).open(late, 180_000)
