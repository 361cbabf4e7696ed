"""Cookies under load (PROTOCOL.md §5.3.1, issue 14) against a real `meshlink
node` process: a flood of replayed and garbage M1s from another host gets
cookie replies and refusals and never an M2, so the victim does no KEM work
for it (its control-socket counters say how many M2s it sent: each one an
encapsulation and a signature), while an honest node process that dials
during the flood takes the cookie, dials again with mac2 and links, and its
message is delivered; and a flood alone (no forced load) makes the node ask
for cookies once it exceeds its M1 rate. Bounded: 300 replays and 50
garbage flights, at most 8 connections at once, and a time cap."""

from __future__ import annotations

import asyncio
import json
import os

from helpers import run, wait_until
from helpers.attacker import addr_of, first_flights, frame_or_close, open_from, reply_type
from helpers.procs import Node
from helpers.rigs import start_node
from meshlink import messages
from meshlink.frames import encode_frame
from meshlink_gw.crypto.handshake import Initiator
from meshlink_gw.crypto.identity import Identity

REPLAYS = 300
GARBAGE = 50


def _garbage() -> list[bytes]:
    """Frames a responder must refuse before any crypto: random bytes, and
    first flights whose mac1 is wrong."""
    out = [os.urandom(1232) for _ in range(GARBAGE // 2)]
    for _ in range(GARBAGE - len(out)):
        m1 = messages.decode(Initiator(Identity.generate(), listen_port=0).start())
        m1.body = m1.body[:1216] + bytes(16)
        out.append(m1.encode())
    return out


def test_m1_flood_under_load_costs_no_kem_work_and_an_honest_node_links(tmp_path, procs):
    conf = tmp_path / "victim.toml"
    # always under load (so every M1 needs a cookie); per-host limits out of the
    # way, so that every flight of the flood reaches the handshake code
    conf.write_text("[node]\ncookie_load_half_open = 1\nhandshake_attempts_per_s = 100000\n"
                    "handshake_attempt_burst = 100000\nmax_half_open_per_host = 64\n")
    victim = Node(tmp_path / "victim", extra=("--config", str(conf)))
    procs.append(victim)
    victim.start()
    honest = Node(tmp_path / "honest", peers=(victim.listen,))
    procs.append(honest)
    replayed = Initiator(Identity.generate(), listen_port=0).start()  # one captured M1

    async def main():
        flood = asyncio.create_task(first_flights(
            addr_of(victim.listen), [replayed] * REPLAYS + _garbage()))
        await asyncio.to_thread(honest.start)  # dials while the flood runs
        await asyncio.to_thread(honest.wait_peers, 1)
        return await flood

    seen = run(main())
    assert seen["handshake_ack"] == 0, seen  # not one M2 for the flood
    assert seen["handshake_cookie"] == REPLAYS, seen
    assert seen["closed"] == GARBAGE, seen
    out = honest.cli("send", "--json", "--to", victim.node_id, "linked through the flood")
    assert json.loads(out.stdout)["delivered"], out
    st, hst = victim.status()["stats"], honest.status()["stats"]
    assert st["cookie_replies"] >= REPLAYS + hst["cookies_received"]
    assert hst["cookies_received"] >= 1  # the honest node went through the cookie
    # every M2 the victim sent (its only KEM work) went to a handshake that linked
    assert 1 <= st["handshakes_answered"] <= st["links_established"], st
    assert st["handshakes_failed"] >= GARBAGE


def test_the_flood_itself_puts_the_node_under_load(tmp_path, procs):
    """No forced load: above cookie_load_attempts_per_s M1s a second (from all
    sources) the node asks for cookies by itself. A replay flood of 300 gets
    M2s only while the node's M1 budget lasts (its burst plus its rate over
    however long the flood took), cookie replies after that."""
    conf = tmp_path / "victim.toml"
    conf.write_text("[node]\ncookie_load_attempts_per_s = 5\nhandshake_attempts_per_s = 100000\n"
                    "handshake_attempt_burst = 100000\nmax_half_open_per_host = 64\n")
    victim = Node(tmp_path / "victim", extra=("--config", str(conf)))
    procs.append(victim)
    victim.start()
    replayed = Initiator(Identity.generate(), listen_port=0).start()

    async def main():
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        seen = await first_flights(addr_of(victim.listen), [replayed] * REPLAYS)
        return seen, loop.time() - t0

    seen, elapsed_s = run(main())
    assert seen["handshake_ack"] + seen["handshake_cookie"] == REPLAYS, seen
    assert seen["handshake_ack"] <= 5 + 5 * elapsed_s + 1, (seen, elapsed_s)
    assert seen["handshake_cookie"] > 0, seen
    st = victim.status()["stats"]
    assert st["handshakes_answered"] == seen["handshake_ack"], st
    assert st["cookie_replies"] == seen["handshake_cookie"], st
    honest = Node(tmp_path / "honest", peers=(victim.listen,))
    procs.append(honest)
    honest.start()
    honest.wait_peers(1)
    out = honest.cli("send", "--json", "--to", victim.node_id, "linked after the flood")
    assert json.loads(out.stdout)["delivered"], out


def test_a_dialer_reuses_a_cookie_for_its_next_dials(tmp_path, procs):
    """A node that got a cookie from a loaded peer sends it with its next dials
    there: after its link is lost it links again without another cookie reply
    (one round trip, one of its host's attempts)."""
    conf = tmp_path / "victim.toml"
    conf.write_text("[node]\ncookie_load_half_open = 1\n")  # always under load
    victim = Node(tmp_path / "victim", extra=("--config", str(conf)))
    procs.append(victim)
    victim.start()

    async def main():
        honest = await start_node(tmp_path, "honest", peers=[addr_of(victim.listen)])
        await wait_until(lambda: victim.node_id in honest.peers.links)
        assert honest.peers.stats["cookies_received"] == 1
        await honest.peers.links[victim.node_id].close("test: drop the link")
        await wait_until(lambda: victim.node_id not in honest.peers.links)
        await wait_until(lambda: victim.node_id in honest.peers.links)  # redialed
        got = honest.peers.stats["cookies_received"]
        assert (await honest.send(victim.node_id, b"relinked")).delivered
        await honest.stop()
        return got

    assert run(main()) == 1  # the second dial carried the cookie
    st = victim.status()["stats"]
    assert st["cookie_replies"] == 1 and st["links_established"] == 2, st


def test_m1s_piled_on_one_socket_get_one_cookie_and_the_end_of_it(tmp_path, procs):
    """100 copies of one M1 written at once on a single connection to a loaded
    node: it answers the first with one cookie reply and closes; the rest are
    never read as handshakes (no M2, no more cookies)."""
    conf = tmp_path / "victim.toml"
    conf.write_text("[node]\ncookie_load_half_open = 1\n")
    victim = Node(tmp_path / "victim", extra=("--config", str(conf)))
    procs.append(victim)
    victim.start()
    m1 = Initiator(Identity.generate(), listen_port=0).start()

    async def main():
        r, w = await open_from(addr_of(victim.listen))
        w.write(encode_frame(m1) * 100)
        replies = []
        while (frame := await frame_or_close(r)) is not None:
            replies.append(reply_type(frame))
        w.close()
        return replies

    assert run(main()) == ["handshake_cookie"]
    st = victim.status()["stats"]
    assert st["cookie_replies"] == 1 and st["handshakes_answered"] == 0, st
