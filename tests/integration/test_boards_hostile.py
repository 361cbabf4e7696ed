"""Hostile WiFi neighbours against a real gateway's board link, no PSK needed
(issue 14): forged records carrying a board's sniffed sid, and HELLO floods
for a board's cleartext ID. Neither may change the board's state: its rate
budget, its session or its handshake in progress."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from boards_harness import GatewayProcess, add_board, bundle_secrets
from helpers import DEADLINE_S, poll_until, run, wait_until
from helpers.rigs import start_node
from meshlink import boardlink, messages
from meshlink.nodeid import format_id
from meshlink_gw.crypto.identity import Identity
from meshlink_gw.runtime import now_ms

from examples.node_proc import meshlink_cmd
from examples.sim_board import SharedUdp, SimBoard

FORGED_RECORDS = 400
HELLO_FLOOD = 50


def _udp(addr: str) -> tuple[str, int]:
    host, port = addr.rsplit(":", 1)
    return host, int(port)


def _forge(record: bytes, seq: int) -> bytes:
    """A record with the board's sid, a later seq and a random body and tag."""
    return record[:5] + seq.to_bytes(8, "big") + os.urandom(len(record) - 13)


def test_forged_records_do_not_spend_the_boards_rate_budget(tmp_path, procs):
    gw = procs.append(GatewayProcess(tmp_path / "gw", rate=20, burst=20)) or procs[-1].start()
    info = add_board(gw.data_dir, "victim", gateway=gw.board_udp)
    psk, board_id, _ = bundle_secrets(gw.data_dir, "victim")

    async def main() -> None:
        shared = SharedUdp()
        shared.start()
        board = SimBoard(psk, board_id)
        await board.connect_udp(shared, _udp(gw.board_udp), timeout_s=DEADLINE_S)
        sniffed = board.reading("temp", 1000, 0)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for i in range(FORGED_RECORDS):  # far more than the board's burst of 20
                s.sendto(_forge(sniffed, 1000 + i), _udp(gw.board_udp))
        poll_until(lambda: gw.status()["gateway"]["refusals"].get("bad_tag", 0)
                   >= FORGED_RECORDS // 2, what="the forged records refused")
        for seq in range(1, 11):  # the board's own readings, within its budget
            board.reading("temp", 1000 + seq, seq)
            await asyncio.sleep(0.02)
        shared.close()

    run(main())
    got = poll_until(lambda: (r := [x for x in gw.readings(info["node_id"])
                                    if x.get("sensor") == "temp"]) and len(r) >= 11 and r,
                     what="all 11 readings of the board")
    assert len(got) == 11
    refusals = gw.status()["gateway"]["refusals"]
    assert refusals.get("rate_limited", 0) == 0, refusals
    assert refusals.get("bad_tag", 0) > 0, refusals


def test_hello_flood_cannot_evict_a_handshake_in_progress(tmp_path, procs):
    gw = procs.append(GatewayProcess(tmp_path / "gw")) or procs[-1].start()
    add_board(gw.data_dir, "victim", gateway=gw.board_udp)
    psk, board_id, _ = bundle_secrets(gw.data_dir, "victim")
    gateway = _udp(gw.board_udp)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as board, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as attacker:
        board.settimeout(DEADLINE_S)
        attacker.settimeout(DEADLINE_S)
        attacker.bind(("127.0.0.2", 0))  # another host on the same network
        client = boardlink.BoardClient(psk, board_id, 1, os.urandom(16))
        board.sendto(client.hello(), gateway)
        challenge, _ = board.recvfrom(100)
        # the board is between CHALLENGE and CONFIRM; the neighbour floods HELLOs
        # for its ID (fresh nonces, so none is a retransmission)
        answered = 0
        for _ in range(HELLO_FLOOD):
            attacker.sendto(boardlink.encode_hello(board_id, 1, os.urandom(16)), gateway)
            attacker.recvfrom(100)  # the gateway handled it (it answers each one)
            answered += 1
        assert answered == HELLO_FLOOD
        board.sendto(client.handle_challenge(challenge, now_ms()), gateway)
        gw.wait_board("victim", lambda r: r["online"])
        assert gw.status()["gateway"]["refusals"].get("unknown_session", 0) == 0


FLOOD_HOSTS = ("127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5")
FLOOD_MAX = 20_000  # datagrams, whatever happens


def _hello_flood(board_id: bytes, gateway: tuple[str, int], stop: threading.Event) -> int:
    """HELLOs for board_id with fresh nonces from 4 hosts, round after round, until
    stop is set, FLOOD_MAX datagrams or 2 * DEADLINE_S; returns the count sent."""
    socks = []
    for host in FLOOD_HOSTS:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((host, 0))
        socks.append(s)
    sent = 0
    deadline = time.monotonic() + 2 * DEADLINE_S
    try:
        while not stop.is_set() and sent < FLOOD_MAX and time.monotonic() < deadline:
            for s in socks:
                s.sendto(boardlink.encode_hello(board_id, 1, os.urandom(16)), gateway)
                sent += 1
            stop.wait(0.002)  # ~2000 HELLOs a second: a flood, not a CPU hog
    finally:
        for s in socks:
            s.close()
    return sent


def _challenge(sock: socket.socket) -> bytes:
    """The next CHALLENGE the gateway sends to this board socket (other datagrams,
    e.g. for the old session, are skipped); socket.timeout if none comes."""
    while True:
        data, _ = sock.recvfrom(2048)
        if data[:1] == bytes([boardlink.T_CHALLENGE]):
            return data


def test_hello_flood_from_many_hosts_does_not_delay_the_boards_handshake(tmp_path, procs):
    """HELLOs for a board's cleartext ID from 4 other hosts keep every half-open
    slot of the board taken. The board, re-handshaking from the host it last
    authenticated from, gets its CHALLENGE for its first HELLO (no retry, no
    wait for the flood's slots to expire) and comes online with the new session
    while the flood goes on. The gateway restarts in between: it remembers
    the board's host in boards.db."""
    gw = procs.append(GatewayProcess(tmp_path / "gw")) or procs[-1].start()
    add_board(gw.data_dir, "victim", gateway=gw.board_udp)
    psk, board_id, _ = bundle_secrets(gw.data_dir, "victim")
    stop = threading.Event()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as board:
        board.settimeout(DEADLINE_S)
        board.bind(("127.0.0.1", 0))
        first = boardlink.BoardClient(psk, board_id, 1, os.urandom(16))
        board.sendto(first.hello(), _udp(gw.board_udp))
        board.sendto(first.handle_challenge(_challenge(board), now_ms()), _udp(gw.board_udp))
        gw.wait_board("victim", lambda r: r["online"])
        gw.stop()
        gw = procs.append(GatewayProcess(tmp_path / "gw")) or procs[-1].start()
        gateway = _udp(gw.board_udp)
        with ThreadPoolExecutor(1) as pool:
            flood = pool.submit(_hello_flood, board_id, gateway, stop)
            try:
                poll_until(lambda: (lambda g: g["half_open"] >= 4 and g["refusals"].get(
                    "half_open_cap", 0) >= 20)(gw.status()["gateway"]),
                    what="the flood holds every half-open slot of the board")
                again = boardlink.BoardClient(psk, board_id, 2, os.urandom(16))
                board.sendto(again.hello(), gateway)  # once: no retransmission
                challenge = _challenge(board)
                assert gw.status()["gateway"]["half_open"] >= 4  # the flood goes on
                board.sendto(again.handle_challenge(challenge, now_ms()), gateway)
                poll_until(lambda: gw.status()["gateway"]["stats"].get("sessions", 0) >= 1,
                           what="the board's session after the restart")
            finally:
                stop.set()
            assert flood.result() > 40
    st = gw.status()["gateway"]
    assert st["stats"]["hello_flood_evicted"] >= 1, st  # it took a flooded slot
    assert st["refusals"].get("unknown_session", 0) == 0, st


def test_forged_senders_cannot_fill_a_sleeping_boards_queue(tmp_path, procs):
    """A mesh node queues 150 messages for a sleeping board: it gets its share of
    100. Then 1000 messages under forged sender IDs: dropped (origins are signed,
    issue 12), not queued. The operator's own command is still queued."""
    gw = procs.append(GatewayProcess(tmp_path / "gw")) or procs[-1].start()
    info = add_board(gw.data_dir, "sleepy", gateway=gw.board_udp)

    def queued() -> int:
        return gw.boards()["sleepy"]["queued"]

    async def flood() -> None:
        host, port = gw.listen.rsplit(":", 1)
        node = await start_node(tmp_path, "mesh", peers=[(host, int(port))],
                                retry_interval_ms=600_000)
        await wait_until(lambda: node.peers.links)
        for i in range(150):  # one sender: more than its share of 100
            node.originate(info["node_id"], b"spam %d" % i, src=node.node_id)
        await asyncio.to_thread(gw.wait_log, r"already has 100 messages queued", count=50)
        assert queued() == 100  # one sender's share
        link = next(iter(node.peers.links.values()))
        for i in range(1000):  # forged senders, one message each, straight onto the link
            mid = format_id(os.urandom(16))
            link.send(messages.MeshMessage(src=format_id(os.urandom(16)), dst=info["node_id"],
                                           data=b"forged %d" % i, message_id=mid,
                                           origin_id=mid, ttl=8, path=[]))
            if i % 50 == 0:
                await asyncio.sleep(0)
        await asyncio.to_thread(poll_until, lambda: gw.status()["stats"][
            "forged_messages"] >= 1000, what="1000 forged messages dropped")
        await node.stop()

    run(flood())
    assert queued() == 100  # the forged ones never reached the queue
    # the operator's command from the gateway itself still gets in
    gw_id = gw.status()["node_id"]
    # (the board sleeps: the send waits for an ack it will not get; not awaited)
    procs.append(subprocess.Popen(meshlink_cmd() + [
        "send", "--data-dir", str(gw.data_dir), "--to", info["node_id"], "operator command"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    poll_until(lambda: queued() == 101, what="the operator's command queued")
    gw.wait_log(rf"mesh message \S+ from {gw_id} for board sleepy, \d+ hop\(s\): queued")


SENDERS = 12  # throw-away identities: 12 x 100 messages is more than 90 % of 1000


def test_many_sender_identities_cannot_take_the_operators_reserve(tmp_path, procs):
    """A hostile neighbour of the gateway (a node that serves 12 throw-away
    identities, as a rogue gateway would serve boards) floods a sleeping board's
    queue with 100 messages from each: sealed and signed by their origins, so
    every one is genuine as far as the gateway can tell (identities are free:
    the per-sender share of 100 does not stop this). Mesh senders together get
    90 % of the queue (900 of 1000), the rest is refused, and the operator's
    own command still gets in."""
    gw = procs.append(GatewayProcess(tmp_path / "gw")) or procs[-1].start()
    info = add_board(gw.data_dir, "sleepy", gateway=gw.board_udp)

    def queued() -> int:
        return gw.boards()["sleepy"]["queued"]

    async def flood() -> int:
        node = await start_node(tmp_path, "rogue", peers=[_udp(gw.listen)],
                                retry_interval_ms=600_000, delivery_timeout_ms=600_000)
        await wait_until(lambda: node.peers.links)
        sent = 0
        for _ in range(SENDERS):
            origin = Identity.generate()
            node.serve_id(origin.node_id, lambda msg, hops: True, identity=origin)
            for i in range(100):
                node.originate(info["node_id"], b"flood %d" % i, src=origin.node_id)
                sent += 1
            await asyncio.sleep(0)
        await asyncio.to_thread(poll_until, lambda: gw.status()["gateway"]["refusals"].get(
            "queue_full", 0) >= sent - 900, what="the flood past 90 % refused")
        await node.stop()
        return sent

    sent = run(flood())
    assert sent == SENDERS * 100
    assert queued() == 900  # mesh senders together: 90 % of the queue, not more
    gw_id = gw.status()["node_id"]
    # (the board sleeps: the send waits for an ack it will not get; not awaited)
    procs.append(subprocess.Popen(meshlink_cmd() + [
        "send", "--data-dir", str(gw.data_dir), "--to", info["node_id"], "operator command"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    poll_until(lambda: queued() == 901, what="the operator's command queued")
    gw.wait_log(rf"mesh message \S+ from {gw_id} for board sleepy, \d+ hop\(s\): queued")
