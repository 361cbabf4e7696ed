"""The config engine and loader (gateway/meshlink_gw/config/): every TOML table
through one validator into frozen objects; errors name the table and key."""

from __future__ import annotations

import dataclasses
import pathlib

import pytest
from meshlink.errors import ConfigError
from meshlink_gw.config import (
    DEFAULT_DISCOVERY_PORT,
    BleLinkConfig,
    Config,
    GatewayConfig,
    MqttConfig,
    NodeConfig,
    SerialLinkConfig,
    load_config,
    loads_config,
    override,
    parse_config,
    parse_table,
)
from meshlink_gw.config.schema import settings

ROOT = pathlib.Path(__file__).resolve().parents[2]
TABLE_CLASSES = (NodeConfig, GatewayConfig, SerialLinkConfig, BleLinkConfig, MqttConfig)


def test_defaults_are_the_documented_ones():
    cfg = parse_config({})
    assert cfg == Config() and cfg.gateway.mqtt is None and cfg.gateway.serial == ()
    assert cfg.node.listen == ("127.0.0.1", 7400) and cfg.node.peers == ()
    assert cfg.node.router == "meshlink" and cfg.node.max_frame_bytes == 65536
    assert cfg.gateway.board_udp == ("0.0.0.0", 7410) and cfg.gateway.board_tcp == (
        "0.0.0.0", 7411)
    # one port for both LAN beacons
    assert cfg.node.discovery_port == cfg.gateway.beacon_port == DEFAULT_DISCOVERY_PORT == 7399


def test_every_config_object_is_frozen():
    for cls in (*TABLE_CLASSES, Config):
        assert cls.__dataclass_params__.frozen, cls  # type: ignore[attr-defined]
    cfg = NodeConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.listen = ("127.0.0.1", 1)  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        GatewayConfig().retry_ms = 5  # type: ignore[misc]
    assert isinstance(parse_config({"node": {"peers": ["a:1"]}}).node.peers, tuple)
    assert isinstance(parse_config({"mqtt": {"allow_targets": ["x"]}}).gateway.mqtt.allow_targets,
                      tuple)


def test_every_key_has_a_doc_line_and_its_unit_in_the_name():
    for cls in TABLE_CLASSES:
        for name, spec in settings(cls).items():
            assert spec.doc, f"{cls.__name__}.{name} has no doc line"
            if any(w in name for w in ("timeout", "interval", "_age", "after", "_drop", "poll")):
                assert name.endswith(("_ms", "_s")), f"{cls.__name__}.{name}: unit not in name"


def test_gateway_link_and_mqtt_keys_are_documented():
    boards = (ROOT / "docs" / "BOARDS.md").read_text()
    bridges = (ROOT / "docs" / "BRIDGES.md").read_text()
    readme = (ROOT / "README.md").read_text()
    for cls, text in ((GatewayConfig, boards), (SerialLinkConfig, bridges),
                      (BleLinkConfig, bridges), (MqttConfig, readme)):
        for name in settings(cls):
            assert f"`{name}`" in text or f"{name}`" in text, f"{cls.__name__}.{name} undocumented"


