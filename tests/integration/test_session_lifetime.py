"""Session lifetime (issue 14, PROTOCOL.md §5.4), against real `meshlink node`
processes: every record is sealed and opened with the clock, a session is
rekeyed before its time limit while messages keep being delivered, and a
peer that never rekeys loses its link at the hard stop instead of keeping
the key."""

from __future__ import annotations

import asyncio
import json

import pytest
from helpers import DEADLINE_S, poll_until, run
from helpers.attacker import addr_of
from helpers.procs import Node
from meshlink import messages
from meshlink.errors import MeshLinkError, SessionExpiredError
from meshlink.frames import encode_frame
from meshlink_gw.crypto.handshake import Initiator
from meshlink_gw.crypto.identity import Identity
from meshlink_gw.crypto.session import Session

SHORT = ("[node]\nsession_rekey_after_ms = 400\nsession_reject_after_ms = 1200\n"
         "idle_ping_ms = 100\n")


def _node(tmp_path, procs, name: str, *peers: str) -> Node:
    conf = tmp_path / f"{name}.toml"
    conf.write_text(SHORT)
    node = Node(tmp_path / name, peers=peers, extra=("--config", str(conf)))
    procs.append(node)
    return node.start()


def _delivered(src: Node, dst: Node, text: str) -> None:
    out = src.cli("send", "--json", "--to", dst.node_id, text)
    assert out.returncode == 0 and json.loads(out.stdout)["delivered"], out


def test_sessions_rekeyed_before_their_time_limit(tmp_path, procs):
    a = _node(tmp_path, procs, "a")
    b = _node(tmp_path, procs, "b", a.listen)
    b.wait_peers(1)
    first = a.status()["stats"]["links_established"]
    sent = 0
    # honest traffic across at least three rekeys (each one a new link, §5.4)
    while a.status()["stats"]["links_established"] < first + 3:
        _delivered(a, b, "across rekeys %d" % sent)
        sent += 1
        assert sent < 200, "no three rekeys while sending 200 messages"
    _delivered(b, a, "and back")
    log_text = a.log_path.read_text() + b.log_path.read_text()
    assert "rekeying link" in log_text
    assert "expired before a rekey" not in log_text  # never reached the hard stop


async def _stubborn_peer(listen: str):
    """A peer (the project's own handshake code) that answers pings but never
    rekeys and announces listen_port 0: it cannot be dialed back."""
    init = Initiator(Identity.generate(), listen_port=0)
    r, w = await asyncio.open_connection(*addr_of(listen))
    w.write(encode_frame(init.start()))
    w.write(encode_frame(init.receive(await _next_frame(r))))
    await w.drain()
    return init.session, r, w


async def _next_frame(r: asyncio.StreamReader) -> bytes:
    """One whole frame (every frame counts here: records are in sequence)."""
    length = int.from_bytes(await r.readexactly(4), "big")
    return await r.readexactly(length)


def test_peer_that_never_rekeys_is_cut_at_the_hard_stop(tmp_path, procs):
    victim = _node(tmp_path, procs, "victim")
    honest = _node(tmp_path, procs, "honest", victim.listen)

    async def main():
        session, r, w = await _stubborn_peer(victim.listen)
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
        return closed, pings_answered, rekey_requests

    closed, pings_answered, asked = run(main())
    assert closed, "the victim kept a session past its hard stop"
    assert pings_answered > 0
    # The stubborn peer cannot be dialed (listen_port 0), so the victim asked it.
    assert asked > 0
    poll_until(lambda: "expired" in victim.log_path.read_text(), what="the expiry logged")
    honest.wait_peers(1)
    _delivered(honest, victim, "honest traffic still flows")


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
