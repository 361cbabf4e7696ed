"""A full disk is a local problem (issue 15), with real node processes in a
line B - A - C, A's data directory on a small tmpfs that the test fills:
A refuses to store what is for it (no Ack, so B retries), keeps its links and
relays B -> C; when space returns, every message for A arrives once. Counts,
never speed. Needs root for the mount; skipped with the reason elsewhere."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import poll_until
from helpers.procs import Node

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("mount"),
                                reason="a small tmpfs to fill needs root (mount)")

TO_A = 6
TO_C = 6


def _mount_tmpfs(mnt: Path, size: str) -> None:
    mnt.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)],
                         capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"tmpfs mount not permitted here: {res.stderr.strip()}")


def _fill(path: Path) -> None:
    """Write path until the filesystem is full (bounded by its size)."""
    chunk = b"\0" * 65536
    with open(path, "wb", buffering=0) as f:
        for _ in range(100_000):
            try:
                f.write(chunk)
            except OSError:
                break
        for _ in range(100_000):  # the last partial blocks
            try:
                f.write(b"\0" * 512)
            except OSError:
                break


def _send(node: Node, to: str, text: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "meshlink_gw.cli", "send", "--data-dir",
                             str(node.data_dir), "--json", "--to", to, text],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _texts(node: Node, src: str) -> list[str]:
    return [m["text"] for m in node.received() if m["from"] == src]


def test_full_disk_refuses_keeps_links_relays_and_recovers(tmp_path, procs):
    conf = tmp_path / "node.toml"
    conf.write_text("[node]\nretry_interval_ms = 500\ndelivery_timeout_ms = 600000\n")
    extra = ("--config", str(conf))
    mnt = tmp_path / "small"
    _mount_tmpfs(mnt, "2m")
    procs.append(type("Unmount", (), {"close": lambda self: subprocess.run(
        ["umount", "-l", str(mnt)], capture_output=True)})())
    a = Node(mnt / "a", extra=extra, log_path=tmp_path / "a.log")
    procs.append(a)
    a.start()
    b = Node(tmp_path / "b", peers=(a.listen,), extra=extra)
    c = Node(tmp_path / "c", peers=(a.listen,), extra=extra)
    for n in (b, c):
        procs.append(n)
        n.start()
    a.wait_peers(2)
    b.wait_peers(1)
    c.wait_peers(1)
    _fill(mnt / "filler")
    senders = [_send(b, a.node_id, f"to a {i}") for i in range(TO_A)]
    senders += [_send(b, c.node_id, f"to c {i}") for i in range(TO_C)]
    procs.extend(type("Kill", (), {"close": p.kill})() for p in senders)
    # relaying goes on while A cannot store anything
    c.wait_inbox(lambda items: len([m for m in items if m["from"] == b.node_id]) >= TO_C)
    poll_until(lambda: "refused" in (tmp_path / "a.log").read_text() or None,
               what="A logs that its inbox refused messages")
    assert _texts(a, b.node_id) == []
    assert a.status()["peers"] and len(a.status()["peers"]) == 2  # links kept
    (mnt / "filler").unlink()  # space returns: A recovers by itself
    a.wait_inbox(lambda items: len([m for m in items if m["from"] == b.node_id]) >= TO_A)
    results = []
    for p in senders:
        out, _err = p.communicate(timeout=120)
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert all(r["delivered"] for r in results)
    got_a = _texts(a, b.node_id)
    assert sorted(got_a) == sorted(f"to a {i}" for i in range(TO_A))  # each once
    got_c = _texts(c, b.node_id)
    assert sorted(got_c) == sorted(f"to c {i}" for i in range(TO_C))
    log = (tmp_path / "a.log").read_text()
    assert "Traceback" not in log
    stats = a.status()["stats"]
    assert stats["store_refused"] >= 1 and stats["handshakes_failed"] == 0
    # one line per interval, not one per refused message
    assert log.count("refused") == 1 or log.count("refused") < stats["store_refused"]
