"""Pre-authentication exhaustion of a node (issue 14), each attack played with
the project's own handshake code from another host (127.0.1.2: another /24
on loopback) while an honest node on 127.0.0.1 must still link and deliver:
silent sockets, a replayed M1, throw-away identities, forged beacons. Every
flood is bounded in count; waits have generous deadlines."""

from __future__ import annotations

import asyncio
import os
import socket

from helpers import DEADLINE_S, free_port, run, wait_until
from helpers.rigs import start_node
from meshlink import messages
from meshlink.frames import encode_frame
from meshlink.nodeid import format_id
from meshlink_gw.config import NodeConfig
from meshlink_gw.crypto.handshake import Initiator
from meshlink_gw.crypto.identity import Identity
from meshlink_gw.node import Node

ATTACKER = "127.0.1.2"


async def _frame_or_close(r: asyncio.StreamReader) -> bytes | None:
    """The next whole frame, or None once the peer closed the connection."""
    try:
        length = int.from_bytes(await r.readexactly(4), "big")
        return await r.readexactly(length)
    except (asyncio.IncompleteReadError, ConnectionError):
        return None


async def _open(victim) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(*victim.listen_addr, local_addr=(ATTACKER, 0))


async def _throwaway_link(victim):
    """A complete handshake with a fresh identity; the connection, or None if refused."""
    init = Initiator(Identity.generate(), listen_port=0)
    r, w = await _open(victim)
    w.write(encode_frame(init.start()))
    m2 = await asyncio.wait_for(_frame_or_close(r), DEADLINE_S)
    if m2 is None:
        w.close()
        return None
    w.write(encode_frame(init.receive(m2)))
    await w.drain()
    return r, w


def test_silent_sockets_cannot_keep_an_honest_node_out(tmp_path):
    async def main():
        # a long handshake deadline: the silent sockets outlive the test
        victim = await start_node(tmp_path, "victim", handshake_timeout_ms=120_000)
        silent = [await _open(victim) for _ in range(64)]
        await wait_until(lambda: victim.peers.stats["connections_refused"] >= 64 - 8)
        honest = await start_node(tmp_path, "honest", peers=[victim.listen_addr])
        await wait_until(lambda: victim.node_id in honest.peers.links)
        res = await honest.send(victim.node_id, b"in despite 64 silent sockets")
        assert res.delivered, res
        assert victim.peers.half_open <= 8  # only the attacker's host allowance
        for _r, w in silent:
            w.close()
        await honest.stop()
        await victim.stop()

    run(main())


def test_replayed_m1_gets_few_answers(tmp_path):
    async def main():
        victim = await start_node(tmp_path, "victim", handshake_attempts_per_s=1,
                                  handshake_attempt_burst=5)
        honest = await start_node(tmp_path, "honest", peers=[victim.listen_addr])
        m1 = Initiator(Identity.generate(), listen_port=0).start()
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        answered = 0
        for _ in range(40):  # the same M1, again and again
            r, w = await _open(victim)
            w.write(encode_frame(m1))
            if await asyncio.wait_for(_frame_or_close(r), DEADLINE_S) is not None:
                answered += 1
            w.close()
        elapsed_s = loop.time() - t0
        # each M2 costs the victim an encapsulation and a signature: at most
        # the burst plus the refill over however long the replay took
        assert answered <= 5 * 4 + int(elapsed_s) + 1, (answered, elapsed_s)
        assert answered < 40 or elapsed_s > 35
        await wait_until(lambda: victim.node_id in honest.peers.links)
        assert (await honest.send(victim.node_id, b"still served")).delivered
        await honest.stop()
        await victim.stop()

    run(main())


