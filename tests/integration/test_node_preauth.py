"""Pre-authentication exhaustion of a node (issue 14), each attack played
against a real `meshlink node` process with the project's own handshake code
from another host (127.0.1.2: another /24 on loopback) while an honest node
process on 127.0.0.1 must still link and its messages flow: silent sockets, a
replayed M1, throw-away identities, forged beacons. What the victim holds is
read from its control socket (`meshlink status`: "stats" and "admission").
Every flood is bounded in count (and in time); waits have generous deadlines."""

from __future__ import annotations

import asyncio
import json
import math
import os
import shutil
import socket
import time

from helpers import free_port, poll_until, run
from helpers.attacker import addr_of, frame_or_close, open_from, reply_type, throwaway_link
from helpers.procs import Node as NodeProc
from meshlink import messages
from meshlink.frames import encode_frame
from meshlink.nodeid import format_id
from meshlink_gw.crypto.handshake import Initiator
from meshlink_gw.crypto.identity import KEY_FILENAME, Identity


def _victim(tmp_path, procs, settings: str, **kw) -> NodeProc:
    conf = tmp_path / "victim.toml"
    conf.write_text("[node]\n" + settings)
    node = NodeProc(tmp_path / "victim", extra=("--config", str(conf)), **kw)
    procs.append(node)
    return node.start()


def _honest(tmp_path, procs, *peers: str, listen: str = "127.0.0.1:0") -> NodeProc:
    node = NodeProc(tmp_path / "honest", peers=peers, listen=listen)
    procs.append(node)
    return node.start()


def _delivered(src: NodeProc, dst: NodeProc, text: str) -> None:
    out = src.cli("send", "--json", "--to", dst.node_id, text)
    assert out.returncode == 0 and json.loads(out.stdout)["delivered"], out


def test_silent_sockets_cannot_keep_an_honest_node_out(tmp_path, procs):
    # a long handshake deadline: the silent sockets outlive the test
    victim = _victim(tmp_path, procs, "handshake_timeout_ms = 300000\n")

    async def main():
        silent = [await open_from(addr_of(victim.listen)) for _ in range(64)]
        await asyncio.to_thread(poll_until, lambda: victim.status()["stats"][
            "connections_refused"] >= 64 - 8, what="56 silent sockets refused")
        honest = await asyncio.to_thread(_honest, tmp_path, procs, victim.listen)
        await asyncio.to_thread(honest.wait_peers, 1)
        await asyncio.to_thread(_delivered, honest, victim, "in despite 64 silent sockets")
        held = (await asyncio.to_thread(victim.status))["admission"]
        for _r, w in silent:
            w.close()
        return held

    held = run(main())
    assert held["half_open"] <= 8, held  # only the attacker host's allowance


def test_replayed_m1_gets_few_answers(tmp_path, procs):
    victim = _victim(tmp_path, procs, "handshake_attempts_per_s = 1\n"
                                      "handshake_attempt_burst = 5\n")
    honest = _honest(tmp_path, procs, victim.listen)
    m1 = Initiator(Identity.generate(), listen_port=0).start()

    async def main():
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        answered = 0
        for _ in range(40):  # the same M1, again and again
            r, w = await open_from(addr_of(victim.listen))
            w.write(encode_frame(m1))
            if reply_type(await frame_or_close(r)) == "handshake_ack":
                answered += 1
            w.close()
        return answered, loop.time() - t0

    answered, elapsed_s = run(main())
    # each M2 costs the victim an encapsulation and a signature: at most the
    # burst plus the refill over however long the replay took
    assert answered <= 5 + int(elapsed_s) + 1, (answered, elapsed_s)
    assert answered < 40 or elapsed_s > 35
    honest.wait_peers(1)
    _delivered(honest, victim, "still served")
    st = victim.status()["stats"]
    assert st["connections_refused"] >= 40 - answered - 1, st
    # the victim's own count of M2s: the replay's answers and the honest link's
    assert st["handshakes_answered"] <= answered + st["links_established"], st


# 64 throw-away identities (the default max_peers), 4 from each of 16 hosts in
# 16 different /24s: within every per-host and per-prefix allowance even when
# the victim is under load and each link takes two connections (a cookie first)
THROWAWAY_HOSTS = tuple(f"127.0.{20 + i}.1" for i in range(16))


