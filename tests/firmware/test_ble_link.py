"""The real firmware (bundle main.py, MicroPython unix port, 112K heap) with
"transport": "ble", over a FAKE aioble/bluetooth (tests/gateway/mpy_fakes).

tests/firmware/ble_app_mpy.py plays the BLE central inside the MicroPython
process and bridges each fragment over loopback TCP to a CPython fake
gateway (meshlink.boardlink.GatewaySession) that fragments and reassembles
with meshlink.blefrag at the negotiated MTU. The firmware's BleTransport,
BleLink, blefrag and the whole app run for real; no Bluetooth stack does."""

from __future__ import annotations

import pathlib
import re
import socket
import subprocess

import pytest
from firmware_harness import PEER_NODE_ID, FakeGateway, board_config
from helpers import mpy_cross
from meshlink import blefrag, cjson

HERE = pathlib.Path(__file__).resolve().parent
FAKES = HERE.parent / "gateway" / "mpy_fakes"
MTU = 23  # the BLE minimum: 20-byte fragments, so every record is fragmented
# The fake aioble/bluetooth and the bridge need heap of their own (printed as
# "BRIDGE overhead=N"): the process gets 112K plus this allowance, and the
# app's HEAP lines minus the overhead must stay under 112K.
HEAP_ALLOWANCE_K = 24


class BleFakeGateway(FakeGateway):
    """FakeGateway whose TCP connections carry BLE fragments (a length byte, then
    the fragment):
    the central's side of the board link, reassembling notifications and
    fragmenting writes at MTU - 3."""

    def __init__(self, mtu: int = MTU):
        self.att = mtu - 3
        self._ble: dict[socket.socket, tuple[blefrag.Reassembler, blefrag.Fragmenter]] = {}
        super().__init__()

    def _send(self, to, msg: bytes):
        _, frag = self._ble[to]
        to.sendall(b"".join(bytes((len(p),)) + p for p in frag.split(msg)))

    def _ready(self, s):
        if s is self.tcp:
            conn, _ = self.tcp.accept()
            self._conns[conn] = bytearray()  # bytes not yet split into fragments
            self._ble[conn] = (blefrag.Reassembler(), blefrag.Fragmenter(self.att))
            return
        data = self._recv_or_close(s)
        if data is None:
            return
        reassembler, _ = self._ble[s]
        buf = self._conns[s]
        buf += data
        while buf and len(buf) > buf[0]:
            piece = bytes(buf[1:1 + buf[0]])
            del buf[:1 + buf[0]]
            assert len(piece) <= self.att, len(piece)
            msg = reassembler.feed(piece)
            if msg is not None:
                self._on_message(msg, s)

    def drop(self):
        """The central goes away: the bridge sees EOF and drops the fake connection."""
        for conn in list(self._conns):
            conn.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def ble_gateway():
    gw = BleFakeGateway()
    yield gw
    gw.close()


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    """The fakes and the bridge as .mpy, as the bundle is: compiling .py on
    import would take heap a 112K board never spends."""
    out = tmp_path_factory.mktemp("ble_fakes")
    for src in (FAKES / "aioble.py", FAKES / "bluetooth.py", HERE / "ble_app_mpy.py"):
        subprocess.run([mpy_cross(), "-O3", "-o", str(out / (src.stem + ".mpy")), str(src)],
                       check=True)
    (out / "run_ble_app.py").write_text("import ble_app_mpy  # noqa\n")
    return out


def start(boards, compiled, port: int, **kw):
    cfg = board_config(transport="ble", gateway=None, **kw)
    return boards(cfg, script=compiled / "run_ble_app.py", args=(str(port), str(MTU)),
                  path_before=f"{compiled}:", heap=f"{112 + HEAP_ALLOWANCE_K}K")


def test_ble_board_links_sends_readings_receives_and_relinks(boards, compiled, ble_gateway):
    gw = ble_gateway
    board = start(boards, compiled, gw.tcp_port, ble={"name": "mesh-ble-1"})
    overhead = int(board.wait_for(r"^BRIDGE overhead=(\d+)$").group(1))
    assert overhead < HEAP_ALLOWANCE_K * 1024
    board.wait_for(r"^BOOT name=sim-1 .* transport=ble$")
    board.wait_for(r"^BRIDGE connected mtu=23 registered=1 advertised=mesh-ble-1$")
    board.wait_for(r"^LINK up ble ble:mesh-ble-1 sid=00000001 boot_ctr=1 session=1$")
    _, session = gw.wait_event("established")
    assert session.boot_ctr == 1
    reading = gw.wait_record("reading")
    assert (reading["sensor"], reading["unit"], reading["to"]) == ("temp", "C", None)
    gw.wait_record("ping")  # answered with a pong, fragmented both ways

    # gateway -> board: a command (several fragments at MTU 23), then an ack
    msg_id = gw.send_msg(cjson.dumps({"kind": "command", "action": "relay", "arg": 1}))
    board.wait_for(rf"^ACTION relay=1 \(command from {PEER_NODE_ID}\)$")
    assert gw.wait_record("ack", pred=lambda o: o["id"] == msg_id) == {"t": "ack", "id": msg_id}
    gw.send_msg(b"hello over ble", dst=None)
    board.wait_for(rf"^TEXT from {PEER_NODE_ID}: hello over ble$")

    # the central drops: LINK down, advertising again, the same GATT service
    # (registered once per boot), a fresh handshake on the new connection
    gw.drop()
    board.wait_for(r"^BRIDGE dropped$")
    board.wait_for(r"^LINK up ble ble:mesh-ble-1 sid=00000002 boot_ctr=1 session=2$")
    assert any(line.startswith("LINK down (TransportError: ble:mesh-ble-1: the gateway "
                               "disconnected)") for line in board.lines), board.output
    reconnects = [line for line in board.lines if line.startswith("BRIDGE connected")]
    assert reconnects[1:] == ["BRIDGE connected mtu=23 registered=1 advertised=mesh-ble-1"]
    gw.wait_record("reading", pred=lambda o: o["seq"] > reading["seq"] + 1)
    heap = [tuple(int(x) for x in board.wait_for(r"^HEAP alloc=(\d+) free=\d+ peak=(\d+)").groups())
            for _ in range(4)]
    alloc, peak = max(h[0] for h in heap) - overhead, max(h[1] for h in heap) - overhead
    print(f"\nHEAP ble (unix port, 64-bit, fake aioble, bridge overhead {overhead} "
          f"subtracted): alloc={alloc} peak={peak}")
    assert alloc < 112 * 1024, (overhead, heap)  # steady state (the peak: see docs)
    assert not any(re.search("MemoryError|CRASH|Traceback", line) for line in board.lines)


def test_ble_board_without_a_gateway_backs_off(boards, compiled):
    """No central ever connects: open() gives up after discovery_timeout_ms
    with a TransportError, and the app retries with its backoff."""
    board = start(boards, compiled, 0, discovery_timeout_ms=300)
    board.wait_for(r"^LINK down \(TransportError: no gateway connected to ble:sim-1 in 300 ms\); "
                   r"retry 1 in \d+ ms$")
    board.wait_for(r"^LINK down \(TransportError: no gateway connected .*; retry 2 in ")
    assert not any("LINK up" in line for line in board.lines)
