"""Firmware units on the MicroPython unix port (112K heap): the simulated
sensor is deterministic and matches a CPython reference exactly, rules
compare integers exactly, the BME280 arithmetic gives the datasheet's
numbers, and the board's beacon parser accepts exactly what
meshlink.messages.GatewayBeacon accepts."""

from __future__ import annotations

import json
import math
import struct

import pytest
from firmware_harness import BOARD_NODE_ID, GATEWAY_NODE_ID, PEER_NODE_ID, mpy_json, run_mpy
from meshlink import messages
from meshlink.errors import MeshLinkError

SIM = {"name": "temp", "type": "sim", "interval_ms": 250, "unit": "C", "base_milli": 21500,
       "amplitude_milli": 3000, "noise_milli": 250, "period_ms": 4000, "seed": 7,
       "field": "temperature"}


def xorshift32(x):
    x ^= (x << 13) & 0xFFFFFFFF
    x ^= x >> 17
    x ^= (x << 5) & 0xFFFFFFFF
    return x


def reference_sim(spec, n):
    """The documented waveform, computed independently in CPython."""
    state = spec["seed"] & 0xFFFFFFFF or 0x9E3779B9
    out = []
    for i in range(n):
        t = (i * spec["interval_ms"]) % spec["period_ms"]
        wave = spec["amplitude_milli"] * math.sin(2 * math.pi * t / spec["period_ms"])
        noise = 0
        if spec["noise_milli"]:
            state = xorshift32(state)
            noise = state % (2 * spec["noise_milli"] + 1) - spec["noise_milli"]
        out.append(spec["base_milli"] + int(round(wave)) + noise)
    return out


def sim_values(bundle, spec, n):
    return mpy_json(bundle, f"""
import json
from app import sensors
s = sensors.build([json.loads({json.dumps(json.dumps(spec))})])[0]
print(json.dumps([s.read() for _ in range({n})]))
""")


def test_sim_sensor_is_deterministic_and_matches_reference(bundle):
    first = sim_values(bundle, SIM, 40)
    assert first == sim_values(bundle, SIM, 40)  # a second process, same values
    assert first == reference_sim(SIM, 40)
    assert all(type(v) is int for v in first)
    other_seed = sim_values(bundle, dict(SIM, seed=8), 40)
    assert other_seed != first
    no_noise = sim_values(bundle, dict(SIM, noise_milli=0), 17)
    assert no_noise[0] == 21500 and no_noise[4] == 24500 and no_noise[12] == 18500


RULES = [
    {"from": "*", "sensor": "temp", "op": ">", "value_milli": 25000, "action": "relay", "arg": 1},
    {"from": PEER_NODE_ID, "sensor": "temp", "op": "<=", "value_milli": 18000, "action": "led",
     "arg": 0},
    {"from": "*", "sensor": "hum", "op": "==", "value_milli": 50000, "action": "log",
     "arg": "wet"},
    {"from": "*", "sensor": "hum", "op": ">=", "value_milli": 90000, "action": "log",
     "arg": "soaked"},
    {"from": "*", "sensor": "temp", "op": "<", "value_milli": -5000, "action": "log",
     "arg": "frost"},
]
READINGS = [
    (PEER_NODE_ID, "temp", 25000), (PEER_NODE_ID, "temp", 25001), (PEER_NODE_ID, "temp", 18000),
    (GATEWAY_NODE_ID, "temp", 18000), (PEER_NODE_ID, "hum", 50000), (PEER_NODE_ID, "hum", 50001),
    (PEER_NODE_ID, "hum", 90000), (PEER_NODE_ID, "temp", -5001), (PEER_NODE_ID, "temp", -5000),
    (PEER_NODE_ID, "other", 99999999), (PEER_NODE_ID, "temp", 26000.0),
    (PEER_NODE_ID, "temp", True), (PEER_NODE_ID, "temp", "30000"),
]
EXPECTED = [[], ["relay"], ["led"], [], ["log"], [], ["log"], ["led", "log"], ["led"], [], [], [],
            []]


