"""Hostile WiFi neighbours against a real gateway's board link, no PSK needed
(issue 14): forged records carrying a board's sniffed sid, and HELLO floods
for a board's cleartext ID. Neither may change the board's state: its rate
budget, its session or its handshake in progress."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess

from boards_harness import GatewayProcess, add_board, bundle_secrets
from helpers import DEADLINE_S, poll_until, run, wait_until
from helpers.rigs import start_node
from meshlink import boardlink, messages
from meshlink.nodeid import format_id
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
        await asyncio.to_thread(gw.wait_log, r"not signed by its origin", count=1000)
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
