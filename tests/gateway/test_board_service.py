"""The gateway board service in-process: real nodes on loopback, CPython
stand-in boards (examples/sim_board.py) for the protocol corner cases that the
firmware end-to-end tests cannot provoke on purpose."""

from __future__ import annotations

import asyncio
import os
import stat

import pytest
from helpers import DEADLINE_S, wait_until
from helpers.rigs import Rig, rig_for
from meshlink import boardlink, cjson
from meshlink.errors import ConfigError, TransportError
from meshlink.messages import MeshMessage
from meshlink.nodeid import new_message_id
from meshlink_gw.boards.registry import BoardRegistry
from meshlink_gw.boards.sessions import TokenBucket
from meshlink_gw.config import override, parse_config
from meshlink_gw.crypto.identity import Identity


def test_gateway_config_tables_and_errors():
    cfg = override(parse_config({"gateway": {"board_udp": "0.0.0.0:7500", "board_tcp": "off",
                                             "beacon": False},
                                 "boards": {"rate_records_per_s": 5, "queue_max_messages": 9}}
                                ).gateway, {"board_udp": "127.0.0.1:9"})
    assert cfg.board_udp == ("127.0.0.1", 9) and cfg.board_tcp is None and not cfg.beacon
    assert cfg.rate_records_per_s == 5 and cfg.queue_max_messages == 9
    for bad in ({"gateway": {"rate_burst": 1}}, {"boards": {"board_udp": "1.2.3.4:5"}},
                {"boards": {"nonsense": 1}}, {"boards": {"retry_ms": "fast"}},
                {"boards": {"rate_records_per_s": 0}}, {"gateway": {"board_tcp": "nohost"}},
                {"boards": {"forward_broadcasts": 1}}, {"gateway": []}):
        with pytest.raises(ConfigError):
            parse_config(bad)


def test_token_bucket_allows_burst_then_rate():
    b = TokenBucket(10, 5, now_ms=0)
    assert [b.take(0) for _ in range(6)] == [True] * 5 + [False]
    assert b.take(100) and not b.take(100)  # 10/s: one token per 100 ms
    assert sum(b.take(t) for t in range(110, 1110, 10)) == 10


def test_registry_queue_semantics(tmp_path):
    reg = BoardRegistry(tmp_path)
    assert stat.S_IMODE(os.stat(reg.path).st_mode) == 0o600
    rec = reg.add("b1", "unix", "udp")
    assert reg.by_board_id(rec.board_id).node_id == rec.node_id
    assert len(rec.psk) == 32 and len(rec.board_id) == 8 and b"PRIVATE KEY" in rec.identity_pem
    with pytest.raises(ConfigError):
        reg.add("b1", "unix", "udp")
    with pytest.raises(ConfigError):
        reg.add("../x", "unix", "udp")
    kw = {"max_messages": 3, "max_bytes": 1 << 20}
    src = Identity.generate().node_id
    assert reg.enqueue("b1", src, rec.node_id, "o1", "a1", b"one", 2, **kw) == "queued"
    assert reg.enqueue("b1", src, rec.node_id, "o1", "a1-retry", b"one", 2, **kw) == "duplicate"
    assert reg.enqueue("b1", src, rec.node_id, "o2", "a2", b"two", 2, **kw) == "queued"
    assert reg.enqueue("b1", src, rec.node_id, "o3", None, b"three", 2, **kw) == "queued"
    assert reg.enqueue("b1", src, rec.node_id, "o4", None, b"four", 2, **kw) == "full"
    head = reg.head("b1")
    assert head.origin_id == "o1" and head.ack_id == "a1-retry"  # the newest attempt
    reg.mark_delivered(head)
    assert reg.enqueue("b1", src, rec.node_id, "o1", "a1-late", b"one", 2, **kw) == "delivered"
    assert [q.origin_id for q in reg.queued("b1")] == ["o2", "o3"]
    assert reg.expire(max_age_ms=3_600_000) == []
    assert [q.origin_id for q in reg.expire(max_age_ms=-1)] == ["o2", "o3"]
    assert reg.revoke("b1").revoked and reg.get("b1").revoked_unix_ms is not None
    reg.close()