def test_throwaway_identities_cannot_take_a_static_peers_slot(tmp_path, procs):
    port = free_port()
    victim = _victim(tmp_path, procs, "reconnect_max_ms = 500\n"
                                      "idle_ping_ms = 60000\nprobe_interval_ms = 600000\n"
                                      "idle_timeout_ms = 600000\n",
                     peers=(f"127.0.0.1:{port}",))

    async def main():
        addr = addr_of(victim.listen)
        throwaways = []
        for host in THROWAWAY_HOSTS:
            throwaways += await asyncio.gather(*(throwaway_link(addr, host)
                                                 for _ in range(4)))
        assert all(t is not None for t in throwaways)
        await asyncio.to_thread(poll_until, lambda: len(victim.status()["peers"]) == 64,
                                what="64 throw-away identities linked")
        # the static peer comes up: the victim's dialer must get it a slot
        honest = await asyncio.to_thread(_honest, tmp_path, procs, listen=f"127.0.0.1:{port}")
        await asyncio.to_thread(poll_until, lambda: honest.node_id in {
            p["node_id"] for p in victim.status()["peers"]}, what="static peer linked")
        # one more throw-away identity completes a handshake but gets no slot
        extra = await throwaway_link(addr)
        assert extra is not None
        while await frame_or_close(extra[0]) is not None:
            pass  # its close record, then the end of the connection
        extra[1].close()
        st = await asyncio.to_thread(victim.status)
        for t in throwaways:
            if t is not None:
                t[1].close()
        return honest, st

    honest, st = run(main())
    assert honest.node_id in {p["node_id"] for p in st["peers"]}
    assert len(st["peers"]) <= 64
    assert st["stats"]["links_evicted"] >= 1
    _delivered(victim, honest, "served")


def test_forged_beacons_start_a_bounded_decaying_dial_set(tmp_path, procs):
    disc_port = free_port(socket.SOCK_DGRAM)
    victim = _victim(tmp_path, procs, f"discovery = true\ndiscovery_port = {disc_port}\n"
                     'discovery_broadcast = "127.0.0.1"\nbeacon_interval_ms = 60000\n'
                     "max_discovery_dials = 8\nreconnect_max_ms = 500\n")
    dead_port = free_port()  # nobody listens there
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for sent in range(1, 3001):
            fake = format_id(os.urandom(16))
            s.sendto(messages.Beacon(node_id=fake, port=dead_port).encode(),
                     ("127.0.0.1", disc_port))
            if sent % 250 == 0:  # the victim has read all but the last 250 (no drops)
                poll_until(lambda n=sent: victim.status()["admission"]["beacons_heard"]
                           >= n - 250, what=f"{sent - 250} beacons heard")
    poll_until(lambda: victim.status()["admission"]["beacons_heard"] >= 3000,
               what="3000 beacons heard")
    held = poll_until(lambda: (lambda a: a if a["beacon_ids"] and a["discovery_dials"] == 0
                               else None)(victim.status()["admission"]),
                      what="every suggested dialer gave up")
    assert held["discovery_dials_most"] <= 8, held
    assert held["beacon_ids"] <= 256, held
    # an honest beacon afterwards still gets dialed and linked
    honest = _honest(tmp_path, procs)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(messages.Beacon(node_id=honest.node_id,
                                 port=addr_of(honest.listen)[1]).encode(),
                 ("127.0.0.1", disc_port))
    honest.wait_peers(1)
    _delivered(victim, honest, "found despite 3000 forged beacons")


def test_two_processes_with_one_identity_back_off(tmp_path, procs):
    """A copied identity key: two `meshlink node` processes hold it, both dial
    the same hub process and take the link from each other. Each dialer backs
    off after a link that did not last, so the takeovers slow down
    exponentially instead of running a handshake loop, and the hub keeps
    serving an honest node process."""
    hub = NodeProc(tmp_path / "hub")
    procs.append(hub)
    hub.start()
    honest = _honest(tmp_path, procs, hub.listen)
    twin1 = NodeProc(tmp_path / "twin1", peers=(hub.listen,))
    procs.append(twin1)
    twin1.start()
    (tmp_path / "twin2").mkdir(mode=0o700)
    shutil.copy(tmp_path / "twin1" / KEY_FILENAME, tmp_path / "twin2" / KEY_FILENAME)
    t0 = time.monotonic()
    twin2 = NodeProc(tmp_path / "twin2", peers=(hub.listen,))
    procs.append(twin2)
    twin2.start()
    assert twin2.node_id == twin1.node_id
    poll_until(lambda: hub.status()["stats"]["links_established"] >= 5, what="takeovers")
    end = time.monotonic() + 3  # an observation window: what the twins do in it
    while time.monotonic() < end:
        time.sleep(0.2)
    links = hub.status()["stats"]["links_established"]
    elapsed_ms = (time.monotonic() - t0) * 1000
    # each twin redials after waits of 125, 250, 500 ... ms at least (half of
    # 250 ms doubling), so at most ~log2(elapsed / 125 ms) + 2 links each;
    # without the back-off this was hundreds per second
    bound = 2 * (math.log2(elapsed_ms / 125) + 2) + 1  # + honest's link
    assert links <= bound, (links, bound, elapsed_ms)
    flaps = [n.status()["stats"]["flaps"] for n in (twin1, twin2)]
    assert sum(flaps) > 0, flaps
    _delivered(honest, hub, "hub still serves")