def test_throwaway_identities_cannot_take_a_static_peers_slot(tmp_path):
    async def main():
        port = free_port()
        cfg = NodeConfig(data_dir=tmp_path / "victim", listen=("127.0.0.1", 0),
                         peers=(("127.0.0.1", port),), max_peers=4,
                         reconnect_max_ms=500)
        victim = Node(cfg, Identity.load_or_create(cfg.data_dir))
        await victim.start()
        throwaways = [await _throwaway_link(victim) for _ in range(4)]
        await wait_until(lambda: len(victim.peers.links) == 4)
        # the static peer comes up: the victim's dialer must get it a slot
        honest = Node(NodeConfig(data_dir=tmp_path / "honest", listen=("127.0.0.1", port)),
                      Identity.load_or_create(tmp_path / "honest"))
        await honest.start()
        await wait_until(lambda: honest.node_id in victim.peers.links)
        assert len(victim.peers.links) <= 4
        assert victim.peers.stats["links_evicted"] >= 1
        # one more throw-away identity completes a handshake but gets no slot
        extra = await _throwaway_link(victim)
        assert extra is not None
        while await asyncio.wait_for(_frame_or_close(extra[0]), DEADLINE_S) is not None:
            pass  # its close record, then the end of the connection
        extra[1].close()
        assert honest.node_id in victim.peers.links and len(victim.peers.links) <= 4
        assert (await victim.send(honest.node_id, b"served")).delivered
        for t in throwaways:
            if t is not None:
                t[1].close()
        await honest.stop()
        await victim.stop()

    run(main())


def test_forged_beacons_start_a_bounded_decaying_dial_set(tmp_path):
    async def main():
        disc_port = free_port(socket.SOCK_DGRAM)
        victim = await start_node(tmp_path, "victim", discovery=True,
                                  discovery_port=disc_port,
                                  discovery_broadcast="127.0.0.1", beacon_interval_ms=60_000,
                                  max_discovery_dials=8, reconnect_max_ms=500)
        dead_port = free_port()  # nobody listens there
        most = 0
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for i in range(3000):
                fake = format_id(os.urandom(16))
                s.sendto(messages.Beacon(node_id=fake, port=dead_port).encode(),
                         ("127.0.0.1", disc_port))
                if i % 100 == 0:
                    await asyncio.sleep(0)
                    most = max(most, victim.peers.suggested_dials())
        await wait_until(lambda: victim.discovery.seen and victim.peers.suggested_dials() == 0)
        assert most <= 8
        assert len(victim.discovery.seen) <= 256
        # an honest beacon afterwards still gets dialed and linked
        honest = await start_node(tmp_path, "honest")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(messages.Beacon(node_id=honest.node_id,
                                     port=honest.listen_addr[1]).encode(),
                     ("127.0.0.1", disc_port))
        await wait_until(lambda: honest.node_id in victim.peers.links)
        await honest.stop()
        await victim.stop()

    run(main())


def test_two_processes_with_one_identity_back_off(tmp_path):
    """A copied identity key: both holders dial the same peer and take the link
    from each other. Each dialer backs off after a link that did not last, so
    the takeovers slow down exponentially instead of running a handshake loop."""
    import math
    import shutil

    from meshlink_gw.crypto.identity import KEY_FILENAME

    async def main():
        hub = await start_node(tmp_path, "hub")
        honest = await start_node(tmp_path, "honest", peers=[hub.listen_addr])
        twin1 = await start_node(tmp_path, "twin1", peers=[hub.listen_addr])
        (tmp_path / "twin2").mkdir(mode=0o700)
        shutil.copy(tmp_path / "twin1" / KEY_FILENAME, tmp_path / "twin2" / KEY_FILENAME)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        twin2 = await start_node(tmp_path, "twin2", peers=[hub.listen_addr])
        assert twin2.node_id == twin1.node_id
        await wait_until(lambda: hub.peers.stats["links_established"] >= 5)  # takeovers
        await asyncio.sleep(3)
        elapsed_ms = (loop.time() - t0) * 1000
        links = hub.peers.stats["links_established"]
        # each twin redials after waits of 125, 250, 500 ... ms at least (half of
        # 250 ms doubling), so at most ~log2(elapsed / 125 ms) + 2 links each;
        # without the back-off this was hundreds per second
        bound = 2 * (math.log2(elapsed_ms / 125) + 2) + 1  # + honest's link
        assert links <= bound, (links, bound, elapsed_ms)
        assert twin1.peers.stats["flaps"] + twin2.peers.stats["flaps"] > 0
        assert (await honest.send(hub.node_id, b"hub still serves")).delivered
        for n in (twin2, twin1, honest, hub):
            await n.stop()

    run(main())