@pytest.mark.parametrize("doc, message", [
    # wrong type
    ({"node": {"idle_ping_ms": "5s"}},
     r"node\.idle_ping_ms: wrong type str, expected an integer"),
    ({"node": {"max_peers": True}}, r"node\.max_peers: wrong type bool, expected an integer"),
    ({"node": {"discovery": 1}}, r"node\.discovery: wrong type int, expected true or false"),
    ({"node": {"listen": "nohost"}}, r"node\.listen: expected HOST:PORT, got 'nohost'"),
    ({"node": {"peers": "a:1"}}, r"node\.peers: wrong type str, expected a list"),
    ({"node": {"peers": ["a:1", "b"]}}, r"node\.peers\[1\]: expected HOST:PORT"),
    ({"boards": {"forward_broadcasts": 1}}, r"boards\.forward_broadcasts: wrong type int"),
    ({"mqtt": {"connect_timeout_s": "10"}}, r"mqtt\.connect_timeout_s: wrong type str"),
    ({"node": {"discovery_broadcast": ""}},
     r"node\.discovery_broadcast: expected a non-empty string, got ''"),
    # out of range, or not one of the choices
    ({"node": {"default_ttl": 0}}, r"node\.default_ttl must be in 1\.\.255, got 0"),
    ({"node": {"retry_interval_ms": -1}}, r"node\.retry_interval_ms must be at least 0, got -1"),
    ({"node": {"max_frame_bytes": 1000}}, r"node\.max_frame_bytes must be at least 16384"),
    ({"node": {"router": "nope"}},
     r"node\.router must be one of 'flood', 'meshlink', .*'seed', got 'nope'"),
    ({"node": {"event_loop": "trio"}}, r"node\.event_loop must be 'asyncio' or 'uvloop'"),
    ({"boards": {"rate_burst": 0}}, r"boards\.rate_burst must be at least 1, got 0"),
    ({"boards": {"max_record_bytes": 100000}}, r"boards\.max_record_bytes must be in 256\.\."),
    ({"gateway": {"beacon_port": 70000}}, r"gateway\.beacon_port must be in 0\.\.65535"),
    ({"mqtt": {"connect_timeout_s": 0}}, r"mqtt\.connect_timeout_s must be in \(0, 120\]"),
    # cross-key rules
    ({"node": {"reconnect_min_ms": 500, "reconnect_max_ms": 100}},
     r"node\.reconnect_max_ms must be >= reconnect_min_ms"),
    # unknown keys and tables, a key in the wrong table
    ({"node": {"nonsense": 1}}, r"node: unknown key 'nonsense' \(known: beacon_interval_ms, "),
    ({"boards": {"board_udp": "1.2.3.4:5"}}, r"boards\.board_udp: belongs in the \[gateway\]"),
    ({"gateway": {"rate_burst": 1}}, r"gateway\.rate_burst: belongs in the \[boards\] table"),
    ({"nodes": {"listen": "a:1"}}, r"unknown table \[nodes\]; known: \[node\]"),
    ({"listen": "a:1"}, r"unknown table \[listen\] \(settings go in a table"),
    ({"node": []}, r"\[node\] must be a table"),
    # [[serial]] and [[ble]]
    ({"serial": [{"port": "/dev/ttyUSB0"}]}, r"serial\[0\]\.board: missing \(the registered"),
    ({"serial": [{"board": "b1"}]}, r"serial\[0\]\.port: missing"),
    ({"serial": [{"port": "/dev/x", "board": "../b"}]},
     r"serial\[0\]\.board: expected a valid board name"),
    ({"serial": [{"port": "/dev/x", "board": "b", "baud": 9600}]},
     r"serial\[0\]: unknown key 'baud' \(known: baudrate, board, port, "),
    ({"serial": [{"port": "/dev/x", "board": "b", "baudrate": 0}]},
     r"serial\[0\]\.baudrate must be at least 1"),
    ({"serial": {"port": "/dev/x", "board": "b"}}, r"use \[\[serial\]\]"),
    ({"serial": ["x"]}, r"serial\[0\]: expected a table \(\[\[serial\]\] entry\)"),
    ({"ble": [{"board": "b"}]}, r"ble\[0\]: needs address or name"),
    ({"ble": [{"board": "b", "name": "n", "reconnect_initial_ms": 9,
               "reconnect_max_ms": 5}]}, r"ble\[0\]: reconnect_initial_ms \(9\) > "),
    ({"serial": [{"port": "/dev/x", "board": "b"}], "ble": [{"board": "b", "name": "n"}]},
     r"board 'b' is listed on more than one link"),
    # [mqtt] in the whole-file loader too
    ({"mqtt": {"hots": "x"}}, r"mqtt: unknown key 'hots'"),
])
def test_bad_values_name_the_table_and_key(doc, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(doc)


def test_the_network_key_is_never_echoed():
    secret = "ab" * 31 + "zz"
    with pytest.raises(ConfigError, match=r"node\.network_key: expected 64 hex") as e:
        parse_config({"node": {"network_key": secret}})
    assert secret not in str(e.value)
    assert parse_config({"node": {"network_key": "ab" * 32}}).node.network_key == b"\xab" * 32


def test_override_validates_like_the_file_and_names_the_flag():
    base = parse_config({"node": {"peers": ["a:1"], "reconnect_max_ms": 1000}}).node
    cfg = override(base, {"listen": "0.0.0.0:9", "router": None, "data_dir": pathlib.Path("~/x"),
                          "network_key": "01" * 32})
    assert cfg is not base and base.listen == ("127.0.0.1", 7400)  # the original is unchanged
    assert cfg.listen == ("0.0.0.0", 9) and cfg.router == "meshlink"  # None: flag not given
    assert cfg.peers == (("a", 1),) and cfg.data_dir == pathlib.Path("~/x").expanduser()
    for values, message in (({"listen": "x"}, r"--listen: expected HOST:PORT"),
                            ({"network_key": "00"}, r"--network-key: expected 64 hex"),
                            ({"router": "nope"}, r"--router must be one of"),
                            ({"nope": 1}, r"--nope: unknown setting"),
                            ({"reconnect_min_ms": 5000}, r"node\.reconnect_max_ms must be >=")):
        with pytest.raises(ConfigError, match=message):
            override(base, values)
    gw = override(GatewayConfig(), {"board_udp": "off", "board_tcp": "127.0.0.1:0",
                                    "beacon_port": 7500, "retry_ms": 100})
    assert gw.board_udp is None and gw.board_tcp == ("127.0.0.1", 0)
    assert gw.beacon_port == 7500 and gw.retry_ms == 100
    with pytest.raises(ConfigError, match=r"--beacon-port must be in 0\.\.65535"):
        override(gw, {"beacon_port": 99999})
    with pytest.raises(ConfigError, match=r"--serial: unknown setting"):
        override(gw, {"serial": ()})  # a table of its own, not a key


def test_load_config_reads_every_table_once(tmp_path):
    path = tmp_path / "gw.toml"
    path.write_text('[node]\nlisten = "0.0.0.0:7401"\npeers = ["n1:7400"]\n'
                    '[gateway]\nboard_tcp = "off"\n[boards]\nrate_burst = 7\n'
                    '[[serial]]\nport = "/dev/ttyUSB0"\nboard = "kitchen"\n'
                    '[[ble]]\nname = "garage"\nboard = "garage"\nscan_timeout_s = 3\n'
                    '[mqtt]\nhost = "broker.lan"\n')
    cfg = load_config(path)
    assert cfg.node.listen == ("0.0.0.0", 7401) and cfg.node.peers == (("n1", 7400),)
    assert cfg.gateway.board_tcp is None and cfg.gateway.rate_burst == 7
    assert cfg.gateway.serial == (SerialLinkConfig(port="/dev/ttyUSB0", board="kitchen"),)
    assert cfg.gateway.ble[0].scan_timeout_s == 3.0 and cfg.gateway.mqtt.host == "broker.lan"
    assert load_config(None) == Config()
    assert loads_config(path.read_text()) == cfg
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "missing.toml")
    path.write_text("[node\n")
    with pytest.raises(ConfigError, match=r"gw\.toml: bad TOML"):
        load_config(path)


def test_the_packaged_example_is_valid():
    cfg = load_config(ROOT / "packaging" / "gateway.toml.example")
    assert cfg.node.discovery and cfg.gateway.beacon


def test_parse_table_checks_one_table():
    assert parse_table(SerialLinkConfig, {"port": "/dev/x", "board": "b"}).baudrate == 115200
    with pytest.raises(ConfigError, match=r"serial\.baudrate: wrong type float"):
        parse_table(SerialLinkConfig, {"port": "/dev/x", "board": "b", "baudrate": 9600.0})
    with pytest.raises(ConfigError, match=r"mqtt\.host: expected a non-empty string"):
        parse_table(MqttConfig, {"host": ""})
