"""Healing after a relay restart (issue 15), real processes in a line
N1 -> R <- N2: both neighbours dial R with a reconnect backoff far longer
than the test's deadlines, so only R dialling its known neighbours at once
(peers.json) can re-link them. Asserts links and a delivered message through
R, never speed."""

from __future__ import annotations

import json
import subprocess
import sys

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
