"""Config validation: the real firmware (main.py) on the MicroPython unix
port under a 112K heap refuses a bad config.json with a typed ConfigError, a
readable one-line console message (no traceback) and a non-zero exit code."""

from __future__ import annotations

import json
import re

import pytest
from firmware_harness import board_config, mpy_json

CASES = [
    ("not json", "{bad json", r"config\.json: not valid JSON"),
    ("missing psk", {k: v for k, v in board_config().items() if k != "psk"},
     r"config\.json: missing key 'psk'"),
    ("psk wrong type", board_config(psk=1234), r"config\.json\.psk: expected 64 hex characters"),
    ("psk not hex", board_config(psk="zz" * 32), r"config\.json\.psk: expected 64 hex"),
    ("board_id short", board_config(board_id="abcd"),
     r"config\.json\.board_id: expected 16 hex characters"),
    ("node_id", board_config(node_id="board-7"), r"config\.json\.node_id: expected a node ID"),
    ("transport", board_config(transport="zigbee"), r"config\.json\.transport: expected"),
    ("ble not an object", board_config(transport="ble", ble="mesh"),
     r"config\.json\.ble: expected an object"),
    ("ble name empty", board_config(transport="ble", ble={"name": ""}),
     r"config\.json\.ble\.name: expected a non-empty string"),
    ("ble name type", board_config(transport="ble", ble={"name": 7}),
     r"config\.json\.ble\.name: expected a non-empty string"),
    ("ble name too long", board_config(transport="ble", ble={"name": "n" * 29}),
     r"config\.json\.ble\.name: at most 28 bytes"),
    ("serial needs its object", board_config(transport="serial"),
     r"config\.json: missing key 'serial'"),
    ("serial port", board_config(transport="serial", serial={"port": 7}),
     r"config\.json\.serial\.port: expected an integer in 0\.\.2"),
    ("serial baudrate", board_config(transport="serial", serial={"port": "/dev/x",
                                                                 "baudrate": "fast"}),
     r"config\.json\.serial\.baudrate: expected an integer"),
    ("gateway", board_config(gateway="localhost"), r"config\.json\.gateway: expected HOST:PORT"),
    ("gateway port", board_config(gateway="h:99999"), r"config\.json\.gateway: expected an int"),
    ("sensor type", board_config(sensors=[{"name": "x", "type": "lidar", "interval_ms": 100}]),
     r"config\.json\.sensors\[0\]\.type: expected one of sim"),
    ("sensor interval", board_config(sensors=[{"name": "x", "type": "sim",
                                               "interval_ms": "fast"}]),
     r"config\.json\.sensors\[0\]\.interval_ms: expected an integer"),
    ("interval bool", board_config(sensors=[{"name": "x", "type": "sim", "interval_ms": True}]),
     r"config\.json\.sensors\[0\]\.interval_ms: expected an integer"),
    ("sensor name too long", board_config(sensors=[{"name": "t" * 33, "type": "sim",
                                                    "interval_ms": 100}]),
     r"config\.json\.sensors\[0\]\.name: at most 32 characters"),
    ("route to unknown sensor", board_config(routes=[{"sensor": "nope", "to": "broadcast"}]),
     r"config\.json\.routes\[0\]\.sensor: no sensor named 'nope'"),
    ("rule op", board_config(rules=[{"from": "*", "sensor": "temp", "op": "!=", "value": 1,
                                     "action": "log"}]),
     r"config\.json\.rules\[0\]\.op: expected one of"),
    ("rule value", board_config(rules=[{"from": "*", "sensor": "temp", "op": ">",
                                        "value": "25", "action": "led"}]),
     r"config\.json\.rules\[0\]\.value: expected a number"),
    ("handler pin", board_config(handlers={"relay": {"pin": "D5"}}),
     r"config\.json\.handlers\.relay\.pin: expected an integer"),
    ("top level", [1, 2], r"config\.json: expected an object"),
    ("sleep_ms too short", board_config(sleep_ms=50),
     r"config\.json\.sleep_ms: expected 0 \(never sleep\) or at least 100"),
    ("sleep_ms type", board_config(sleep_ms="1m"), r"config\.json\.sleep_ms: expected an int"),
    ("sleep_resume", board_config(sleep_resume=2), r"config\.json\.sleep_resume: expected 0 or 1"),
    ("provision port", board_config(provision={"port": 9}),
     r"config\.json\.provision\.port: expected an integer in 0\.\.2"),
    ("provision type", board_config(provision="uart"),
     r"config\.json\.provision: expected an object"),
    ("unix has no adc", board_config(sensors=[{"name": "a", "type": "adc", "interval_ms": 100,
                                               "pin": 34}]),
     r"adc: the unix port has no ADC"),
]


