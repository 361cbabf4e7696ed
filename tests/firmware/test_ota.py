"""The board's side of over-the-air updates, on the MicroPython unix port
(112K) with the real firmware and a fake gateway that can send what a real
one never would: a chunk changed in flight (after the gateway's checks) and a
manifest MAC made with another board's key. Each leaves the board on its old
firmware, with nothing staged. Exit code 3 is the firmware's reboot request;
the test starts it again in the same directory, as `meshlink board run`
(boards/simboot.py) does."""

from __future__ import annotations

import re

import pytest
from firmware_harness import PSK, board_config
from meshlink._compat import b64encode
from meshlink_gw.boards import ota

CHUNK = ota.chunk_bytes(768)


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    root = tmp_path_factory.mktemp("release")
    ota.generate_update_key(root / "key")
    path = ota.build_release(root / "gw", "unix", "9.9.9", root / "key" / ota.KEY_FILE)
    return ota.load_release(path, ota.load_public_key(root / "key" / ota.PUB_FILE))


def _begin(release, tid, psk=PSK):
    return {"t": "ota", "op": "begin", "id": tid, "ver": release.version,
            "mlen": len(release.manifest), "mh": release.manifest_sha256.hex(),
            "tag": ota.manifest_tag(psk, release.manifest_sha256).hex()}


def _into_receiver(boards, gw, cfg, release, tid):
    """Offer an update to a running board: it reboots into the update receiver."""
    board = boards(cfg, "b1")
    board.wait_for(r"LINK up udp")
    gw.wait_event("established")
    gw.send_record(_begin(release, tid))
    assert gw.wait_record("ota")["op"] == "reboot"
    assert board.wait_exit() == 3
    rx = boards(cfg, "b1")  # the launcher boots it again
    rx.wait_for(r"OTA mode: boot_ctr=2 version=factory")
    gw.wait_event("established")
    assert gw.wait_record("status") == {"t": "status", "ver": "factory", "ota": "receiving"}
    return rx


def _back_to_factory(boards, cfg, rx, workdir):
    assert rx.wait_exit() == 3
    assert not (workdir / "ota.json").exists() and not (workdir / "ota" / "a").exists()
    again = boards(cfg, "b1")
    again.wait_for(r"LINK up udp")  # the USB-flashed firmware, as before
    assert not any(ln.startswith("FIRMWARE") for ln in again.lines)
    return again


def test_a_chunk_changed_in_flight_is_caught_and_nothing_switches(boards, gateway, release,
                                                                 tmp_path):
    gw = gateway()
    cfg = board_config(gateway=f"127.0.0.1:{gw.udp_port}", heap_report_ms=0)
    rx = _into_receiver(boards, gw, cfg, release, "t1")
    gw.send_record(_begin(release, "t1"))
    assert gw.wait_record("ota") == {"t": "ota", "op": "ack", "id": "t1", "off": 0}
    stream = bytearray(release.stream)
    stream[len(release.manifest) + 100] ^= 0x01  # a bit of the first file, after signing
    off, reply = 0, None
    for _ in range(len(stream) // CHUNK + 2):  # bounded: one pass over the stream
        data = bytes(stream[off:off + CHUNK])
        gw.send_record({"t": "ota", "op": "chunk", "id": "t1", "off": off,
                        "data": b64encode(data)})
        off += len(data)
        if (off // CHUNK) % 2 == 0 or off == len(stream):
            reply = gw.wait_record("ota")
            if reply["op"] != "ack":
                break
    assert reply is not None and reply["op"] == "fail", reply
    assert "SHA-256 differs from the manifest" in reply["why"]
    rx.wait_for(r"OTA failed id=t1: .*SHA-256 differs from the manifest; still running "
                r"factory")
    peak = int(rx.wait_for(r"HEAP ota_mode alloc_peak=(\d+) budget=112000").group(1))
    assert peak <= 112000
    _back_to_factory(boards, cfg, rx, tmp_path / "b1")


def test_a_manifest_mac_from_another_key_is_refused(boards, gateway, release, tmp_path):
    gw = gateway()
    cfg = board_config(gateway=f"127.0.0.1:{gw.udp_port}", heap_report_ms=0)
    rx = _into_receiver(boards, gw, cfg, release, "t2")
    gw.send_record(_begin(release, "t2", psk=bytes(32)))  # not this board's PSK
    reply = gw.wait_record("ota")
    assert reply["op"] == "fail" and "manifest MAC does not verify" in reply["why"]
    rx.wait_for(r"OTA refused id=t2: OtaError: manifest MAC does not verify; "
                r"still running factory")
    again = _back_to_factory(boards, cfg, rx, tmp_path / "b1")
    again.wait_for(r"READING temp")  # the old firmware runs on
    assert not any(re.search("Traceback", ln) for ln in rx.lines + again.lines)