async def test_reading_enters_the_mesh_from_the_board_node_id(tmp_path):
    async with rig_for(tmp_path) as rig:
        b = await rig.online()
        b.reading("temp", 23_500, 1, to=rig.peer.node_id)
        b.reading("temp", 23_600, 2)  # to the gateway only
        await wait_until(lambda: any(r.src == b.node_id for r in rig.peer.inbox.since(0)
                                     if r.dst is not None))
        got = [r for r in rig.peer.inbox.since(0) if r.dst == rig.peer.node_id][0]
        body = cjson.loads(got.data)
        assert body == {"kind": "reading", "board": "b1", "node_id": b.node_id, "sensor": "temp",
                        "value_milli": 23_500, "unit": "C", "seq": 1}
        assert got.hops == 2  # board -> gateway -> peer
        await wait_until(lambda: any(r.dst == rig.gw_node.node_id
                                     for r in rig.gw_node.inbox.since(0)))
        # the board came online: its node ID was announced to the mesh; the peer
        # routed it (it knows the board is behind the gateway) but did not store it
        await wait_until(lambda: rig.peer.stats["announces"] >= 1)
        assert not any(b'"announce"' in r.data for r in rig.peer.inbox.since(0))
        d = rig.peer.router.originate(MeshMessage(src=rig.peer.node_id, dst=b.node_id,
                                                  data=b"", message_id=new_message_id(
                                                      os.urandom(16)), ttl=8, path=[]), 0)
        assert d.mode in ("direct", "route") and d.forward[0][0] == rig.gw_node.node_id
        await wait_until(lambda: rig.svc.stats["board_sends_acked"] >= 1)


async def test_mesh_ack_only_after_the_board_confirms(tmp_path):
    async with rig_for(tmp_path) as rig:
        b = await rig.online()
        msg, fut = rig.peer.originate(b.node_id, b"switch on")
        got = await b.recv_msg(ack=False)
        assert got["data"] == b"switch on" and got["from"] == rig.peer.node_id
        again = await b.recv_msg(ack=False)  # retransmitted, same id, until acked
        assert again["id"] == got["id"] == msg.origin_id
        assert not fut.done()
        b.send({"t": "ack", "id": got["id"]})
        res = await asyncio.wait_for(fut, DEADLINE_S)
        assert res.delivered
        assert rig.reg.queued("b1") == []


async def test_queued_while_offline_then_delivered_in_order(tmp_path):
    async with rig_for(tmp_path) as rig:
        futs = [rig.peer.originate(rig.recs["b1"].node_id, b"m%d" % i)[1] for i in range(4)]
        await wait_until(lambda: len(rig.reg.queued("b1")) == 4)
        assert not any(f.done() for f in futs)
        b = await rig.online()
        got = [(await b.recv_msg())["data"] for _ in range(4)]
        assert got == [b"m0", b"m1", b"m2", b"m3"]
        results = await asyncio.wait_for(asyncio.gather(*futs), DEADLINE_S)
        assert all(r.delivered for r in results)


async def test_record_before_confirm_gets_the_challenge_again(tmp_path):
    async with rig_for(tmp_path) as rig:
        b = rig.board()
        b._send_raw = lambda data: rig.udp.sock.sendto(data, rig.svc.udp_addr)
        b.client = boardlink.BoardClient(b.psk, b.board_id, 1, os.urandom(16))
        hello = b.client.hello()
        rig.udp.pending[id(b)] = b
        b._challenge = asyncio.get_running_loop().create_future()
        b.send_raw(hello)
        b.send_raw(hello)  # a retransmitted HELLO: the same CHALLENGE
        challenge = await asyncio.wait_for(b._challenge, DEADLINE_S)
        assert len(rig.svc.half_open) == 1
        b.client.handle_challenge(challenge, 0)  # the CONFIRM is "lost"
        rig.udp.pending.clear()
        rig.udp.sessions[b.client.sid] = b
        b.send({"t": "ping", "seq": 1})  # -> the gateway resends the CHALLENGE,
        pong = None                       # the board answers with its cached CONFIRM
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DEADLINE_S
        while pong is None and loop.time() < deadline:
            try:  # pings sent before the session was confirmed get no pong: ping again
                pong = await b.recv(0.2)
            except TimeoutError:
                b.send({"t": "ping", "seq": 2})
        assert pong and pong["t"] == "pong"
        assert "b1" in rig.svc.links and not rig.svc.half_open


async def test_half_open_cap_and_unknown_board(tmp_path):
    rig = await Rig().start(tmp_path, boards=("b1",), max_half_open=3,
                            handshake_timeout_ms=1000)
    try:
        for i in range(6):
            rig.udp.sock.sendto(boardlink.encode_hello(rig.recs["b1"].board_id, i + 1,
                                                       os.urandom(16)), rig.svc.udp_addr)
        rig.udp.sock.sendto(boardlink.encode_hello(os.urandom(8), 1, os.urandom(16)),
                            rig.svc.udp_addr)
        await wait_until(lambda: rig.svc.refusals["unknown_board"] == 1)
        assert len(rig.svc.half_open) <= 3
        # other boards' handshakes still complete once the half-open ones expire
        await wait_until(lambda: not rig.svc.half_open, what="half-open handshakes expired")
        await rig.online()
        assert rig.svc.refusals["handshake_timeout"] >= 1
    finally:
        await rig.stop()


