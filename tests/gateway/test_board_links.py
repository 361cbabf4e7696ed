"""Wired boards in-process: a [[serial]] entry over a pty and a [[ble]] entry
over the fake at the bleak boundary (tests/gateway/ble_fake.py), each feeding
the board service's sessions like a UDP board. The board is a CPython
stand-in (examples/sim_board.py); the real firmware over a pty is in
tests/integration/test_bridges_e2e.py."""

from __future__ import annotations

import asyncio
import contextlib

from ble_fake import FakeAir
from helpers import DEADLINE_S, wait_until
from helpers.rigs import Rig
from meshlink import cjson
from meshlink.serialframe import encode
from meshlink_gw.config import BleLinkConfig, SerialLinkConfig
from serial_pty import PtyBoard

from examples.sim_board import SimBoard


@contextlib.asynccontextmanager
async def wired(root, **kw):
    """A gateway with no board listeners, boards b1 and b2 registered for its wired links."""
    rig = await Rig().start(root, ("b1", "b2"), transport="serial", listeners=False, **kw)
    try:
        yield rig
    finally:
        await rig.stop()


def pump(source: asyncio.Queue, board: SimBoard) -> asyncio.Task:
    """Hand every message the gateway sends over the link to the stand-in board."""
    async def _run() -> None:
        while True:
            board.on_message(await source.get())
    return asyncio.get_running_loop().create_task(_run())


async def test_serial_board_reads_writes_skips_garbage_and_reconnects(tmp_path):
    pty = PtyBoard(tmp_path / "ttyBOARD")
    entry = SerialLinkConfig(port=str(pty.link), board="b1", reconnect_initial_ms=20,
                             reconnect_max_ms=100)
    async with wired(tmp_path, serial=[entry]) as rig:
        runner = rig.svc.runners[0]
        await wait_until(lambda: runner.peer is not None)
        b = rig.board()
        task = pump(pty.received, b)
        try:
            await b.connect_link(pty.send)
            await wait_until(lambda: "b1" in rig.svc.links)
            assert rig.svc.links["b1"].peer.kind == "serial"
            b.reading("temp", 21_000, 1, to=rig.peer.node_id)
            await wait_until(lambda: any(r.src == b.node_id for r in rig.peer.inbox.since(0)))
            msg, fut = rig.peer.originate(b.node_id, b"over the wire")
            assert (await b.recv_msg())["data"] == b"over the wire"
            assert (await asyncio.wait_for(fut, DEADLINE_S)).delivered
            # line noise and a partial frame: skipped, the session stays
            sid = rig.svc.links["b1"].session.sid
            pty.send_raw(b"boot chatter\r\n\xff\xfe\x00" + encode(b"partial")[:-3])
            b.send({"t": "ping", "seq": 7})
            assert (await b.recv())["seq"] == 7
            assert rig.svc.links["b1"].session.sid == sid
            assert rig.svc.status()["links"][0]["garbage"] >= 1
            # unplugged: the session ends; replugged: a new one
            pty.unplug()
            await wait_until(lambda: "b1" not in rig.svc.links and runner.peer is None)
            pty.replug()
            await wait_until(lambda: runner.peer is not None and runner.ups == 2)
            b2 = rig.board()
            task.cancel()
            task = pump(pty.received, b2)
            await b2.connect_link(pty.send)
            await wait_until(lambda: "b1" in rig.svc.links
                             and rig.svc.links["b1"].session.sid != sid)
            await wait_until(lambda: rig.online_events == [("b1", True), ("b1", False),
                                                           ("b1", True)])
        finally:
            task.cancel()
    pty.close()


async def test_serial_link_refuses_another_board(tmp_path):
    pty = PtyBoard(tmp_path / "ttyB1")
    entry = SerialLinkConfig(port=str(pty.link), board="b1", reconnect_initial_ms=20,
                             reconnect_max_ms=100)
    async with wired(tmp_path, serial=[entry]) as rig:
        await wait_until(lambda: rig.svc.runners[0].peer is not None)
        other = rig.board("b2")  # a registered board, but not this link's
        task = pump(pty.received, other)
        try:
            with contextlib.suppress(Exception):
                await other.connect_link(pty.send, timeout_s=0.5)
            await wait_until(lambda: rig.svc.refusals["wrong_board"] >= 1)
            assert "b2" not in rig.svc.links
        finally:
            task.cancel()
    pty.close()


async def test_ble_board_over_the_fake_bleak(tmp_path):
    air = FakeAir()
    radio = air.board("24:6F:28:AA:BB:01", "kitchen", att_payload_bytes=20)
    radio.advertise()
    entry = BleLinkConfig(board="b1", name="kitchen", scan_timeout_s=0.2,
                          reconnect_initial_ms=20, reconnect_max_ms=100)
    async with wired(tmp_path, ble=[entry], ble_classes=air.classes()) as rig:
        runner = rig.svc.runners[0]
        await wait_until(lambda: runner.peer is not None)
        b = rig.board()
        radio.on_message = b.on_message
        await b.connect_link(radio.notify)
        await wait_until(lambda: "b1" in rig.svc.links)
        assert rig.svc.links["b1"].peer.describe() == "ble:24:6F:28:AA:BB:01"
        b.reading("temp", 22_500, 1, to=rig.peer.node_id)  # > 20 bytes: fragmented
        await wait_until(lambda: any(r.src == b.node_id for r in rig.peer.inbox.since(0)))
        got = [r for r in rig.peer.inbox.since(0) if r.src == b.node_id][0]
        assert cjson.loads(got.data)["value_milli"] == 22_500
        msg, fut = rig.peer.originate(b.node_id, b"x" * 300)  # many fragments back
        assert (await b.recv_msg())["data"] == b"x" * 300
        assert (await asyncio.wait_for(fut, DEADLINE_S)).delivered
        radio.drop()  # out of range: the session ends, the runner rescans
        await wait_until(lambda: "b1" not in rig.svc.links)
        await wait_until(lambda: runner.ups == 2)
        b2 = rig.board()
        radio.on_message = b2.on_message
        await b2.connect_link(radio.notify)
        await wait_until(lambda: "b1" in rig.svc.links)
        b2.send({"t": "ping", "seq": 3})
        assert (await b2.recv())["seq"] == 3
