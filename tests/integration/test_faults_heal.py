"""Healing after a relay restart (issue 15), real processes in a line
N1 -> R <- N2: both neighbours dial R with a reconnect backoff far longer
than the test's deadlines, so only R dialling its known neighbours at once
(peers.json) can re-link them; and a neighbour that R dials while it waits
out a long backoff starts its backoff afresh. Asserts links and delivered
messages through R, never speed (the healing time is in `make bench`,
bench/faults.py)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from helpers import free_port, poll_until
from helpers.procs import Node


def test_a_restarted_relay_dials_its_known_neighbours_at_once(tmp_path, procs):
    slow = tmp_path / "slow.toml"
    slow.write_text("[node]\nreconnect_min_ms = 600000\nreconnect_max_ms = 600000\n")
    r_addr = f"127.0.0.1:{free_port()}"
    r = Node(tmp_path / "r", listen=r_addr)
    procs.append(r)
    r.start()
    n1 = Node(tmp_path / "n1", peers=(r_addr,), extra=("--config", str(slow)))
    n2 = Node(tmp_path / "n2", peers=(r_addr,), extra=("--config", str(slow)))
    for n in (n1, n2):
        procs.append(n)
        n.start()
    r.wait_peers(2)
    known = json.loads((tmp_path / "r" / "peers.json").read_text())
    assert set(known) == {n1.node_id, n2.node_id}
    r.kill()
    for n in (n1, n2):  # both saw the link go (their dialers now back off)
        poll_until(lambda n=n: not n.status()["peers"] or None, what="link to r down")
    r2 = Node(tmp_path / "r", listen=r_addr)
    procs.append(r2)
    r2.start()
    # n1 and n2 will not redial for 5 minutes: r2 dialled them
    n1.wait_peers(1)
    n2.wait_peers(1)
    out = subprocess.run([sys.executable, "-m", "meshlink_gw.cli", "send", "--data-dir",
                          str(n1.data_dir), "--json", "--to", n2.node_id, "through r"],
                         capture_output=True, text=True, timeout=120)
    assert json.loads(out.stdout)["delivered"], out
    assert [m["text"] for m in n2.received() if m["from"] == n1.node_id] == ["through r"]


def _send(frm: Node, to: Node, text: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "meshlink_gw.cli", "send", "--data-dir",
                          str(frm.data_dir), "--json", "--to", to.node_id, text],
                         capture_output=True, text=True, timeout=120)
    return json.loads(out.stdout) if out.stdout.strip() else {"delivered": False, "out": out}


def test_a_line_heals_after_a_long_relay_outage_and_dialled_neighbours_reset_backoff(
        tmp_path, procs):
    # a and c dial r with a backoff that grows to minutes; r knows them (peers.json)
    grows = tmp_path / "grows.toml"
    grows.write_text("[node]\nreconnect_min_ms = 1000\nreconnect_max_ms = 600000\n")
    r_addr = f"127.0.0.1:{free_port()}"
    r = Node(tmp_path / "r", listen=r_addr)
    procs.append(r)
    r.start()
    a = Node(tmp_path / "a", peers=(r_addr,), extra=("--config", str(grows)))
    c = Node(tmp_path / "c", peers=(r_addr,), extra=("--config", str(grows)))
    for n in (a, c):
        procs.append(n)
        n.start()
    r.wait_peers(2)
    assert _send(a, c, "before")["delivered"]
    r.kill()
    # the outage is the scenario, not a wait for a condition: long enough for
    # a's and c's redial delays to grow to 8-32 s
    time.sleep(25)
    r2 = Node(tmp_path / "r", listen=r_addr)
    procs.append(r2)
    r2.start()
    a.wait_peers(1)  # r2 dialled both from peers.json
    c.wait_peers(1)
    res = _send(a, c, "healed")
    assert res["delivered"], res
    for n in (a, c):  # each was waiting out a grown delay when r2 dialled it
        poll_until(lambda n=n: "redial backoff reset" in n.log_path.read_text() or None,
                   what="backoff reset logged")
    # r2 dialled a and c while their dialers waited out long delays: that
    # reset their backoff. Now r goes again, and comes back knowing nobody:
    # only a's and c's own redials (from the shortest delay) can re-link them
    r2.kill()
    for n in (a, c):
        poll_until(lambda n=n: not n.status()["peers"] or None, what="link to r down")
    (tmp_path / "r" / "peers.json").rename(tmp_path / "r-peers.json")
    r3 = Node(tmp_path / "r", listen=r_addr)
    procs.append(r3)
    r3.start()
    r3.wait_peers(2)  # the next delay before the reset would have been 32-64 s
    res = _send(a, c, "healed again")
    assert res["delivered"], res
    assert [m["text"] for m in c.received() if m["from"] == a.node_id] == [
        "before", "healed", "healed again"]