def test_rules_evaluate_exactly_and_handlers_print(bundle):
    proc = run_mpy(bundle, f"""
import json
from app import rules
r = rules.Rules(json.loads({json.dumps(json.dumps(RULES))}))
h = rules.Handlers({{}})
readings = {READINGS!r}
fired = []
for src, sensor, value in readings:
    got = r.matches(src, sensor, value)
    fired.append([a for a, _arg, _why in got])
    for action, arg, why in got:
        h.run(action, arg, why)
h.run("relay", "on", "command from x")
h.run("buzzer", 1, "command from x")
print(json.dumps([fired, h.pins["relay"].value, h.pins["led"].value, h.count]))
""")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.strip().splitlines()
    fired, relay, led, count = json.loads(lines[-1])
    assert fired == EXPECTED
    assert (relay, led, count) == (1, 0, 7)
    assert lines[:-1] == [
        f"ACTION relay=1 (rule: temp from {PEER_NODE_ID} > 25000 milli)",
        f"ACTION led=0 (rule: temp from {PEER_NODE_ID} <= 18000 milli)",
        f"ACTION log=wet (rule: hum from {PEER_NODE_ID} == 50000 milli)",
        f"ACTION log=soaked (rule: hum from {PEER_NODE_ID} >= 90000 milli)",
        f"ACTION led=0 (rule: temp from {PEER_NODE_ID} <= 18000 milli)",
        f"ACTION log=frost (rule: temp from {PEER_NODE_ID} < -5000 milli)",
        f"ACTION led=0 (rule: temp from {PEER_NODE_ID} <= 18000 milli)",
        "IGNORED action 'relay' arg 'on' (command from x)",
        "IGNORED action 'buzzer' arg 1 (command from x)",
    ]


# Bosch BMP280 datasheet (BST-BMP280-DS001) section 3.12 worked example.
BMP_T = (27504, 26435, -1000)
BMP_P = (36477, -10685, 3024, 2855, 140, -7, 15500, -14600, 6000)
H_CAL = (75, 362, 0, 313, 50, 30)  # H1..H6, typical of real parts


def bme_registers(chip, adc_t, adc_p, adc_h):
    mem = bytearray(256)
    mem[0xD0] = chip
    mem[0x88:0x88 + 26] = struct.pack("<HhhHhhhhhhhhBB", *BMP_T, *BMP_P, 0, H_CAL[0])
    h1, h2, h3, h4, h5, h6 = H_CAL
    mem[0xE1:0xE8] = struct.pack("<hBbBbb", h2, h3, h4 >> 4, (h4 & 0xF) | ((h5 & 0xF) << 4),
                                 h5 >> 4, h6)
    mem[0xF7:0xFF] = bytes([adc_p >> 12, (adc_p >> 4) & 0xFF, (adc_p & 0xF) << 4,
                            adc_t >> 12, (adc_t >> 4) & 0xFF, (adc_t & 0xF) << 4,
                            adc_h >> 8, adc_h & 0xFF])
    return bytes(mem)


def pressure_float(adc_p, t_fine):
    """The datasheet's double-precision pressure formula (BMP280 section 8.1), in Pa."""
    p1, p2, p3, p4, p5, p6, p7, p8, p9 = BMP_P
    var1 = t_fine / 2.0 - 64000.0
    var2 = var1 * var1 * p6 / 32768.0
    var2 = var2 + var1 * p5 * 2.0
    var2 = var2 / 4.0 + p4 * 65536.0
    var1 = (p3 * var1 * var1 / 524288.0 + p2 * var1) / 524288.0
    var1 = (1.0 + var1 / 32768.0) * p1
    p = 1048576.0 - adc_p
    p = (p - var2 / 4096.0) * 6250.0 / var1
    return p + (p9 * p * p / 2147483648.0 + p * p8 / 32768.0 + p7) / 16.0


def humidity_float(adc_h, t_fine):
    """The datasheet's double-precision humidity formula (BME280 section 8.1)."""
    h1, h2, h3, h4, h5, h6 = H_CAL
    v = t_fine - 76800.0
    v = (adc_h - (h4 * 64.0 + h5 / 16384.0 * v)) * (
        h2 / 65536.0 * (1.0 + h6 / 67108864.0 * v * (1.0 + h3 / 67108864.0 * v)))
    v = v * (1.0 - h1 * v / 524288.0)
    return min(100.0, max(0.0, v))


