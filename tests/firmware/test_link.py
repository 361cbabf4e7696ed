"""The real firmware (bundle main.py, MicroPython unix port, 112K heap)
against a fake gateway in CPython (meshlink.boardlink.GatewaySession) over
real loopback UDP and TCP sockets."""

from __future__ import annotations

import re
import socket

import pytest
from firmware_harness import (
    BOARD_NODE_ID,
    GATEWAY_NODE_ID,
    PEER_NODE_ID,
    board_config,
)
from helpers import free_port
from meshlink import cjson

TRANSPORTS = ["udp", "tcp"]


def port_of(gw, transport):
    return gw.udp_port if transport == "udp" else gw.tcp_port


def config_for(gw, transport, **kw):
    return board_config(transport=transport,
                        gateway=f"127.0.0.1:{port_of(gw, transport)}", **kw)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_handshake_readings_command_ack(boards, gateway, transport):
    gw = gateway()
    board = boards(config_for(gw, transport, rules=[
        {"from": "*", "sensor": "temp", "op": ">", "value": 25, "action": "relay", "arg": 1}]))
    board.wait_for(rf"^LINK up {transport} 127\.0\.0\.1:{port_of(gw, transport)} sid=00000001 "
                   r"boot_ctr=1 session=1$")
    _, session = gw.wait_event("established")
    assert session.boot_ctr == 1
    seqs = [gw.wait_record("reading")["seq"] for _ in range(5)]
    assert seqs == sorted(set(seqs)) and seqs[0] >= 1
    reading = gw.wait_record("reading")
    assert set(reading) == {"t", "sensor", "value_milli", "unit", "seq", "to"}
    assert (reading["sensor"], reading["unit"], reading["to"]) == ("temp", "C", None)
    assert type(reading["value_milli"]) is int
    ping = gw.wait_record("ping")
    assert type(ping["seq"]) is int

    # a command addressed to the board: handler line, then an ack
    msg_id = gw.send_msg(cjson.dumps({"kind": "command", "action": "relay", "arg": 1}))
    board.wait_for(rf"^ACTION relay=1 \(command from {PEER_NODE_ID}\)$")
    assert gw.wait_record("ack", pred=lambda o: o["id"] == msg_id) == {"t": "ack", "id": msg_id}

    # a reading from another board: rules apply (value_milli 25001 > 25000)
    rid = gw.send_msg(cjson.dumps({"kind": "reading", "board": "b2", "node_id": PEER_NODE_ID,
                                   "sensor": "temp", "value_milli": 25001, "unit": "C",
                                   "seq": 9}))
    board.wait_for(rf"^ACTION relay=1 \(rule: temp from {PEER_NODE_ID} > 25000 milli\)$")
    gw.wait_record("ack", pred=lambda o: o["id"] == rid)

    # plain text, sent as a broadcast: printed, not acked
    gw.send_msg("héllo mesh".encode(), dst=None)
    board.wait_for(rf"^TEXT from {PEER_NODE_ID}: héllo mesh$")

    # the same msg again (a lost ack): acked again, not executed again
    gw.send_msg(cjson.dumps({"kind": "command", "action": "led", "arg": 1}), msg_id=msg_id)
    board.wait_for(rf"^DUPLICATE msg {msg_id}$")
    gw.wait_record("ack", pred=lambda o: o["id"] == msg_id)
    assert not any("ACTION led" in line for line in board.lines)
    assert not [o for o in list(gw.records.queue) if o.get("t") == "ack" and o["id"] != msg_id
                and o["id"] != rid]  # nothing acked the broadcast


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_reboot_is_a_fresh_session(boards, gateway, transport):
    gw = gateway()
    cfg = config_for(gw, transport)
    first = boards(cfg, name="b")
    first.wait_for(r"^LINK up .* boot_ctr=1 ")
    _, s1 = gw.wait_event("established")
    gw.wait_record("reading")
    first.stop()
    second = boards(cfg, name="b")  # same directory: same boot.cnt
    second.wait_for(r"^BOOT .* boot_ctr=2 ")
    second.wait_for(r"^LINK up .* boot_ctr=2 session=1$")
    _, s2 = gw.wait_event("established")
    assert (s1.boot_ctr, s2.boot_ctr) == (1, 2)
    assert s1.sid != s2.sid
    assert s1.transcript != s2.transcript  # fresh nonces: different keys
    reading = gw.wait_record("reading")
    assert reading["seq"] >= 1  # readings restart; the session's record seq did too
    assert s2.highest_seq_received >= 0
    assert (second.workdir / "boot.cnt").read_text().strip() == "2"


def test_wrong_psk_is_refused_and_retried_with_backoff(boards, gateway):
    gw = gateway(psk=bytes(32))  # not the board's key
    board = boards(config_for(gw, "udp", hello_tries=2))
    delays = []
    for n in (1, 2, 3):
        m = board.wait_for(r"^LINK down \((\w+): (.*)\); retry (\d+) in (\d+) ms$")
        assert m.group(1) == "AuthError" and "wrong PSK" in m.group(2)
        assert int(m.group(3)) == n
        delays.append(int(m.group(4)))
    for n, delay in enumerate(delays):
        cap = min(1600, 200 << n)
        assert cap // 2 <= delay <= cap, delays
    assert not gw.sessions
    assert not any(line.startswith("LINK up") for line in board.lines)
    # each attempt is a fresh HELLO after the backoff delay
    assert len(gw.hello_times) >= 3


