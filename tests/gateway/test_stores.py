"""Broken stores (issue 15): a corrupt, truncated, garbage or read-only
store stops a command with one line and exit code 2, never a traceback or a
silent empty inbox; `recv` reads a copy on a read-only disk; `recv` prints
the newest messages, filters them, and says when it cut."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from meshlink.errors import ConfigError
from meshlink_gw.boards.registry import BoardRegistry
from meshlink_gw.node.store import Inbox

NODE_A = "0a1b2c3d-0000-4000-8000-000000000001"
NODE_B = "0a1b2c3d-0000-4000-8000-000000000002"


def _mid(i: int) -> str:
    return f"{i:08x}-0000-4000-8000-000000000000"


def _fill(ddir: Path, n: int, src=lambda i: NODE_A) -> None:
    inbox = Inbox(ddir / "meshlink.db")
    for i in range(n):
        inbox.add(src(i), None, _mid(i), _mid(i), f"msg {i}".encode(), 1)
    inbox.close()


def _recv(ddir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "meshlink_gw.cli", "recv", "--data-dir",
                           str(ddir), "--json", *args], capture_output=True, text=True,
                          timeout=120)


def _texts(out: str) -> list[str]:
    return [json.loads(line)["text"] for line in out.splitlines()]


def _corrupt_a_page(db: Path) -> None:
    """Overwrite the inbox table's pages (not the header): quick_check fails."""
    data = bytearray(db.read_bytes())
    page = int.from_bytes(data[16:18], "big") or 65536
    for off in range(page * 2, len(data), page):
        data[off:off + 64] = b"\xa5" * 64
    db.write_bytes(bytes(data))


def _one_line_exit_2(res: subprocess.CompletedProcess, db: Path) -> None:
    assert res.returncode == 2, res
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    assert str(db) in lines[0]


@pytest.mark.parametrize("damage", ["corrupt_page", "truncated", "garbage_header"])
def test_a_broken_inbox_stops_recv_and_the_node_with_one_line(tmp_path, damage):
    _fill(tmp_path, 300)
    db = tmp_path / "meshlink.db"
    Inbox(db).close()  # checkpointed: the WAL is folded into the file
    for suffix in ("-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    if damage == "corrupt_page":
        _corrupt_a_page(db)
    elif damage == "truncated":
        with open(db, "r+b") as f:
            f.truncate(db.stat().st_size // 2 + 100)
    else:
        db.write_bytes(b"this is not SQLite" * 100)
    res = _recv(tmp_path)
    _one_line_exit_2(res, db)
    assert "move it aside" in res.stderr and res.stdout == ""
    node = subprocess.run([sys.executable, "-m", "meshlink_gw.cli", "node", "--data-dir",
                           str(tmp_path), "--listen", "127.0.0.1:0"], capture_output=True,
                          text=True, timeout=120)
    _one_line_exit_2(node, db)
    with pytest.raises(ConfigError):
        Inbox(db)


def test_a_corrupt_board_registry_is_a_config_error(tmp_path):
    reg = BoardRegistry(tmp_path)
    reg.close()
    db = tmp_path / "boards.db"
    for suffix in ("-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    db.write_bytes(db.read_bytes()[:100] + b"\x00" * 50)
    with pytest.raises(ConfigError, match="boards.db"):
        BoardRegistry(tmp_path)
    res = subprocess.run([sys.executable, "-m", "meshlink_gw.cli", "board", "list",
                          "--data-dir", str(tmp_path)], capture_output=True, text=True,
                         timeout=120)
    _one_line_exit_2(res, db)


def test_recv_prints_the_newest_filters_and_says_when_it_cut(tmp_path):
    _fill(tmp_path, 250, src=lambda i: NODE_B if i % 5 == 0 else NODE_A)
    res = _recv(tmp_path)
    assert res.returncode == 0
    assert _texts(res.stdout) == [f"msg {i}" for i in range(150, 250)]  # newest, oldest first
    assert "newest 100 of 250" in res.stderr
    res = _recv(tmp_path, "--limit", "1000", "--from", NODE_B)
    assert _texts(res.stdout) == [f"msg {i}" for i in range(0, 250, 5)] and res.stderr == ""
    res = _recv(tmp_path, "--limit", "3", "--since", "1d")
    assert _texts(res.stdout) == ["msg 247", "msg 248", "msg 249"]
    assert _texts(_recv(tmp_path, "--since", "4102444800000").stdout) == []  # year 2100
    bad = _recv(tmp_path, "--since", "yesterday-ish")
    assert bad.returncode == 2 and "--since" in bad.stderr and "Traceback" not in bad.stderr


def _mount_ro_copy(src: Path, mnt: Path) -> bool:
    """A read-only tmpfs holding a copy of src (root only)."""
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mnt)],
                      capture_output=True).returncode != 0:
        return False
    for f in src.iterdir():
        shutil.copy(f, mnt / f.name)
    return subprocess.run(["mount", "-o", "remount,ro", str(mnt)],
                          capture_output=True).returncode == 0


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("mount"),
                    reason="a read-only mount needs root (chmod does not stop root)")
def test_read_only_data_dir_recv_reads_it_and_the_node_refuses_it(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    _fill(src, 20)
    mnt = tmp_path / "ro"
    try:
        if not _mount_ro_copy(src, mnt):
            pytest.skip("tmpfs mount not permitted here")
        res = _recv(mnt, "--limit", "5")
        assert res.returncode == 0, res.stderr
        assert _texts(res.stdout) == [f"msg {i}" for i in range(15, 20)]
        node = subprocess.run([sys.executable, "-m", "meshlink_gw.cli", "node", "--data-dir",
                               str(mnt), "--listen", "127.0.0.1:0"], capture_output=True,
                              text=True, timeout=120)
        assert node.returncode == 2 and "Traceback" not in node.stderr, node.stderr
        assert len(node.stderr.strip().splitlines()) == 1
        assert str(mnt) in node.stderr
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)