def bme_read(bundle, chip, adc_h=30000):
    regs = bme_registers(chip, 519888, 415148, adc_h)
    return mpy_json(bundle, f"""
import json
from app.bme280 import BME280
class Bus:
    def __init__(self, mem):
        self.mem = bytearray(mem)
        self.writes = []
    def readfrom_mem(self, addr, reg, n):
        return bytes(self.mem[reg:reg + n])
    def writeto_mem(self, addr, reg, buf):
        self.writes.append([reg, buf[0]])
bus = Bus({regs!r})
dev = BME280(bus, 0x76)
out = {{"fine": dev.t_fine(519888), "writes": bus.writes}}
for field in ("temperature", "pressure", "humidity"):
    try:
        out[field] = dev.read_milli(field)
    except OSError as e:
        out[field] = str(e)
out["q24_8"] = dev.pressure_q24_8(415148, out["fine"])
print(json.dumps(out))
""")


def test_bme280_datasheet_vector(bundle):
    out = bme_read(bundle, 0x58)  # BMP280: the datasheet's own example
    assert out["fine"] == 128422
    assert out["temperature"] == 25080  # 25.08 C
    want_pa = pressure_float(415148, out["fine"])
    assert abs(want_pa - 100653.27) < 0.05  # the table used the float t_fine
    assert abs(out["q24_8"] / 256 - want_pa) < 0.1  # Q24.8 Pa
    assert out["pressure"] == out["q24_8"] * 10 // 256 == 1006532  # milli-hPa
    assert out["humidity"] == "a BMP280 has no humidity sensor"
    assert out["writes"][0] == [0xF4, 0x25]  # forced mode, x1 oversampling


@pytest.mark.parametrize("adc_h", [20000, 30000, 40000])
def test_bme280_humidity_matches_float_formula(bundle, adc_h):
    out = bme_read(bundle, 0x60, adc_h)
    want = humidity_float(adc_h, out["fine"]) * 1000
    assert abs(out["humidity"] - want) <= 100  # 0.1 %RH: the integer formula's step
    assert out["writes"][0] == [0xF2, 0x01]


def beacon_variants():
    good = messages.GatewayBeacon(node_id=GATEWAY_NODE_ID, udp_port=7410, tcp_port=7411)
    obj = good.to_obj()
    yield good.encode()
    yield json.dumps(obj).encode()  # not canonical, still valid
    for key, value in [("v", 2), ("type", "beacon"), ("udp_port", 70000), ("tcp_port", -1),
                       ("udp_port", True), ("node_id", GATEWAY_NODE_ID.upper()),
                       ("node_id", "gw"), ("extra", 1), ("tcp_port", "7411")]:
        yield json.dumps(dict(obj, **{key: value})).encode()
    yield json.dumps({k: v for k, v in obj.items() if k != "tcp_port"}).encode()
    yield b"not json"
    yield b"[1,2]"
    yield b"\xff\xfe"


def test_beacon_parser_agrees_with_messages(bundle):
    variants = list(beacon_variants())
    got = mpy_json(bundle, f"""
import json
from app import ip_link
out = []
for data in {variants!r}:
    b = ip_link.parse_beacon(data)
    out.append(None if b is None else list(b))
print(json.dumps(out))
""")
    for data, parsed in zip(variants, got, strict=True):
        try:
            msg = messages.decode(data)
            want = [msg.node_id, msg.udp_port, msg.tcp_port]
        except MeshLinkError:
            want = None
        assert parsed == want, data


def test_backoff_grows_with_jitter_and_resets(bundle):
    delays = mpy_json(bundle, """
import json
from app import link
b = link.Backoff(100, 1000)
out = [b.next_ms() for _ in range(7)]
b.reset()
out.append(b.next_ms())
print(json.dumps(out))
""")
    caps = [100, 200, 400, 800, 1000, 1000, 1000, 100]
    for delay, cap in zip(delays, caps, strict=True):
        assert cap // 2 <= delay <= cap


def test_unique_board_node_ids():
    assert len({BOARD_NODE_ID, GATEWAY_NODE_ID, PEER_NODE_ID}) == 3
