"""Provisioning without baked WiFi secrets: the REAL firmware on the
MicroPython unix port (added with `board add --provision-port`, so its
bundle has no WiFi) waits on a serial line (a pty pair bridged by a thread);
credentials sealed under another board's key, changed on the line, or made
for another exchange (a replay) are refused by the board; `meshlink board
provision` for another board is refused by the CLI; the right one is taken,
and the board goes on to its gateway. What ran only this way: the ESP32's
UART and WiFi association (the unix port uses the host's network)."""

from __future__ import annotations

import json
import os
import time
import tty

import pytest
from boards_harness import FirmwareBoard, GatewayProcess, add_board, bundle_secrets
from helpers import DEADLINE_S, cli, have_micropython
from meshlink import provision
from meshlink.serialframe import SerialDecoder, encode
from pty_bridge import PtyBridge

pytestmark = pytest.mark.skipif(not have_micropython(), reason="no MicroPython unix port")

PASSWORD = "correct horse battery staple"


class Line:
    """The host end of the line, read and written by the test itself."""

    def __init__(self, path) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        tty.setraw(self.fd)
        self.decoder = SerialDecoder()
        self.frames: list[bytes] = []

    def next(self, want: int) -> bytes:
        """The next frame of type want (others dropped), within DEADLINE_S."""
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            while self.frames:
                frame = self.frames.pop(0)
                if provision.kind(frame) == want:
                    return frame
            try:
                data = os.read(self.fd, 4096)
            except BlockingIOError:
                time.sleep(0.02)
                continue
            self.frames.extend(self.decoder.feed(data))
        raise AssertionError(f"no frame of type {want:#x} in {DEADLINE_S}s")

    def send(self, payload: bytes) -> None:
        os.write(self.fd, encode(payload))

    def close(self) -> None:
        os.close(self.fd)


def test_board_takes_sealed_wifi_over_serial_and_refuses_bad_ones(tmp_path, procs):
    gw = GatewayProcess(tmp_path / "gw")
    procs.append(gw)
    gw.start()
    gw_link, board_link = tmp_path / "host-tty", tmp_path / "board-tty"
    bridge = PtyBridge(gw_link, board_link)
    try:
        info = add_board(gw.data_dir, "p1", gateway=gw.board_udp,
                         extra_args=("--provision-port", str(board_link)))
        add_board(gw.data_dir, "other", gateway=gw.board_udp)
        bundle = (gw.data_dir / "boards" / "p1" / "bundle" / "config.json").read_text()
        assert "wifi" not in json.loads(bundle) and PASSWORD not in bundle
        psk, board_id, _ = bundle_secrets(gw.data_dir, "p1")
        other_psk, _, _ = bundle_secrets(gw.data_dir, "other")
        board = FirmwareBoard(gw.data_dir, "p1")
        procs.append(board)
        board.wait_for(r"PROVISION waiting on serial:\S+ board_id=" + board_id.hex())

        line = Line(gw_link)
        got_id, nb = provision.decode_hello(line.next(provision.T_PROV_HELLO))
        assert got_id == board_id
        bad = {
            "another board's key": provision.seal_creds(other_psk, board_id, nb, b"g" * 16,
                                                        "evil-net", "x"),
            "a replay (another exchange)": provision.seal_creds(psk, board_id, b"n" * 16,
                                                                b"g" * 16, "old-net", "x"),
        }
        tampered = bytearray(provision.seal_creds(psk, board_id, nb, b"h" * 16, "field-net",
                                                  PASSWORD))
        tampered[20] ^= 0x40  # one ciphertext bit
        bad["changed on the line"] = bytes(tampered)
        for n, (why, creds) in enumerate(bad.items(), 1):
            line.send(creds)
            refused = line.next(provision.T_PROV_REFUSED)
            assert provision.decode_refused(refused) == provision.REFUSED_TAG, why
            board.wait_for(r"PROVISION refused: the credentials' tag does not verify",
                           count=n)
        line.close()
        assert "PROVISIONED" not in board.output() and "LINK up" not in board.output()

        # the CLI names the wrong board: it sends nothing
        out = cli("board", "provision", "other", "--port", str(gw_link), "--wifi-ssid",
                  "field-net", "--wifi-password", PASSWORD, "--data-dir", str(gw.data_dir),
                  "--timeout-s", str(DEADLINE_S))
        assert out.returncode == 2 and "not other's" in out.stderr, out.stderr
        # the right one
        out = cli("board", "provision", "p1", "--port", str(gw_link), "--wifi-ssid",
                  "field-net", "--json", "--data-dir", str(gw.data_dir), "--timeout-s",
                  str(DEADLINE_S), env=dict(os.environ, MESHLINK_WIFI_PASSWORD=PASSWORD))
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout.splitlines()[-1])["provisioned"] is True
        board.wait_for(r"PROVISIONED wifi ssid=field-net")
        board.wait_for(r"LINK up udp")  # and on to its gateway
        gw.wait_board("p1", lambda r: r["online"])
        assert PASSWORD not in board.output()
        stored = list((gw.data_dir / "boards" / "p1").rglob("wifi.json"))
        assert len(stored) == 1 and json.loads(stored[0].read_text()) == {
            "ssid": "field-net", "password": PASSWORD}
        assert info["node_id"]
    finally:
        bridge.close()
