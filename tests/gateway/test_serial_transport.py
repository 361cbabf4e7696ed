"""Gateway serial transport over a pty pair: frames, garbage, unplug/replug."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from helpers import DEADLINE_S
from helpers.transports import supervised
from meshlink.errors import LocalProtocolError, TransportError
from meshlink.serialframe import encode
from meshlink_gw.transports.base import supervise
from meshlink_gw.transports.serial import SerialTransport
from serial_pty import PtyBoard


@contextlib.asynccontextmanager
async def harness(tmp_path):
    """A supervised SerialTransport on a PtyBoard's link; h.board is the board."""
    board = PtyBoard(tmp_path / "ttyMESH0")
    try:
        async with supervised(lambda: SerialTransport(str(board.link)), initial_backoff_ms=20,
                              max_backoff_ms=200) as h:
            h.board = board
            yield h
    finally:
        board.close()


async def test_serial_readings_flow_both_ways(tmp_path):
    async with harness(tmp_path) as h:
        link = await h.up()
        assert link.kind == "datagram" and link.mtu == 2048
        for i in range(20):
            h.board.send(b'{"sensor":"temp","value":%d}' % i)
        got = [await h.frame() for _ in range(20)]
        assert got == [b'{"sensor":"temp","value":%d}' % i for i in range(20)]
        await link.send(b"command for the board")
        await link.send(bytes(range(256)) * 4)  # zeros and 0xff inside the payload
        assert await h.board.recv() == b"command for the board"
        assert await h.board.recv() == bytes(range(256)) * 4


async def test_serial_garbage_and_partial_frames_are_skipped(tmp_path):
    async with harness(tmp_path) as h:
        link = await h.up()
        h.board.send_raw(b"ets Jun  8 2016 00:22:57\r\nrst:0x1 (POWERON_RESET)\r\n\xff\xfe")
        h.board.send_raw(encode(b"half a frame")[:-6])  # cut off mid-frame
        h.board.send(b"first good")
        h.board.send_raw(b"\x00\x07noise\x00\x00")
        bad = bytearray(encode(b"flipped"))
        bad[5] ^= 0x40
        h.board.send_raw(bytes(bad))
        h.board.send(b"second good")
        assert await h.frame() == b"first good"
        assert await h.frame() == b"second good"
        assert link.decoder.error_count() >= 3
        assert link.decoder.crc_errors >= 1
        assert h.downs.empty() and h.ups.empty()  # no reconnect: noise is not fatal
        await link.send(b"still up")
        assert await h.board.recv() == b"still up"


async def test_serial_unplug_and_replug_reconnects(tmp_path):
    async with harness(tmp_path) as h:
        first = await h.up()
        h.board.send(b"before")
        assert await h.frame() == b"before"
        h.board.unplug()
        reason = await h.down()
        assert "failed" in reason or "closed" in reason
        with pytest.raises(TransportError):
            await first.send(b"into the void")
        h.board.replug()
        second = await h.up()
        assert second is not first
        h.board.send(b"after")
        assert await h.frame() == b"after"
        await second.send(b"hello again")
        assert await h.board.recv() == b"hello again"


async def test_serial_open_missing_port_is_transport_error(tmp_path):
    t = SerialTransport(str(tmp_path / "no-such-tty"))
    with pytest.raises(TransportError, match="not present"):
        await t.open()
    await t.close()


async def test_serial_oversized_send_is_local_error(tmp_path):
    async with harness(tmp_path) as h:
        link = await h.up()
        with pytest.raises(LocalProtocolError):
            await link.send(bytes(link.mtu + 1))


def test_serial_supervisor_backoff_doubles_with_jitter_and_caps():
    from meshlink_gw.transports.base import Backoff

    low = Backoff(100, 1000, rng=lambda: 0.0)
    assert [low.next_ms() for _ in range(6)] == [50, 100, 200, 400, 500, 500]
    high = Backoff(100, 1000, rng=lambda: 1.0)
    assert [high.next_ms() for _ in range(6)] == [100, 200, 400, 800, 1000, 1000]
    high.reset()
    assert high.next_ms() == 100


async def test_serial_supervisor_retries_until_port_appears(tmp_path):
    link = tmp_path / "ttyLATE"
    opened: asyncio.Queue[SerialTransport] = asyncio.Queue()
    attempts = []
    three_failed = asyncio.Event()
    stop = asyncio.Event()

    def make():
        attempts.append(1)
        if len(attempts) > 3:
            three_failed.set()
        return SerialTransport(str(link))

    task = asyncio.create_task(supervise(make, lambda f: None, initial_backoff_ms=10,
                                         max_backoff_ms=40, stop_event=stop,
                                         on_up=opened.put_nowait))
    await asyncio.wait_for(three_failed.wait(), DEADLINE_S)
    board = PtyBoard(link)
    try:
        assert (await asyncio.wait_for(opened.get(), DEADLINE_S)).port == str(link)
    finally:
        stop.set()
        await asyncio.wait_for(task, DEADLINE_S)
        board.close()
