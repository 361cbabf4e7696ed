"""The shared-medium model of `meshlink sim` (issue 16 point 6): airtime from
the frame size, carrier sense, backoff, and collisions at a receiver that
hears another sender (a hidden terminal)."""

import pytest
from meshlink.errors import ConfigError
from meshlink_gw.sim import run_one
from meshlink_gw.sim.engine import Sim
from meshlink_gw.sim.files import check_graph
from meshlink_gw.sim.scenarios import preset, scenario

LINE = {"nodes": ["a", "b", "c"], "edges": [["a", "b"], ["b", "c"]]}


def _line_sim(medium):
    p = scenario("line", topology="file", nodes=3, graph=check_graph(LINE), medium=medium,
                 loss=0.0,
                 rate=0.0, warmup_s=1.0, duration_s=1.0, seeds=1)
    return Sim(p, "flood", 1)


def test_a_hidden_sender_collides_at_the_receiver_and_the_retry_gets_through():
    sim = _line_sim("lora")
    # a and c cannot hear each other; both send to b at once
    end_a, tries_a, ok_a = sim._medium_send(0, 1, 0.0, 200, 4, 0.0)
    end_c, tries_c, ok_c = sim._medium_send(2, 1, 0.0, 200, 4, 0.0)
    assert ok_a and tries_a == 1
    assert sim.collisions >= 1 and tries_c >= 2 and ok_c  # lost once, then after a backoff
    # a 200-byte frame on a 5.47 kbit/s channel: about 0.3 s of airtime
    assert 290 < end_a < 400


def test_a_sender_defers_while_it_hears_a_neighbour():
    sim = _line_sim("lora")
    end_b, _t, _ok = sim._medium_send(1, 0, 0.0, 200, 1, 0.0)  # b's frame reaches a and c
    end_c, tries, ok = sim._medium_send(2, 1, 100.0, 200, 1, 0.0)  # c hears b: waits
    assert sim.defer_ms > 0 and end_c > end_b + 290


def test_the_medium_knob_is_checked():
    with pytest.raises(ConfigError, match="--medium"):
        scenario("x", medium="cable")


def test_on_wifi_meshlink_pays_its_control_in_collisions_and_still_delivers():
    runs = {}
    for strategy in ("meshlink", "oracle"):
        p = scenario("wifi", topology="rgg", nodes=60, degree=8.0, medium="wifi", rate=2.0,
                     warmup_s=15.0, duration_s=20.0, seeds=1)
        runs[strategy] = run_one(p, strategy, 1)["summary"]
    m, o = runs["meshlink"], runs["oracle"]
    assert m["medium_collision_share"] > 0 and o["medium_collision_share"] is not None
    assert m["directed_delivery_proof"] is None or m["directed_delivery_proof"] >= 0.9
    assert m["broadcast_coverage"] >= 0.9


def test_the_medium_preset_covers_both_channels_and_degrees():
    names = [s["name"] for s in preset("medium")]
    assert names == ["medium-wifi-d12", "medium-wifi-d6", "medium-lora-d12", "medium-lora-d6"]
