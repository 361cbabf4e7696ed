"""[mqtt] config validation, outbox bookkeeping and the rate limiter (no broker)."""

from __future__ import annotations

import pytest
from meshlink.errors import ConfigError
from meshlink_gw.bridges.mqtt_outbox import Outbox, RateLimiter
from meshlink_gw.bridges.mqtt_topics import Topics, safe_level
from meshlink_gw.config import MqttConfig, loads_config, parse_table


def load_mqtt_config(toml_text: str) -> MqttConfig | None:
    return loads_config(toml_text).gateway.mqtt


def test_mqtt_config_defaults_and_full_table(tmp_path):
    assert load_mqtt_config("[node]\n") is None
    assert load_mqtt_config("[mqtt]\nenabled = false\n") is None
    cfg = load_mqtt_config("[mqtt]\n")
    assert cfg == MqttConfig() and cfg.effective_port == 1883 and cfg.qos == 1
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    pw = tmp_path / "pw"
    pw.write_text("hunter2\n")
    cfg = load_mqtt_config(f"""
[mqtt]
host = "broker.lan"
tls = true
ca_file = "{ca}"
username = "gw"
password_file = "{pw}"
allow_targets = ["kitchen", "broadcast"]
topic_prefix = "home/mesh/"
ha_discovery = true
source_rate_per_s = 1
""")
    assert cfg.effective_port == 8883 and cfg.password == "hunter2"
    assert cfg.allow_targets == ("kitchen", "broadcast") and cfg.source_rate_per_s == 1


@pytest.mark.parametrize("table, message", [
    ({"hots": "x"}, "unknown key 'hots'"),
    ({"port": "1883"}, "port: wrong type"),
    ({"port": 70000}, "port must be"),
    ({"qos": 2}, "qos must be 0 or 1"),
    ({"tls": 1}, "tls: wrong type"),
    ({"outbox_max": 0}, "outbox_max"),
    ({"topic_prefix": "meshlink"}, "topic_prefix must end with '/'"),
    ({"topic_prefix": "mesh/#/"}, "wildcard"),
    ({"allow_targets": "kitchen"}, "allow_targets: wrong type"),
    ({"password": "x"}, "needs a username"),
    ({"ca_file": "/nonexistent/ca.pem", "tls": True}, "no such file"),
    ({"tls_insecure": True}, "need tls = true"),
    ({"reconnect_initial_ms": 5000, "reconnect_max_ms": 100}, "reconnect_initial_ms"),
    ({"ha_discovery_prefix": "a/b"}, "one topic level"),
])
def test_mqtt_config_errors_name_the_key(table, message):
    with pytest.raises(ConfigError, match=message):
        parse_table(MqttConfig, table)


def test_mqtt_config_bad_toml_is_config_error():
    with pytest.raises(ConfigError, match="bad TOML"):
        load_mqtt_config("[mqtt\n")


def test_mqtt_outbox_drops_oldest_and_requeues_in_order():
    box = Outbox(3)
    assert [box.append(f"t/{i}", b"%d" % i, 1) for i in range(5)] == [0, 0, 0, 1, 1]
    assert len(box) == 3
    a = box.next_unsent()
    b = box.next_unsent()
    assert (a.topic, b.topic) == ("t/2", "t/3")
    box.mark_inflight(a, 1)
    box.mark_inflight(b, 2)
    assert box.ack(2).topic == "t/3" and box.ack(2) is None
    assert box.append("t/5", b"5", 1) == 0
    assert box.append("t/6", b"6", 1) == 1  # drops t/2, which was in flight
    assert box.ack(1) is None  # a late PUBACK for a dropped entry is harmless
    c = box.next_unsent()
    box.mark_inflight(c, 3)
    assert box.requeue_inflight() == 1
    assert [box.next_unsent().topic for _ in range(3)] == ["t/4", "t/5", "t/6"]
    assert box.next_unsent() is None


def test_mqtt_outbox_send_queue_stays_bounded_while_offline():
    box = Outbox(10)
    for i in range(10_000):
        box.append("t", b"%d" % i, 1)
    assert len(box) == 10 and len(box._unsent) == 10


def test_mqtt_rate_limiter_per_source_and_global():
    now = 1000.0
    rl = RateLimiter(source_rate_per_s=1.0, source_burst=2, global_rate_per_s=10.0,
                     global_burst=3, max_sources=8, now_s=now)
    assert [rl.allow("a", now) for _ in range(3)] == [True, True, False]
    assert rl.allow("b", now) is True
    assert rl.allow("c", now) is False  # global burst spent
    assert rl.allow("a", now + 1.0) is True  # refilled one token each
    assert rl.allow("a", now + 1.0) is False


def test_mqtt_rate_limiter_forgets_least_recent_source():
    rl = RateLimiter(1.0, 1, 100.0, 100, max_sources=2, now_s=0.0)
    assert rl.allow("a", 0.0) and not rl.allow("a", 0.0)
    assert rl.allow("b", 0.0) and rl.allow("c", 0.0)  # "a" is forgotten here
    assert len(rl._sources) == 2
    assert rl.allow("a", 0.0)  # back with a fresh burst; the global bucket still counts


def test_mqtt_topics_and_command_parsing():
    t = Topics("meshlink/", "gw-1")
    assert t.sensor("n1", "temp C") == "meshlink/n1/sensor/temp_C"
    assert t.parse_command("meshlink/gw-1/cmd/kitchen") == ("kitchen", "anonymous")
    assert t.parse_command("meshlink/gw-1/cmd/kitchen/ha") == ("kitchen", "ha")
    assert t.parse_command("meshlink/gw-1/cmd/a/b/c") is None
    assert t.parse_command("meshlink/gw-2/cmd/kitchen") is None
    assert t.parse_command("meshlink/gw-1/cmd//x") is None
    assert safe_level("a/b+#") == "a_b__"
