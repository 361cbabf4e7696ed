"""The firmware's serial link (firmware/app/serial_link.py) running on the
MicroPython unix port at the far end of a pty."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pathlib
import shutil

import pytest
from helpers import DEADLINE_S, ROOT, require_micropython
from helpers.transports import supervised
from meshlink.serialframe import encode
from meshlink_gw.transports.serial import SerialTransport
from serial_pty import PtyBoard

SCRIPT = pathlib.Path(__file__).with_name("serial_board_mpy.py")
ANNOUNCE = b'{"board":"mpy","sensor":"temp","value":21}'


@contextlib.asynccontextmanager
async def firmware(tty_path: str):
    env = dict(os.environ, MICROPYPATH=f".frozen:{ROOT / 'shared'}:{ROOT / 'firmware'}")
    proc = await asyncio.create_subprocess_exec(
        require_micropython(), str(SCRIPT), tty_path, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
        out, _ = await asyncio.wait_for(proc.communicate(), DEADLINE_S)
        print(out.decode(errors="replace"))


async def test_serial_firmware_on_micropython_over_pty(tmp_path):
    board_side = PtyBoard(tmp_path / "ttyFW")  # here the test plays the gateway
    try:
        async with firmware(str(board_side.link)) as proc:
            assert await board_side.recv() == ANNOUNCE
            board_side.send(b"ping 1")
            board_side.send_raw(b"line noise\r\n\xff" + encode(b"partial")[:-4])
            board_side.send(bytes(range(256)))
            assert await board_side.recv() == b"echo:ping 1"
            assert await board_side.recv() == b"echo:" + bytes(range(256))
            board_side.send(b"quit")
            bye = await board_side.recv()
            assert bye.startswith(b"bye:") and int(bye[4:]) >= 1  # it counted the garbage
            assert await asyncio.wait_for(proc.wait(), DEADLINE_S) == 0
    finally:
        board_side.close()


async def _socat_pair(tmp_path):
    if shutil.which("socat") is None:
        pytest.skip("socat not installed (CI installs it)")
    a, b = tmp_path / "ttyGW", tmp_path / "ttyBOARD"
    proc = await asyncio.create_subprocess_exec(
        "socat", "-d", "-d", f"pty,raw,echo=0,link={a}", f"pty,raw,echo=0,link={b}",
        stderr=asyncio.subprocess.PIPE)
    lines = 0
    while lines < 2:  # socat logs one "PTY is /dev/pts/N" line per end
        line = await asyncio.wait_for(proc.stderr.readline(), DEADLINE_S)
        assert line, "socat exited early"
        lines += b"PTY is" in line
    return proc, a, b


async def test_serial_gateway_transport_to_micropython_firmware(tmp_path):
    socat, gw_path, board_path = await _socat_pair(tmp_path)
    try:
        async with supervised(lambda: SerialTransport(str(gw_path)), initial_backoff_ms=20,
                              max_backoff_ms=200) as h:
            link = await h.up()
            async with firmware(str(board_path)) as proc:
                assert await h.frame() == ANNOUNCE
                for i in range(10):
                    await link.send(b"reading-ack %d" % i)
                for i in range(10):
                    assert await h.frame() == b"echo:reading-ack %d" % i
                await link.send(b"quit")
                assert await h.frame() == b"bye:0"
                assert await asyncio.wait_for(proc.wait(), DEADLINE_S) == 0
    finally:
        socat.terminate()
        await asyncio.wait_for(socat.wait(), DEADLINE_S)
