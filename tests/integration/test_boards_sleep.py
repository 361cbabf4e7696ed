"""Sleeping boards: the REAL firmware on the MicroPython unix port
(-X heapsize=112K), run by `meshlink board run` (whose launcher restarts the
process after each simulated deep sleep: all RAM is lost), and a real gateway
process. Every board->gateway datagram passes a recording UDP proxy, so seq
uniqueness is checked on every record the board sent, not only on those the
gateway accepted. What ran only this way, and not on an ESP32: deep sleep
itself (machine.deepsleep) and RTC memory (a file here)."""

from __future__ import annotations

import json
import re
import subprocess
import threading

import pytest
from boards_harness import FAST_BOARD, FirmwareBoard, GatewayProcess, UdpTamperProxy, add_board
from helpers import DEADLINE_S, have_micropython
from meshlink import boardlink

from examples.node_proc import meshlink_cmd

pytestmark = pytest.mark.skipif(not have_micropython(), reason="no MicroPython unix port")

CYCLES = 20
SLEEP_MS = 700
SEND_AFTER = {2: 3, 6: 2, 11: 3, 15: 2}  # after the n-th sleep: this many messages


class RecordLog:
    """(sid, seq) of every board-link RECORD the board sent."""

    def __init__(self) -> None:
        self.records: list[tuple[int, int]] = []
        self._lock = threading.Lock()

    def __call__(self, _index: int, datagram: bytes) -> list[bytes]:
        if datagram[:1] == bytes([boardlink.T_RECORD]):
            with self._lock:
                self.records.append(boardlink.decode_record_header(datagram))
        return [datagram]


