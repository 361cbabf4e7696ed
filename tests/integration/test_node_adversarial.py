"""Hostile peers against in-process nodes: refused handshakes, tampered
session records, oversized frames, slowloris, a peer that never reads.
Each case must be refused with a logged reason while the node keeps serving
its other peers."""

from __future__ import annotations

import asyncio
import logging

from helpers import DEADLINE_S, run, wait_until
from helpers.rigs import start_node
from inproc import FrameProxy, read_frame, wait_closed_by_peer
from meshlink import messages
from meshlink.frames import Deframer, encode_frame
from meshlink_gw.crypto.handshake import Initiator
from meshlink_gw.crypto.identity import Identity


async def _healthy_pair(tmp_path, victim):
    """A second, well-behaved peer of the victim, to prove it keeps working."""
    other = await start_node(tmp_path, "other", peers=[victim.listen_addr])
    await wait_until(lambda: other.node_id in victim.peers.links)
    return other


async def _assert_still_serving(victim, other):
    res = await other.send(victim.node_id, b"still alive?")
    assert res.delivered, res


def test_wrong_network_key_refused(tmp_path, caplog):
    async def main():
        a = await start_node(tmp_path, "a", network_key=b"\x01" * 32)
        b = await start_node(tmp_path, "b", network_key=b"\x02" * 32,
                             peers=[a.listen_addr], reconnect_min_ms=5000)
        await wait_until(lambda: a.stats["handshakes_failed"] + b.stats["handshakes_failed"] > 0)
        assert not a.peers.links and not b.peers.links
        await b.stop()
        await a.stop()

    with caplog.at_level(logging.WARNING):
        run(main())
    assert "handshake with" in caplog.text and "refused" in caplog.text


async def _raw_handshake_attempt(victim, mutate) -> bool:
    """Send a (mutated) first flight; True if the victim hung up on us."""
    ident = Identity.generate()
    init = Initiator(ident, listen_port=1)
    m1 = mutate(init.start())
    r, w = await asyncio.open_connection(*victim.listen_addr)
    w.write(encode_frame(m1))
    await w.drain()
    closed = await wait_closed_by_peer(r, DEADLINE_S)
    w.close()
    return closed


def _flip_body_byte(m1: bytes) -> bytes:
    msg = messages.decode(m1)
    body = bytearray(msg.body)
    body[100] ^= 0x40  # inside the ML-KEM encapsulation key
    msg.body = bytes(body)
    return msg.encode()


def _rsa_suite(m1: bytes) -> bytes:
    msg = messages.decode(m1)
    msg.suites = ["rsa2048-oaep/aes256gcm"]
    return msg.encode()


def test_tampered_and_unknown_suite_handshakes_refused(tmp_path, caplog):
    async def main():
        victim = await start_node(tmp_path, "victim")
        other = await _healthy_pair(tmp_path, victim)
        assert await _raw_handshake_attempt(victim, _flip_body_byte)
        assert await _raw_handshake_attempt(victim, _rsa_suite)
        assert victim.stats["handshakes_failed"] == 2
        await _assert_still_serving(victim, other)
        await other.stop()
        await victim.stop()

    with caplog.at_level(logging.WARNING):
        run(main())
    assert "VersionError" in caplog.text
    assert caplog.text.count("refused") >= 2


def test_oversized_length_prefix_and_slowloris_cut_off(tmp_path, caplog):
    async def main():
        victim = await start_node(tmp_path, "victim", handshake_timeout_ms=500)
        other = await _healthy_pair(tmp_path, victim)
        r, w = await asyncio.open_connection(*victim.listen_addr)
        w.write(b"\xff\xff\xff\xff")  # 4 GiB announced
        await w.drain()
        assert await wait_closed_by_peer(r, DEADLINE_S)
        w.close()
        # slowloris: a valid-looking start, then one byte at a time, never finishing
        # (fewer bytes than announced however long it takes): only the victim's
        # handshake deadline can end it ("deadline passed", checked below)
        r, w = await asyncio.open_connection(*victim.listen_addr)
        w.write(b"\x00\x00\x10\x00")  # a 4096-byte frame
        closed = False
        for _ in range(min(4000, int(DEADLINE_S / 0.05))):
            try:
                w.write(b"{")
                await w.drain()
            except ConnectionError:
                closed = True
                break
            if await wait_closed_by_peer(r, 0.05):
                closed = True
                break
        assert closed
        await _assert_still_serving(victim, other)
        await other.stop()
        await victim.stop()

    with caplog.at_level(logging.WARNING):
        run(main())
    assert "FrameTooLargeError" in caplog.text
    assert "deadline passed" in caplog.text


def _session_tamper(kind):
    def tamper(direction, index, frame):
        # frames 0-2 are the handshake; c2s 1 is M3; session records start at c2s 2
        if direction != "c2s" or index < 4:
            return [frame]
        if kind == "replay" and index == 4:
            return [frame, frame]
        if kind == "flip" and index == 4:
            bad = bytearray(frame)
            bad[-1] ^= 1
            return [bytes(bad)]
        if kind == "reorder" and index == 4:
            tamper.held = frame
            return []
        if kind == "reorder" and index == 5:
            return [frame, tamper.held]
        return [frame]

    return tamper


def test_replayed_reordered_bitflipped_records_rejected(tmp_path, caplog):
    async def main():
        victim = await start_node(tmp_path, "victim")
        other = await _healthy_pair(tmp_path, victim)
        for kind in ("replay", "flip", "reorder"):
            # counted from before the link: the tampered record may be one of
            # the first control frames (the empty hopack, the whole table)
            before = victim.stats["records_rejected"]
            proxy = await FrameProxy(victim.listen_addr, _session_tamper(kind)).start()
            a = await start_node(tmp_path, f"a-{kind}", peers=[proxy.addr],
                                 reconnect_min_ms=50)
            await wait_until(lambda a=a: a.node_id in victim.peers.links)
            for i in range(4):
                a.originate(None, f"{kind} {i}".encode())
            await wait_until(lambda b=before: victim.stats["records_rejected"] > b)
            await _assert_still_serving(victim, other)
            await a.stop()
            await proxy.close()
        await other.stop()
        await victim.stop()

    with caplog.at_level(logging.WARNING):
        run(main())
    assert "ReplayError" in caplog.text and "AuthError" in caplog.text


def test_peer_that_never_reads_is_cut_off(tmp_path, caplog):
    async def main():
        victim = await start_node(tmp_path, "victim", write_buffer_high_bytes=64 * 1024,
                                  slow_peer_timeout_ms=300)
        other = await _healthy_pair(tmp_path, victim)
        ident = Identity.generate()
        init = Initiator(ident, listen_port=1)
        r, w = await asyncio.open_connection(*victim.listen_addr, limit=1024)
        w.write(encode_frame(init.start()))
        w.write(encode_frame(init.receive(await read_frame(r, Deframer()))))
        await w.drain()
        await wait_until(lambda: ident.node_id in victim.peers.links)
        # never read again; the victim broadcasts a lot
        # (bounded: 64 MB at most, far beyond the kernel's socket buffers)
        payload = b"x" * 16000
        for _ in range(4000):
            await victim.send(None, payload)
            if ident.node_id not in victim.peers.links:
                break
        assert ident.node_id not in victim.peers.links
        await _assert_still_serving(victim, other)
        w.close()
        await other.stop()
        await victim.stop()

    with caplog.at_level(logging.WARNING):
        run(main())
    assert "stopped reading" in caplog.text
