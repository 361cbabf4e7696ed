"""The durable MQTT outbox across a real gateway restart (issue 15), real
processes: mosquitto (with persistence, and a subscriber with a persistent
session), a gateway with the MQTT bridge, and the real firmware on the
MicroPython unix port taking a reading every 300 ms over UDP.

The broker is stopped; readings keep arriving at the gateway and wait in its
outbox (mqtt_outbox.db); the gateway is SIGKILLed or stopped and started
again while the broker is still down; then the broker comes back. Asserts
counts, not speed: every reading the gateway stored is published, and none
twice (QoS 1 allows a duplicate when a PUBACK is lost; with the broker down
across the restart nothing is in flight, so the count of duplicates must be
0). A second test bounds the outbox by bytes: the oldest go first, with a
logged count.
"""

from __future__ import annotations

import json
import queue
import re
import shutil

import pytest
from boards_harness import FirmwareBoard, GatewayProcess, MosquittoSub, add_board
from helpers import DEADLINE_S, have_micropython, poll_until

from examples.localbroker import LocalMosquitto, find_mosquitto

pytestmark = [
    pytest.mark.skipif(not have_micropython(), reason="no MicroPython unix port"),
    pytest.mark.skipif(find_mosquitto() is None or shutil.which("mosquitto_sub") is None,
                       reason="mosquitto and mosquitto-clients are needed"),
]

MQTT_TOML = """
[mqtt]
host = "{host}"
port = {port}
reconnect_initial_ms = 100
reconnect_max_ms = 500
outbox_max_bytes = {max_bytes}
"""


def _seqs(gw: GatewayProcess, node_id: str) -> list[int]:
    return [r["seq"] for r in gw.readings(node_id)]


def _collect(sub: MosquittoSub, got: list[int], pred, what: str) -> None:
    """Append the seq of every reading sub receives to got until pred(got)."""
    def step() -> bool:
        try:
            _topic, payload = sub.next(timeout_s=0.2)
        except queue.Empty:
            return pred(got)
        got.append(json.loads(payload)["seq"])
        return pred(got)
    poll_until(step, DEADLINE_S, interval_s=0, what=what)


def _start(procs, tmp_path, broker, max_bytes: int, udp: str = "127.0.0.1:0"):
    gw = GatewayProcess(tmp_path / "gw", udp=udp, extra_toml=MQTT_TOML.format(
        host=broker.host, port=broker.port, max_bytes=max_bytes))
    procs.append(gw)
    gw.start()
    return gw


def _outage(tmp_path, procs, how: str, max_bytes: int):
    """Up to the broker's return: (gateway after the restart, the readings it
    stored, the subscriber of the persistent session, readings published
    before the outage, readings stored when the broker went down)."""
    broker = LocalMosquitto(tmp_path / "broker", persistence=True).start()
    procs.append(broker)
    gw = _start(procs, tmp_path, broker, max_bytes)
    info = add_board(gw.data_dir, "m1", gateway=gw.board_udp)
    topic = f"meshlink/{info['node_id']}/sensor/#"
    sub = MosquittoSub(broker, topic, client_id="faults-sub")
    procs.append(sub)
    board = FirmwareBoard(gw.data_dir, "m1")
    procs.append(board)
    before: list[int] = []
    _collect(sub, before, lambda g: len(g) >= 2, "readings published while all is up")
    sub.kill()  # the persistent session stays on the broker
    broker.stop()  # SIGTERM: the session is saved; down from here on
    gw.wait_log(r"event=mqtt_down")
    at_down = set(_seqs(gw, info["node_id"]))  # any of these may be in flight (QoS 1)
    n = len(at_down)
    gw.wait_board("m1", lambda r: len(_seqs(gw, info["node_id"])) >= n + 5)
    udp = gw.board_udp
    gw.kill() if how == "kill" else gw.stop()
    gw2 = _start(procs, tmp_path, broker, max_bytes, udp=udp)
    loaded = int(gw2.wait_log(r"event=mqtt_outbox_loaded entries=(\d+)")[0].group(1))
    assert loaded >= 5
    n = len(_seqs(gw2, info["node_id"]))  # the board is back: more readings queue up
    gw2.wait_board("m1", lambda r: len(_seqs(gw2, info["node_id"])) >= n + 3)
    board.kill()  # no more readings: what the gateway stored is final
    stored = _seqs(gw2, info["node_id"])
    broker.start()
    sub2 = MosquittoSub(broker, topic, client_id="faults-sub")
    procs.append(sub2)
    return gw2, stored, sub2, before, at_down


@pytest.mark.parametrize("how", ["kill", "stop"])
def test_mqtt_outbox_survives_a_gateway_restart_while_the_broker_is_down(
        tmp_path, procs, how):
    gw, stored, sub, before, at_down = _outage(tmp_path, procs, how, max_bytes=4_194_304)
    after: list[int] = []
    _collect(sub, after, lambda g: set(before) | set(g) >= set(stored),
             "every stored reading published")
    poll_until(lambda: gw.status()["gateway"]["mqtt"]["outbox"] == 0 or None,
               what="outbox empty")
    published = before + after
    assert set(published) == set(stored)
    # QoS 1: a publish the broker took just before it stopped, whose PUBACK
    # the gateway never saw, is published again; nothing stored later may be
    twice = {s for s in published if published.count(s) > 1}
    assert twice <= at_down, f"published twice: {sorted(twice)}"
    first = list(dict.fromkeys(published))
    assert first == sorted(first), "published out of order"
    assert gw.status()["gateway"]["mqtt"]["stats"]["dropped_outbox"] == 0


def test_mqtt_outbox_over_its_byte_bound_drops_the_oldest_and_says_how_many(
        tmp_path, procs):
    # 1 KiB: room for a few readings (about 250 bytes each) out of the dozen
    # or more that arrive while the broker is down
    gw, stored, sub, before, at_down = _outage(tmp_path, procs, "kill", max_bytes=1024)
    logged = [int(m.group(1)) for m in
              gw.wait_log(r"event=mqtt_outbox_full dropped_oldest=(\d+)")]
    assert sum(logged) >= 1
    after: list[int] = []
    _collect(sub, after, lambda g: bool(g) and g[-1] == stored[-1],
             "the newest reading published")
    poll_until(lambda: gw.status()["gateway"]["mqtt"]["outbox"] == 0 or None,
               what="outbox empty")
    # (readings the broker took for the session before it stopped come too)
    kept = [s for s in after if s not in at_down]
    assert len(kept) == len(set(kept)), "a reading published twice"
    # what survived is the newest readings, in order, and no more than fit
    assert kept and kept == stored[len(stored) - len(kept):]
    assert len(kept) <= 1024 // 100
    assert len(kept) < len(stored) - len(at_down)
    assert re.search(r"event=mqtt_outbox_full dropped_oldest=\d+ total_dropped=\d+",
                     gw.log_text())
