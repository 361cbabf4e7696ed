"""The sleeping board's wake state on the unix port (the real bundle at 112K,
a fake gateway): a state that is not JSON, or whose session is malformed,
means a cold start with one WARN line (never a traceback, never a reused
session); with no gateway the board sleeps anyway after awake_max_ms and
keeps its readings, and wakes with them."""

from __future__ import annotations

import json

from firmware_harness import board_config

SLEEP = {"sleep_ms": 200, "awake_max_ms": 1500}


def test_unreadable_or_malformed_state_is_a_cold_start(boards, gateway, tmp_path):
    gw = gateway()
    for name, text, warn, wake in (
            ("garbage", "{not json", "WARN wake state unreadable: cold start",
             r"^WAKE cold seq=0 outbox=0 session=none$"),
            ("bad-session", json.dumps({"v": 1, "seq": 4, "outbox": [], "ids": [],
                                        "s": [1, "zz", 0, -1, 0]}),
             "WARN wake state malformed: session not resumed",
             r"^WAKE warm seq=4 outbox=0 session=none$")):  # the rest still counts
        cfg = board_config(gateway=f"127.0.0.1:{gw.udp_port}", **SLEEP)
        (tmp_path / name).mkdir()
        (tmp_path / name / "sleep.state").write_text(text)
        board = boards(cfg, name=name)
        board.wait_for(warn)
        board.wait_for(wake)
        line = board.wait_for(r"^LINK up udp ")
        assert "resumed" not in line.string  # a handshake, not a resumed session
        board.wait_for(r"^SLEEP ms=200 .* granted=0 ")  # the fake gateway grants nothing
        assert board.wait_exit() == 4  # the unix port's deep sleep
        assert "Traceback" not in board.output
        # the state of this sleep was kept, the one read at wake was erased
        kept = json.loads((board.workdir / "sleep.state").read_text())
        assert kept["v"] == 1 and kept["seq"] >= 1 and kept["s"] is not None


def test_no_gateway_sleeps_after_awake_max_ms_keeping_the_readings(boards):
    cfg = board_config(gateway="127.0.0.1:9", **SLEEP)  # nobody there
    board = boards(cfg)
    board.wait_for(r"^WAKE cold seq=0 outbox=0 session=none$")
    board.wait_for(r"^SLEEP ms=200 radio_on_ms=\d+ granted=0 session=none outbox=[1-9]")
    assert board.wait_exit() == 4
    kept = json.loads((board.workdir / "sleep.state").read_text())
    seqs = [r["seq"] for r in kept["outbox"]]  # the newest outbox_max readings
    assert kept["s"] is None and seqs == list(range(kept["seq"] - len(seqs) + 1,
                                                    kept["seq"] + 1))
    again = boards(cfg, name="board")  # the same flash: it wakes with them
    again.wait_for(r"^WAKE warm seq=%d outbox=%d session=none$" % (kept["seq"],
                                                                      len(kept["outbox"])))


def test_a_resumed_session_the_gateway_lost_falls_back_to_a_handshake(boards, gateway):
    """The gateway restarted while the board slept: the resumed session's
    records get STALE, and the board runs a new handshake (the kept state is
    gone by then: nothing is reused)."""
    gw = gateway()
    cfg = board_config(gateway=f"127.0.0.1:{gw.udp_port}", **SLEEP)
    first = boards(cfg)
    first.wait_for(r"^SLEEP ms=200 .* session=kept ")
    assert first.wait_exit() == 4
    gw.forget_sessions()  # as a gateway restarted during the sleep
    again = boards(cfg)
    again.wait_for(r"^WAKE warm .* session=kept$")
    again.wait_for(r"^LINK up udp .* session=1 resumed=1$")
    again.wait_for(r"^LINK down \(TransportError: the gateway has no session")
    line = again.wait_for(r"^LINK up udp .* session=2")
    assert "resumed" not in line.string and gw.stale_sent >= 3
