"""Refusals on a real gateway, with the REAL firmware as the boards that must
keep working: a wrong PSK, an unknown board ID, a revoked board, a replayed
and a bit-flipped record (a UDP man in the middle), and a flooding board.
Every refusal is logged with its reason; the other boards are not disturbed."""

from __future__ import annotations

import asyncio
import os
import socket

import pytest
from boards_harness import (
    FirmwareBoard,
    GatewayProcess,
    UdpTamperProxy,
    add_board,
    bundle_secrets,
    tamper_bundle,
)
from helpers import DEADLINE_S, cli, have_micropython, poll_until, run
from meshlink import boardlink

from examples.sim_board import SharedUdp, SimBoard

pytestmark = pytest.mark.skipif(not have_micropython(), reason="no MicroPython unix port")


def _udp(addr: str) -> tuple[str, int]:
    host, port = addr.rsplit(":", 1)
    return host, int(port)


def _forged_confirm(gateway: str, board_id: bytes, wrong_psk: bytes) -> None:
    """Someone who knows a board ID but not its PSK answers the CHALLENGE."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(DEADLINE_S)
        hello = boardlink.encode_hello(board_id, 1, os.urandom(16))
        s.sendto(hello, _udp(gateway))
        challenge, _ = s.recvfrom(100)
        sid, _nonce, _tag = boardlink.decode_challenge(challenge)
        t = boardlink.transcript_hash(hello, challenge[:boardlink.CHALLENGE_BODY_BYTES])
        k_auth = boardlink.derive_auth_key(wrong_psk, board_id)
        s.sendto(boardlink.encode_confirm(sid, boardlink.handshake_tag(
            k_auth, boardlink.LABEL_B, t)), _udp(gateway))


def _unknown_hello(gateway: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(boardlink.encode_hello(os.urandom(8), 1, os.urandom(16)), _udp(gateway))


def test_refusals_are_logged_and_other_boards_keep_working(tmp_path, procs):
    gw = procs.append(GatewayProcess(tmp_path / "gw")) or procs[-1].start()
    good = add_board(gw.data_dir, "good", gateway=gw.board_udp)
    add_board(gw.data_dir, "badpsk", gateway=gw.board_udp)
    add_board(gw.data_dir, "rv", gateway=gw.board_udp)
    flips = {}

    def tamper(i, data):
        if data[0] != boardlink.T_RECORD:
            return [data]
        n = flips["records"] = flips.get("records", 0) + 1
        if n == 4:
            return [data, data]  # replay
        if n == 6:
            bad = bytearray(data)
            bad[20] ^= 0x01  # one bit of ciphertext
            return [bytes(bad), data]
        return [data]

    proxy = UdpTamperProxy(gw.board_udp, tamper)
    procs.append(proxy)
    add_board(gw.data_dir, "mitm", gateway=proxy.address)
    tamper_bundle(gw.data_dir, "badpsk", psk=os.urandom(32).hex())

    b_good = FirmwareBoard(gw.data_dir, "good")
    procs.append(b_good)
    b_good.wait_for("LINK up")
    for name in ("badpsk", "rv", "mitm"):
        procs.append(FirmwareBoard(gw.data_dir, name))
    b_bad, b_rv, b_mitm = procs[-3:]

    # a wrong PSK on a real board: its CHALLENGEs never verify, no CONFIRM comes
    b_bad.wait_for(r"LINK down \(AuthError")
    gw.wait_log(r"refused board=badpsk .* reason=handshake_timeout")
    # a forged CONFIRM (the board ID is known, the PSK is not): AuthError
    _, board_id, _ = bundle_secrets(gw.data_dir, "badpsk")
    _forged_confirm(gw.board_udp, board_id, os.urandom(32))
    gw.wait_log(r"refused board=badpsk .* reason=wrong_psk: CONFIRM tag does not verify")
    # an unknown board ID
    _unknown_hello(gw.board_udp)
    gw.wait_log(r"refused board=\? .* reason=unknown_board: unknown board ID")
    # a replayed and a bit-flipped record of a real board's session
    b_mitm.wait_for("LINK up")
    gw.wait_log(r"refused board=mitm .* reason=replay")
    gw.wait_log(r"refused board=mitm .* reason=bad_tag: record tag does not verify")
    # revoking a live board: the session is cut now, its records and HELLOs refused
    b_rv.wait_for("LINK up")
    out = cli("board", "revoke", "rv", "--data-dir", str(gw.data_dir))
    assert out.returncode == 0 and "session was cut" in out.stdout, out.stderr
    gw.wait_log(r"board rv revoked: session cut")
    gw.wait_log(r"refused board=rv .* reason=revoked: record for session")
    b_rv.wait_for(r"LINK down \(TransportError")
    gw.wait_log(r"refused board=rv .* reason=revoked: HELLO from a revoked board")

    # through all of it the good board and the tampered-with board kept working
    n_good = len(gw.readings(good["node_id"]))
    _, _, mitm_id = bundle_secrets(gw.data_dir, "mitm")
    n_mitm = len(gw.readings(mitm_id))
    gw.wait_board("good", lambda r: r["online"] and len(gw.readings(good["node_id"])) > n_good)
    gw.wait_board("mitm", lambda r: r["online"] and len(gw.readings(mitm_id)) > n_mitm)
    rows = gw.boards()
    assert rows["rv"]["revoked"] and not rows["rv"]["online"]
    assert not rows["badpsk"]["online"]
    refusals = gw.status()["gateway"]["refusals"]
    for reason in ("handshake_timeout", "wrong_psk", "unknown_board", "replay", "bad_tag",
                   "revoked"):
        assert refusals.get(reason, 0) >= 1, refusals
    assert b_good.proc.poll() is None and b_mitm.proc.poll() is None


def test_a_flooding_board_is_rate_limited_without_starving_others(tmp_path, procs):
    """A board sending far more than its allowance (20 records/s, burst 20) is
    refused (after its tag is checked: forged records cannot spend it), while
    another board's readings keep arriving.
    The flood lasts until the good board got through, however fast this machine
    is: no throughput is measured (that is `make bench`)."""
    gw = procs.append(GatewayProcess(tmp_path / "gw", rate=20, burst=20)) or procs[-1].start()
    good = add_board(gw.data_dir, "good", gateway=gw.board_udp, interval_ms=200)
    flood = add_board(gw.data_dir, "flood", gateway=gw.board_udp)
    b_good = FirmwareBoard(gw.data_dir, "good")
    procs.append(b_good)
    b_good.wait_for("LINK up")
    gw.wait_board("good", lambda r: len(gw.readings(good["node_id"])) >= 2)
    psk, board_id, _ = bundle_secrets(gw.data_dir, "flood")
    before = len(gw.readings(good["node_id"]))

    async def flood_until_the_good_board_got_through() -> int:
        shared = SharedUdp()
        shared.start()
        board = SimBoard(psk, board_id)
        await board.connect_udp(shared, _udp(gw.board_udp), timeout_s=DEADLINE_S)
        sent = 0
        stop = asyncio.Event()

        async def spam() -> None:
            nonlocal sent
            while not stop.is_set():
                for _ in range(100):  # back to back: always far over 20 records/s
                    board.reading("spam", sent, sent)
                    sent += 1
                await asyncio.sleep(0.01)

        task = asyncio.create_task(spam())
        try:  # five more readings of the good board while the flood goes on
            await asyncio.to_thread(gw.wait_board, "good", lambda r: r["online"] and len(
                gw.readings(good["node_id"])) >= before + 5)
        finally:
            stop.set()
            await task
            shared.close()
        return sent

    sent = run(flood_until_the_good_board_got_through())
    gw.wait_log(r"refused board=flood .* reason=rate_limited: over 20 records/s")
    # the allowance got through, the rest was refused (and counted) by the limiter
    got_flood = poll_until(lambda: [r for r in gw.readings(flood["node_id"])
                                    if r["sensor"] == "spam"], what="the flood's allowance")
    limited = gw.status()["gateway"]["refusals"].get("rate_limited", 0)
    assert limited > 0 and len(got_flood) < sent, (limited, len(got_flood), sent)
    assert len(got_flood) + limited <= sent, (limited, len(got_flood), sent)
    gw.wait_board("good", lambda r: r["online"])