async def test_reboot_is_a_new_session_old_records_refused(tmp_path):
    async with rig_for(tmp_path) as rig:
        b1 = await rig.online(boot_ctr=1)
        old_sid, old_t = b1.client.sid, rig.svc.links["b1"].session.transcript
        stale = b1.client.seal(cjson.dumps({"t": "ping", "seq": 9}), 0)
        b2 = await rig.online(boot_ctr=2)
        link = rig.svc.links["b1"]
        assert link.session.sid != old_sid and link.session.transcript != old_t
        assert link.session.boot_ctr == 2 and link.session.records_sent <= 1
        rig.udp.sock.sendto(stale, rig.svc.udp_addr)
        await wait_until(lambda: rig.svc.refusals["old_session"] == 1)
        b2.send({"t": "ping", "seq": 1})
        assert (await b2.recv())["t"] == "pong"


async def test_replay_bitflip_and_bad_payload_keep_the_session(tmp_path):
    async with rig_for(tmp_path) as rig:
        b = await rig.online()
        rec = b.send({"t": "ping", "seq": 1})
        assert (await b.recv())["seq"] == 1
        rig.udp.sock.sendto(rec, rig.svc.udp_addr)
        flipped = bytearray(b.client.seal(cjson.dumps({"t": "ping", "seq": 2}), 0))
        flipped[14] ^= 0x80
        rig.udp.sock.sendto(bytes(flipped), rig.svc.udp_addr)
        b.send_raw(b.client.seal(b"not json", 0))
        await wait_until(lambda: rig.svc.refusals["replay"] == 1 and
                         rig.svc.refusals["bad_tag"] == 1 and rig.svc.refusals["bad_payload"] == 1)
        b.send({"t": "ping", "seq": 3})
        assert (await b.recv())["seq"] == 3


async def test_local_board_to_board_and_broadcast(tmp_path):
    async with rig_for(tmp_path) as rig:
        b1 = await rig.online("b1")
        b2 = await rig.online("b2")
        b1.reading("temp", 30_000, 1, to=b2.node_id)
        got = await b2.recv_msg()
        assert got["from"] == b1.node_id and cjson.loads(got["data"])["value_milli"] == 30_000
        b2.reading("hum", 55_000, 1, to="broadcast")
        bc = await b1.recv_msg()
        assert bc["to"] is None and cjson.loads(bc["data"])["sensor"] == "hum"
        await wait_until(lambda: any(r.src == b2.node_id and b"hum" in r.data
                                     for r in rig.peer.inbox.since(0)))
        # a broadcast from the mesh reaches online boards, live only
        rig.peer.originate(None, b"hello boards")
        assert (await b1.recv_msg())["data"] == b"hello boards"


async def test_tcp_board_and_revoke_cuts_it(tmp_path):
    async with rig_for(tmp_path) as rig:
        b = rig.board("b2")
        await b.connect_tcp(rig.svc.tcp_addr)
        await wait_until(lambda: "b2" in rig.svc.links)
        b.send({"t": "ping", "seq": 5})
        assert (await b.recv())["t"] == "pong"
        assert rig.svc.board_rows()[1]["session"]["via"].startswith("tcp:")
        rig.svc.revoke("b2")
        with pytest.raises(TransportError):
            while True:  # the gateway closes the connection
                await b.recv()
        assert "b2" not in rig.svc.links
        assert rig.recs["b2"].node_id not in rig.gw_node.local_ids
        b2 = rig.board("b2")
        with pytest.raises(TransportError):
            await b2.connect_udp(rig.udp, rig.svc.udp_addr, timeout_s=1.0)
        assert rig.svc.refusals["revoked"] >= 1
        await b.close()


async def test_messages_too_large_for_a_board_are_refused_not_queued(tmp_path):
    async with rig_for(tmp_path) as rig:
        b = await rig.online()
        msg, fut = rig.peer.originate(b.node_id, b"x" * 600)  # > 768 once base64'd
        await wait_until(lambda: rig.svc.refusals["too_large"] >= 1)
        assert rig.reg.queued("b1") == [] and not fut.done()
        small, fut2 = rig.peer.originate(b.node_id, b"fits")
        assert (await b.recv_msg())["data"] == b"fits"
        assert (await asyncio.wait_for(fut2, DEADLINE_S)).delivered