def test_gateway_down_then_up(boards, gateway):
    gw = gateway()
    gw.answer = False
    board = boards(config_for(gw, "udp", hello_tries=2))
    m = board.wait_for(r"^LINK down \(TransportError: no CHALLENGE after 2 HELLOs")
    assert m
    board.wait_for(r"retry 2 in")
    gw.answer = True
    board.wait_for(r"^LINK up udp ")
    gw.wait_event("established")
    gw.wait_record("reading")


def test_dead_gateway_is_detected_and_relinked(boards, gateway):
    gw = gateway()
    board = boards(config_for(gw, "udp", link_timeout_ms=1500))
    board.wait_for(r"^LINK up .* session=1$")
    gw.answer = False
    gw.mute = True  # stop answering pings too
    board.wait_for(r"^LINK down \(TransportError: no record from the gateway in 1500 ms\)")
    gw.answer = True
    gw.mute = False
    board.wait_for(r"^LINK up .* session=2$")


def test_stale_session_relinks_at_once_and_keeps_readings(boards, gateway):
    # link_timeout_ms far beyond the test: only STALE can make the board relink
    gw = gateway()
    board = boards(config_for(gw, "udp", link_timeout_ms=3_600_000, ping_interval_ms=300,
                              outbox_max=64))
    board.wait_for(r"^LINK up .* session=1$")
    got = {gw.wait_record("reading")["seq"]}
    gw.forget_sessions()
    board.wait_for(r"^LINK down \(TransportError: the gateway has no session")
    board.wait_for(r"^LINK up .* session=2$")
    assert gw.stale_sent >= 3
    # every reading taken so far reaches the gateway, even those sent into
    # the forgotten session
    last = int(board.wait_for(r"^READING \S+ seq=(\d+)").group(1))
    for _ in range(10 * last):  # bounded: resent copies may come too
        if set(range(1, last + 1)) <= got:
            break
        got.add(gw.wait_record("reading")["seq"])
    assert set(range(1, last + 1)) <= got
    assert "OUTBOX full" not in board.output


def test_unconfirmed_readings_are_sent_again(boards, gateway):
    gw = gateway()
    gw.confirm = False
    board = boards(config_for(gw, "udp", ping_interval_ms=300))
    board.wait_for(r"^LINK up .* session=1$")
    first = gw.wait_record("reading")["seq"]
    # without "got" the same reading comes again with a later ping
    gw.wait_record("reading", pred=lambda obj: obj["seq"] == first)
    gw.confirm = True


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_discovery_by_gateway_beacon(boards, gateway, transport):
    gw = gateway()
    port = free_port(socket.SOCK_DGRAM)
    gw.start_beacons(port)
    board = boards(board_config(transport=transport, gateway=None, discovery_port=port))
    board.wait_for(rf"^LINK up {transport} 127\.0\.0\.1:{port_of(gw, transport)} ")
    gw.wait_record("reading")


def test_no_beacon_backs_off(boards):
    port = free_port(socket.SOCK_DGRAM)
    board = boards(board_config(gateway=None, discovery_port=port, discovery_timeout_ms=300))
    m = board.wait_for(r"^LINK down \(TransportError: no GatewayBeacon on UDP port (\d+)")
    assert int(m.group(1)) == port
    board.wait_for(r"retry 2 in")


def test_routes_set_the_reading_destination(boards, gateway):
    gw = gateway()
    board = boards(config_for(gw, "udp", routes=[{"sensor": "temp", "to": "broadcast"},
                                                  {"sensor": "temp", "to": PEER_NODE_ID}]))
    board.wait_for(r"^LINK up ")
    first = gw.wait_record("reading")
    second = gw.wait_record("reading")
    assert (first["to"], second["to"]) == ("broadcast", PEER_NODE_ID)
    assert first["seq"] == second["seq"]  # one reading, one record per route


def test_heap_steady_state_under_112k(boards, gateway):
    """Steady state on a 112K heap: HEAP lines after gc.collect() stay flat
    and under the budget. The numbers go to the test log (-s) for the report."""
    gw = gateway()
    board = boards(config_for(gw, "tcp"))
    board.wait_for(r"^LINK up ")
    for _ in range(3):
        gw.send_msg(cjson.dumps({"kind": "command", "action": "log", "arg": "x"}))
    samples = []
    for _ in range(8):
        m = board.wait_for(r"^HEAP alloc=(\d+) free=(\d+) peak=(\d+) budget=(\d+)")
        samples.append(tuple(int(x) for x in m.groups()))
    allocs = [s[0] for s in samples[2:]]
    assert max(allocs) - min(allocs) < 4096, samples  # no leak
    assert max(allocs) < 112 * 1024
    print(f"\nHEAP steady state (unix port, 64-bit, tcp): alloc={allocs[-1]} "
          f"free={samples[-1][1]} peak_sampled={samples[-1][2]}")
    assert not any(re.search("MemoryError|CRASH", line) for line in board.lines)


def test_ids_are_distinct():
    assert BOARD_NODE_ID != GATEWAY_NODE_ID
