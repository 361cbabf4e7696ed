"""Local surfaces of a real `meshlink node` (issue 14): the data directory
becomes 0700 and every file in it 0600 whatever existed before; a second
process on a directory in use exits with "data directory in use by PID N"
and the first keeps serving; the network key is read from a file, so it is
not in the process list."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from helpers import cli


def _modes(root: Path) -> dict[str, int]:
    out = {".": stat.S_IMODE(root.stat().st_mode)}
    for path in root.rglob("*"):
        if not path.is_symlink():
            out[str(path.relative_to(root))] = stat.S_IMODE(path.stat().st_mode)
    return out


def test_data_dir_owner_only_and_locked(tmp_path, spawn):
    data = tmp_path / "a"
    data.mkdir(mode=0o755)
    os.chmod(data, 0o755)
    for name in ("meshlink.db", "notes.txt"):  # left by an older version, or by hand
        (data / name).write_bytes(b"")
        os.chmod(data / name, 0o644)
    a = spawn("a")
    b = spawn("b", peers=(a.listen,))
    a.wait_peers(1)
    modes = _modes(data)
    assert modes["."] == 0o700, modes
    loose = {k: oct(m) for k, m in modes.items()
             if k != "." and m != (0o700 if (data / k).is_dir() else 0o600)}
    assert not loose, loose
    # a second node on the same directory is refused; the first keeps serving
    out = cli("node", "--data-dir", str(data), "--listen", "127.0.0.1:0")
    assert out.returncode == 1, out.stderr
    assert f"data directory {data} in use by PID {a.proc.pid}" in out.stderr, out.stderr
    out = cli("gateway", "--data-dir", str(data), "--listen", "127.0.0.1:0")
    assert out.returncode == 1 and f"in use by PID {a.proc.pid}" in out.stderr, out.stderr
    sent = b.cli("send", "--to", a.node_id, "still here", "--json")
    assert sent.returncode == 0, sent.stderr
    assert a.status()["node_id"] == a.node_id


def test_network_key_from_a_file_not_the_process_list(tmp_path, spawn):
    key_hex = os.urandom(32).hex()
    key = tmp_path / "network.key"
    key.write_text(key_hex + "\n")
    os.chmod(key, 0o600)
    a = spawn("a", extra=("--network-key-file", str(key)))
    b = spawn("b", peers=(a.listen,), extra=("--network-key-file", str(key)))
    b.wait_peers(1)
    for n in (a, b):
        cmdline = Path(f"/proc/{n.proc.pid}/cmdline").read_bytes()
        assert key_hex.encode() not in cmdline
    # a key file others can read is refused at start, naming the fix
    os.chmod(key, 0o644)
    out = cli("node", "--data-dir", str(tmp_path / "c"), "--listen", "127.0.0.1:0",
              "--network-key-file", str(key))
    assert out.returncode == 2 and "chmod 600" in out.stderr, out.stderr