async def test_board_send_record_null_is_a_broadcast(tmp_path):
    async with rig_for(tmp_path) as rig:
        b1 = await rig.online("b1")
        b2 = await rig.online("b2")
        b1.send({"t": "send", "to": None, "data": "aGk="})
        assert (await b2.recv_msg())["data"] == b"hi"
        b1.send({"t": "send", "to": rig.peer.node_id, "data": "ZGlyZWN0"})
        await wait_until(lambda: any(r.data == b"direct" and r.src == b1.node_id
                                     for r in rig.peer.inbox.since(0)))


async def test_gateway_send_to_its_own_board_waits_for_the_boards_ack(tmp_path):
    async with rig_for(tmp_path) as rig:
        b = await rig.online()
        msg, fut = rig.gw_node.originate(b.node_id, b"from the gateway")
        got = await b.recv_msg(ack=False)
        assert got["data"] == b"from the gateway" and got["from"] == rig.gw_node.node_id
        assert not fut.done() and not list(rig.gw_node.inbox.since(0))
        b.send({"t": "ack", "id": got["id"]})
        assert (await asyncio.wait_for(fut, DEADLINE_S)).delivered
        assert rig.reg.queued("b1") == []


async def test_board_to_board_on_one_gateway_is_acked_end_to_end(tmp_path):
    async with rig_for(tmp_path) as rig:
        b1 = await rig.online("b1")
        b2 = await rig.online("b2")
        b1.send({"t": "send", "to": b2.node_id, "data": "aGk="})
        got = await b2.recv_msg()  # acks it
        assert got["data"] == b"hi" and got["from"] == b1.node_id
        await wait_until(lambda: rig.svc.stats["board_sends_acked"] >= 1)


async def test_a_session_end_is_reported_offline_at_once(tmp_path):
    """Offline when the session ends, not at the next tick: a board that
    reconnects within one tick must still be seen going offline and online."""
    async with rig_for(tmp_path) as rig:
        await rig.online()
        await wait_until(lambda: rig.online_events == [("b1", True)])
        rig.svc.sessions.close_link(rig.svc.links["b1"], "unplugged")
        assert rig.online_events == [("b1", True), ("b1", False)]
        assert "b1" not in rig.svc.events.online
        await rig.online()
        await wait_until(lambda: rig.online_events == [("b1", True), ("b1", False),
                                                       ("b1", True)])


async def test_readings_are_confirmed_and_a_repeat_is_not_delivered_twice(tmp_path):
    async with rig_for(tmp_path) as rig:
        b = await rig.online()
        for _ in range(3):  # the board did not get the "got": it sends the same reading
            b.reading("temp", 21_000, 1)
        b.reading("temp", 21_500, 2)
        await wait_until(lambda: len(b.confirmed) == 4)
        assert b.confirmed == [(1, None)] * 3 + [(2, None)]
        mine = [cjson.loads(r.data)["seq"] for r in rig.gw_node.inbox.since(0)
                if r.src == b.node_id]
        assert mine == [1, 2]
        assert rig.svc.stats["readings_repeated"] == 2


async def test_a_record_for_an_unknown_session_gets_stale(tmp_path):
    async with rig_for(tmp_path) as rig:
        b = await rig.online()
        sid = b.client.sid
        rig.svc.sessions.cut("b1", "revoked")  # a revoked session gets no STALE
        b.send({"t": "ping", "seq": 1})
        await wait_until(lambda: rig.svc.refusals["revoked"] >= 1)
        rig.svc.sessions.dead_sids.clear()  # as a restarted gateway: sid unknown
        b.send({"t": "ping", "seq": 2})
        await wait_until(lambda: b.stale == 1)
        assert rig.svc.refusals["unknown_session"] == 1
        assert boardlink.decode_stale(boardlink.encode_stale(sid)) == sid


def test_a_wall_clock_jump_expires_nothing_queued(tmp_path, monkeypatch):
    import time

    reg = BoardRegistry(tmp_path)
    reg.add("j1", "unix", "udp")
    assert reg.enqueue("j1", "a" * 36, None, "b" * 36, None, b"hi", 1, max_messages=10,
                       max_bytes=1000) == "queued"
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 2 * 86_400)  # two days forward
    monkeypatch.setattr(time, "time_ns", lambda: int((real() + 2 * 86_400) * 1e9))
    assert reg.expire(86_400_000) == []
    assert len(reg.queued("j1")) == 1
    reg.close()
