"""Fault tests with real processes (issue 15): a gateway killed (or stopped) and restarted
under a UDP board that keeps taking readings. Asserts counts and order
(every reading taken arrives once, in the order taken), never speed: the
board's link timeout is set far beyond the test's deadlines, so only the
gateway's STALE reply (PROTOCOL.md section 6.4), or the ICMP error of the
dead port, can bring it back."""

from __future__ import annotations

import time

import pytest
from boards_harness import FAST_BOARD, FirmwareBoard, GatewayProcess, add_board
from helpers import have_micropython

pytestmark = pytest.mark.skipif(not have_micropython(), reason="no MicroPython unix port")

# FAST_BOARD, but no liveness timeout within the test and room for the readings
# taken while the gateway is down
STALE_ONLY = tuple(s for s in FAST_BOARD if not s.startswith("link_timeout_ms")) + (
    "link_timeout_ms=3600000", "outbox_max=64")


def _seqs(gw: GatewayProcess, node_id: str) -> list[int]:
    return [r["seq"] for r in gw.readings(node_id)]


@pytest.mark.parametrize("how", ["kill", "stop"])
def test_udp_board_relinks_after_gateway_restart_without_losing_a_reading(
        tmp_path, procs, how):
    gw = GatewayProcess(tmp_path / "gw")
    procs.append(gw)
    gw.start()
    info = add_board(gw.data_dir, "u1", gateway=gw.board_udp, sets=STALE_ONLY)
    board = FirmwareBoard(gw.data_dir, "u1")
    procs.append(board)
    board.wait_for(r"LINK up udp .* session=1$")
    gw.wait_board("u1", lambda r: len(_seqs(gw, info["node_id"])) >= 3)
    udp = gw.board_udp
    gw.kill() if how == "kill" else gw.stop()
    # readings taken while nobody listens stay in the board's outbox
    taken = len(board.wait_for(r"READING temp seq=", count=1))
    board.wait_for(r"READING temp seq=", count=taken + 3)
    gw2 = GatewayProcess(tmp_path / "gw", udp=udp)
    procs.append(gw2)
    gw2.start()
    # on loopback the board may see the dead port's ICMP error first; either
    # way it runs a new handshake (STALE alone: tests/firmware/test_link.py)
    board.wait_for(r"LINK down \(TransportError: (the gateway has no session|udp )")
    board.wait_for(r"LINK up udp .* session=2$")
    last = int(board.wait_for(r"READING temp seq=(\d+)")[-1].group(1))
    gw2.wait_board("u1", lambda r: set(range(1, last + 1)) <= set(_seqs(gw2, info["node_id"])))
    seqs = _seqs(gw2, info["node_id"])
    assert len(seqs) == len(set(seqs)), "a reading was delivered twice"
    assert seqs == sorted(seqs), "readings out of order"
    assert "OUTBOX full" not in board.output()


def test_idle_udp_board_relinks_after_a_long_gateway_outage_without_losing_a_reading(
        tmp_path, procs):
    # the firmware's own reconnect backoff (backoff_min_ms, backoff_max_ms
    # defaults), keepalives and liveness as shipped; a slow sensor, so the board
    # is mostly idle; an outbox with room for what it takes during the outage
    sets = ("hello_timeout_ms=300", "heap_report_ms=0", "outbox_max=64")
    gw = GatewayProcess(tmp_path / "gw")
    procs.append(gw)
    gw.start()
    info = add_board(gw.data_dir, "idle", gateway=gw.board_udp, sets=sets, interval_ms=5000)
    board = FirmwareBoard(gw.data_dir, "idle")
    procs.append(board)
    board.wait_for(r"LINK up udp .* session=1$")
    gw.wait_board("idle", lambda r: len(_seqs(gw, info["node_id"])) >= 1)
    udp = gw.board_udp
    gw.kill()
    # the outage is the scenario: long enough for a board's reconnect delay to
    # grow to its cap (with a 60 s cap it would now be 32-60 s)
    board.wait_for(r"LINK down")
    time.sleep(60)
    taken = int(board.wait_for(r"READING temp seq=(\d+)")[-1].group(1))
    gw2 = GatewayProcess(tmp_path / "gw", udp=udp)
    procs.append(gw2)
    gw2.start()
    board.wait_for(r"LINK up udp .* session=2$")  # within the test's deadline
    gw2.wait_board("idle", lambda r: set(range(1, taken + 1)) <= set(_seqs(gw2, info["node_id"])))
    seqs = _seqs(gw2, info["node_id"])
    assert len(seqs) == len(set(seqs)), "a reading was delivered twice"
    assert seqs == sorted(seqs), "readings out of order"
    assert "OUTBOX full" not in board.output()