def _sends(gw, node_id: str, texts: list[str], queued_before: int) -> list[subprocess.Popen]:
    """`meshlink send` of each text, one after the other once the previous is
    queued at the gateway (so the queue order is the send order)."""
    procs = []
    for i, text in enumerate(texts):
        procs.append(subprocess.Popen(
            [*meshlink_cmd(), "send", "--json", "--data-dir", str(gw.data_dir), "--to",
             node_id, text], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        gw.wait_log(r"for board s1, \d+ hop\(s\): queued", count=queued_before + i + 1)
    return procs


def test_board_sleeps_and_wakes_20_times_losing_nothing(tmp_path, procs):
    gw = GatewayProcess(tmp_path / "gw", extra_toml="")
    procs.append(gw)
    gw.start()
    recorder = RecordLog()
    proxy = UdpTamperProxy(gw.board_udp, recorder)
    try:
        info = add_board(gw.data_dir, "s1", gateway=proxy.address, sets=FAST_BOARD + (
            f"sleep_ms={SLEEP_MS}", "awake_max_ms=10000"), interval_ms=5000)
        board = FirmwareBoard(gw.data_dir, "s1")
        procs.append(board)
        senders: list[subprocess.Popen] = []
        texts: list[str] = []
        for n in range(1, CYCLES + 1):
            board.wait_for(r"SLEEP ms=", timeout_s=3 * DEADLINE_S, count=n)
            if n in SEND_AFTER:
                batch = [f"note-{len(texts) + k}" for k in range(SEND_AFTER[n])]
                senders += _sends(gw, info["node_id"], batch, len(texts))
                texts += batch
        board.wait_for(r"SLEEP ms=", timeout_s=3 * DEADLINE_S, count=CYCLES + 1)
        for p in senders:
            out, err = p.communicate(timeout=DEADLINE_S)
            assert p.returncode == 0 and json.loads(out)["delivered"], err
        # the gateway saw it asleep after every cycle and online at every wake,
        # never offline (its board list is polled in the next test: a wake
        # here lasts tens of milliseconds)
        gw.wait_log(r"board s1 is asleep", count=CYCLES + 1)
    finally:
        proxy.close()
    out = board.output()
    sleeps = re.findall(r"SLEEP ms=(\d+) radio_on_ms=\d+ granted=(\d) session=(\w+) "
                        r"outbox=(\d+) peak=(\d+) budget=(\d+)", out)
    assert len(sleeps) >= CYCLES + 1
    # every cycle was granted by the gateway, emptied its outbox, kept its session
    assert all(g == "1" and s == "kept" and o == "0" for _, g, s, o, _, _ in sleeps), sleeps
    assert all(int(peak) <= int(budget) for *_, peak, budget in sleeps)
    # the session was resumed on (almost) every wake: no handshake per wake
    resumed = re.findall(r"LINK up udp .* resumed=1", out)
    assert len(resumed) >= CYCLES - 1, out[-3000:]
    # no seq was ever sealed twice under one session (every record the board sent)
    assert len(recorder.records) == len(set(recorder.records)), "a seq was reused"
    # every reading taken before the last sleep reached the gateway, once each
    last_sleep = out.rfind("SLEEP ms=")
    taken = [int(s) for s in re.findall(r"READING temp seq=(\d+)", out[:last_sleep])]
    assert len(taken) >= CYCLES and taken == list(range(1, len(taken) + 1))
    got = gw.wait_inbox(lambda items: {r["seq"] for r in gw.readings(info["node_id"])}
                        >= set(taken))
    assert got
    seqs = [r["seq"] for r in gw.readings(info["node_id"])]
    assert len(seqs) == len(set(seqs))  # once each
    # every queued message reached the board once, in order
    delivered = re.findall(r"TEXT from [0-9a-f-]+: (note-\d+)", out)
    assert delivered == texts
    assert "DUPLICATE" not in out
    states = re.findall(r"board s1 is (online|asleep|offline)", gw.log_text())
    assert "offline" not in states, states
    assert states[:2] == ["online", "asleep"] and all(
        a != b for a, b in zip(states, states[1:], strict=False)), states
    st = gw.status()["gateway"]
    assert st["stats"]["board_sleeps"] >= CYCLES
    assert "replay" not in st["refusals"] and "bad_tag" not in st["refusals"]


def test_asleep_on_mqtt_and_board_list_then_offline_after_the_grace(tmp_path, procs):
    """A board that sleeps and never wakes (its process is stopped while
    asleep): asleep (not offline) until its wake deadline plus the gateway's
    sleep_grace_ms (default 10 s), then offline; MQTT status follows."""
    import shutil

    from boards_harness import MosquittoSub

    from examples.localbroker import LocalMosquitto, find_mosquitto

    if find_mosquitto() is None or shutil.which("mosquitto_sub") is None:
        pytest.skip("mosquitto and mosquitto-clients are needed")
    broker = LocalMosquitto(tmp_path / "broker").start()
    procs.append(broker)
    mqtt = (f'\n[mqtt]\nhost = "{broker.host}"\nport = {broker.port}\n'
            'reconnect_initial_ms = 100\nreconnect_max_ms = 500\n')
    gw = GatewayProcess(tmp_path / "gw", extra_toml=mqtt)
    procs.append(gw)
    gw.start()
    info = add_board(gw.data_dir, "s2", gateway=gw.board_udp, sets=FAST_BOARD + (
        "sleep_ms=2000",), interval_ms=5000)
    sub = MosquittoSub(broker, f"meshlink/{info['node_id']}/status")
    procs.append(sub)
    board = FirmwareBoard(gw.data_dir, "s2")
    procs.append(board)
    board.wait_for(r"SLEEP ms=2000 .* granted=1")
    board.stop()  # the launcher and the board: it never wakes
    row = gw.wait_board("s2", lambda r: r["asleep"])
    assert not row["online"] and row["session"] is not None  # the session is kept
    row = gw.wait_board("s2", lambda r: not r["asleep"] and not r["online"])
    statuses = []
    while "offline" not in statuses[-1:]:
        topic, payload = sub.next()
        statuses.append(payload)
    # retained "offline" first (registered, not yet seen), then the live changes
    assert statuses[-3:] == ["online", "asleep", "offline"], statuses


def test_a_tcp_board_sleeps_with_a_handshake_each_wake(tmp_path, procs):
    """Over TCP the session ends with the connection: each wake is a new
    handshake (no resumption), and the board is still asleep, not offline,
    in between; readings arrive once each."""
    gw = GatewayProcess(tmp_path / "gw")
    procs.append(gw)
    gw.start()
    info = add_board(gw.data_dir, "t1", gateway=gw.board_tcp, transport="tcp", sets=FAST_BOARD + (
        "sleep_ms=500",), interval_ms=5000)
    board = FirmwareBoard(gw.data_dir, "t1")
    procs.append(board)
    board.wait_for(r"SLEEP ms=500 .* granted=1 session=none", count=3, timeout_s=3 * DEADLINE_S)
    out = board.output()
    assert "resumed=1" not in out and len(re.findall(r"LINK up tcp", out)) >= 3
    gw.wait_log(r"board t1 is asleep", count=3)
    states = re.findall(r"board t1 is (online|asleep|offline)", gw.log_text())
    assert "offline" not in states, states
    taken = {int(s) for s in re.findall(r"READING temp seq=(\d+)", out[:out.rfind("SLEEP")])}
    gw.wait_inbox(lambda _items: {r["seq"] for r in gw.readings(info["node_id"])} >= taken)
    seqs = [r["seq"] for r in gw.readings(info["node_id"])]
    assert len(seqs) == len(set(seqs))