@pytest.mark.parametrize("config,pattern", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_config_is_refused(boards, config, pattern):
    board = boards(config)
    rc = board.wait_exit()
    assert rc == 2, board.output
    assert len(board.lines) == 1, board.output  # one readable line, no traceback
    assert board.lines[0].startswith("CONFIG ERROR: "), board.output
    line = board.lines[0].replace(str(board.config_path), "config.json")
    assert re.search(pattern, line), line


def test_missing_file(boards):
    board = boards(None)
    assert board.wait_exit() == 2
    assert board.lines == [f"CONFIG ERROR: {board.config_path}: cannot read the file"]


def test_corrupt_boot_counter(boards):
    board = boards(board_config(gateway="127.0.0.1:9"), name="b")
    board.wait_for(r"^BOOT .* boot_ctr=1 ")
    board.stop()
    (board.workdir / "boot.cnt").write_text("garbage")
    again = boards(board_config(gateway="127.0.0.1:9"), name="b")
    assert again.wait_exit() == 2
    assert "corrupt boot counter" in again.output


def test_validator_types_in_process(bundle):
    """config.from_obj raises meshlink.errors.ConfigError (typed), and numbers
    in units become integer milli-units."""
    cfg = board_config(rules=[{"from": "*", "sensor": "temp", "op": ">=", "value": 25.5,
                               "action": "relay", "arg": 1}],
                       routes=[{"sensor": "temp", "to": "broadcast"},
                               {"sensor": "temp", "to": "gateway"}])
    out = mpy_json(bundle, f"""
import json
from app import config
from meshlink.errors import ConfigError, MeshLinkError
cfg = config.from_obj(json.loads({json.dumps(json.dumps(cfg))}))
kinds = []
for bad in ({{}}, {{"name": 1}}):
    try:
        config.from_obj(bad)
    except ConfigError as e:
        kinds.append([type(e).__name__, isinstance(e, MeshLinkError), str(e)])
print(json.dumps({{"rules": cfg.rules, "routes": cfg.routes, "sensors": cfg.sensors,
                  "psk": len(cfg.psk), "kinds": kinds}}))
""")
    assert out["rules"][0]["value_milli"] == 25500
    assert out["routes"] == {"temp": ["broadcast", None]}
    sim = out["sensors"][0]
    assert (sim["base_milli"], sim["amplitude_milli"], sim["noise_milli"]) == (21500, 3000, 250)
    assert out["psk"] == 32
    assert out["kinds"] == [["ConfigError", True, "config.json: missing key 'name'"],
                            ["ConfigError", True, "config.json.name: expected a non-empty string"]]


def test_ble_transport_is_accepted(bundle):
    """"transport": "ble": the advertised name defaults to the board name; no
    gateway address or WiFi is needed."""
    out = mpy_json(bundle, f"""
import json
from app import config
plain = config.from_obj(json.loads({json.dumps(json.dumps(board_config(transport="ble")))}))
named = config.from_obj(json.loads({json.dumps(json.dumps(
    board_config(transport="ble", ble={"name": "garden-ble"})))}))
print(json.dumps([plain.transport, plain.ble, named.ble, named.unknown_keys]))
""")
    assert out == ["ble", {"name": "sim-1"}, {"name": "garden-ble"}, []]
