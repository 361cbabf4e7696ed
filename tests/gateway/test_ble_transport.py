"""BLE transport against a fake at the bleak boundary (tests/gateway/ble_fake.py),
plus one real-adapter test behind the `hardware` marker."""

from __future__ import annotations

import asyncio
import os

import pytest
from ble_fake import FakeAir
from bleak.exc import BleakError
from helpers import DEADLINE_S
from helpers.transports import supervised
from meshlink.blefrag import SERVICE_UUID, fragment
from meshlink.errors import LocalProtocolError, TransportError
from meshlink_gw.transports.ble import BleTransport, scan_boards

ADDR = "24:6F:28:AA:BB:01"


def harness(air: FakeAir, **kw):
    """A supervised BleTransport on the fake air (board_name "kitchen" unless told)."""
    scanner, client = air.classes()
    kw.setdefault("board_name", "kitchen")
    return supervised(lambda: BleTransport(scanner_cls=scanner, client_cls=client,
                                           scan_timeout_s=0.2, **kw),
                      initial_backoff_ms=10, max_backoff_ms=50)


async def test_ble_scan_connect_and_fragmented_frames_both_ways():
    air = FakeAir()
    board = air.board(ADDR, "kitchen", att_payload_bytes=20)
    battery_service = "0000180f-0000-1000-8000-00805f9b34fb"
    air.board("11:22:33:44:55:66", "kitchen", service_uuids=[battery_service]).advertise()
    board.advertise()
    async with harness(air) as h:
        link = await h.up()
        assert link.name == f"ble:{ADDR}" and link.kind == "datagram"
        assert link.att_payload_bytes == 20 and link.mtu == 2048
        frame = bytes(range(256)) + b"\x00" * 44  # 300 bytes: 17 writes of <= 20 bytes
        await link.send(frame)
        assert await asyncio.wait_for(board.received.get(), DEADLINE_S) == frame
        assert len(board.writes) == 17 and all(len(w) <= 20 for w in board.writes)
        assert await h.frame() == b"echo:" + frame  # came back as 17+ notifications
        board.notify(b"")  # an empty message is one LAST fragment
        assert await h.frame() == b""


async def test_ble_large_mtu_board_and_address_filter():
    air = FakeAir()
    air.board("24:6F:28:AA:BB:02", "kitchen", att_payload_bytes=244).advertise()
    wanted = air.board(ADDR, "kitchen", att_payload_bytes=244)
    wanted.advertise()
    async with harness(air, address=ADDR.lower(), board_name=None) as h:
        link = await h.up()
        assert link.name == f"ble:{ADDR}" and link.att_payload_bytes == 244
        await link.send(bytes(1000))
        assert await asyncio.wait_for(wanted.received.get(), DEADLINE_S) == bytes(1000)
        assert len(wanted.writes) == 5  # ceil(1000 / 242)


async def test_ble_reconnects_after_the_board_drops():
    air = FakeAir()
    board = air.board(ADDR, "kitchen")
    board.advertise()
    async with harness(air) as h:
        first = await h.up()
        board.notify(b"reading 1")
        assert await h.frame() == b"reading 1"
        board.drop()
        assert "disconnected" in await h.down()
        with pytest.raises(TransportError):
            await first.send(b"lost")
        second = await h.up()  # rescanned and reconnected by the supervisor
        assert second is not first and board.connections == 2
        board.notify(b"reading 2")
        assert await h.frame() == b"reading 2"
        await second.send(b"ack")
        assert await asyncio.wait_for(board.received.get(), DEADLINE_S) == b"ack"


async def test_ble_board_not_advertising_yet_then_found():
    air = FakeAir()
    board = air.board(ADDR, "kitchen")
    async with harness(air) as h:
        await asyncio.wait_for(h.retried.wait(), DEADLINE_S)  # scans time out, supervisor retries
        assert h.ups.empty()
        board.advertise()
        link = await h.up()
        await link.send(b"hi")
        assert await h.frame() == b"echo:hi"


async def test_ble_vendor_errors_become_transport_errors():
    air = FakeAir()
    board = air.board(ADDR, "kitchen")
    board.advertise()
    scanner, client = air.classes()
    board.fail_next_connect = BleakError("org.bluez.Error.Failed: le-connection-abort-by-local")
    t = BleTransport(board_name="kitchen", scanner_cls=scanner, client_cls=client,
                     scan_timeout_s=0.2)
    with pytest.raises(TransportError, match="le-connection-abort"):
        await t.open()
    t = BleTransport(board_name="kitchen", scanner_cls=scanner, client_cls=client,
                     scan_timeout_s=0.2)
    await t.open()
    board.fail_writes = BleakError("Not connected")
    with pytest.raises(TransportError, match="write failed"):
        await t.send(b"x")
    with pytest.raises(TransportError):
        async for _ in t:
            pass
    await t.close()
    with pytest.raises(TransportError, match="no MeshLink board"):
        await BleTransport(board_name="nobody", scanner_cls=scanner, client_cls=client,
                           scan_timeout_s=0.05).open()


async def test_ble_garbage_notifications_are_counted_not_fatal():
    air = FakeAir()
    board = air.board(ADDR, "kitchen")
    board.advertise()
    async with harness(air) as h:
        link = await h.up()
        frags = fragment(bytes(50), 20, 9)
        board.notify_raw(b"\x01")  # short
        board.notify_raw(frags[0])
        board.notify_raw(frags[2])  # a fragment went missing
        board.notify_raw(frags[1])  # tail of the dropped message: skipped quietly
        board.notify(b"fine")
        assert await h.frame() == b"fine"
        r = link.reassembler
        assert (r.short_fragments, r.out_of_order, r.skipped_fragments) == (1, 1, 1)
        assert h.downs.empty()
        with pytest.raises(LocalProtocolError):
            await link.send(bytes(link.mtu + 1))


async def test_ble_scan_boards_lists_only_meshlink_boards():
    air = FakeAir()
    air.board("AA:00:00:00:00:01", "kitchen").advertise()
    air.board("AA:00:00:00:00:02", "garage").advertise()
    air.board("AA:00:00:00:00:03", "watch", service_uuids=[]).advertise()
    air.board("AA:00:00:00:00:04", "silent")  # not advertising
    boards = await scan_boards(0.1, scanner_cls=air.classes()[0])
    assert sorted(b.name for b in boards) == ["garage", "kitchen"]


@pytest.mark.hardware
async def test_ble_real_adapter_finds_a_meshlink_board():
    """Needs a Bluetooth adapter and a board running firmware/app/ble_link.py.

    MESHLINK_BLE_BOARD=<address or name> picks the board; run with -m hardware.
    """
    target = os.environ.get("MESHLINK_BLE_BOARD")
    boards = await scan_boards(10.0)
    assert boards, f"no board advertising {SERVICE_UUID}"
    t = BleTransport(address=target if target and ":" in target else None,
                     board_name=target if target and ":" not in target else None)
    await t.open()
    try:
        assert t.att_payload_bytes >= 20 and t.mtu > 0
    finally:
        await t.close()
