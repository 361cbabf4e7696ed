"""`meshlink board add/list/revoke/flash/run` without a gateway: the registry,
the deploy bundle, flashing through a recording stand-in for mpremote, and
the unix-port (and CPython shim) runs of the very same bundle."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from helpers import DEADLINE_S, cli, poll_until
from meshlink.errors import ConfigError
from meshlink_gw.boards import bundle as board_bundle
from meshlink_gw.boards.registry import BoardRegistry

from examples.node_proc import meshlink_cmd


def add(data_dir, name, *extra):
    out = cli("board", "add", name, "--board", "unix", "--data-dir", str(data_dir), "--json",
              "--gateway", "127.0.0.1:9", *extra)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def tree_digest(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def run_until(argv, cwd, env, pattern):
    """Start a board process; its output once a line contains pattern (or once
    it exited, or DEADLINE_S passed: the caller's assert shows the output)."""
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []

    def read() -> None:
        for line in proc.stdout:
            lines.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        poll_until(lambda: any(pattern in line for line in lines) or not reader.is_alive(),
                   what=f"a line with {pattern!r}")
    except AssertionError:
        pass
    finally:
        proc.kill()
        proc.wait(DEADLINE_S)
        reader.join(DEADLINE_S)
    return "".join(lines)


def test_add_builds_a_valid_private_bundle(tmp_path):
    info = add(tmp_path, "kitchen", "--route", "temp=broadcast", "--rule",
               '{"from":"*","sensor":"temp","op":">","value":30,"action":"led","arg":1}',
               "--set", "ping_interval_ms=2000", "--wifi-ssid", "home", "--wifi-password", "pw")
    reg = BoardRegistry(tmp_path)
    rec = reg.get("kitchen")
    reg.close()
    assert info["node_id"] == rec.node_id and info["board_id"] == rec.board_id.hex()
    bundle = Path(info["bundle"])
    cfg = json.loads((bundle / "config.json").read_text())
    assert cfg["psk"] == rec.psk.hex() and cfg["board_id"] == rec.board_id.hex()
    assert cfg["routes"] == [{"sensor": "temp", "to": "broadcast"}]
    assert cfg["wifi"] == {"ssid": "home", "password": "pw"} and cfg["ping_interval_ms"] == 2000
    assert stat.S_IMODE((bundle / "config.json").stat().st_mode) == 0o600
    assert stat.S_IMODE(bundle.parent.stat().st_mode) == 0o700
    files = board_bundle.bundle_files(bundle)
    mpy = board_bundle.wants_mpy("unix")
    want = sorted(dst[:-3] + ".mpy" if compile_it and mpy else dst
                  for _src, dst, compile_it in board_bundle.source_files("unix"))
    assert files == sorted(want + ["config.json"])
    # the PSK is never printed
    assert rec.psk.hex() not in json.dumps(info)


def test_add_refuses_bad_input_and_leaves_nothing_behind(tmp_path):
    add(tmp_path, "one")
    dup = cli("board", "add", "one", "--board", "unix", "--data-dir", str(tmp_path))
    assert dup.returncode == 2 and "already exists" in dup.stderr
    bad = cli("board", "add", "two", "--board", "unix", "--data-dir", str(tmp_path), "--rule",
              '{"from":"*","sensor":"temp","op":"~","value":1,"action":"relay"}')
    assert bad.returncode == 2 and "op" in bad.stderr
    bad = cli("board", "add", "three", "--board", "unix", "--data-dir", str(tmp_path),
              "--route", "nosuchsensor=gateway")
    assert bad.returncode == 2 and "nosuchsensor" in bad.stderr
    listed = json.loads(cli("board", "list", "--json", "--data-dir", str(tmp_path)).stdout)
    assert [r["name"] for r in listed] == ["one"]
    assert not (tmp_path / "boards" / "two").exists()


def test_list_and_revoke_without_a_gateway(tmp_path):
    a = add(tmp_path, "a")
    add(tmp_path, "b", "--transport", "tcp")
    out = cli("board", "list", "--data-dir", str(tmp_path))
    assert out.returncode == 0 and a["node_id"] in out.stdout and "never" in out.stdout
    assert "no gateway running" in out.stdout
    out = cli("board", "revoke", "a", "--data-dir", str(tmp_path))
    assert out.returncode == 0 and "revoked in the registry" in out.stdout
    rows = {r["name"]: r for r in json.loads(
        cli("board", "list", "--json", "--data-dir", str(tmp_path)).stdout)}
    assert rows["a"]["revoked"] and not rows["b"]["revoked"] and rows["b"]["transport"] == "tcp"
    assert cli("board", "revoke", "zzz", "--data-dir", str(tmp_path)).returncode == 2


RECORDER = """\
#!{python}
# A stand-in for mpremote: records its argv, cwd and what it would copy.
import hashlib, json, os, sys
files = {{}}
args = sys.argv[1:]
if "cp" in args:
    for src in args[args.index("cp") + 1:-1]:
        if src == "-r":
            continue
        if os.path.isdir(src):
            for d, _, names in os.walk(src):
                for n in names:
                    p = os.path.join(d, n)
                    files[p] = hashlib.sha256(open(p, "rb").read()).hexdigest()
        else:
            files[src] = hashlib.sha256(open(src, "rb").read()).hexdigest()
with open({log!r}, "a") as f:
    f.write(json.dumps({{"argv": args, "cwd": os.getcwd(), "files": files}}) + "\\n")
sys.exit(int(os.environ.get("FAKE_MPREMOTE_FAIL_ON_RESET", "0")) if "reset" in args else 0)
"""


def test_flash_copies_the_bundle_that_the_unix_port_runs(tmp_path):
    info = add(tmp_path / "data", "garage")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "mpremote.jsonl"
    tool = bindir / "mpremote"
    tool.write_text(RECORDER.format(python=sys.executable, log=str(log)))
    tool.chmod(0o755)
    env = dict(os.environ, PATH=f"{bindir}:{os.environ['PATH']}")
    out = cli("board", "flash", "garage", "--port", "/dev/ttyFAKE0", "--data-dir",
              str(tmp_path / "data"), env=env)
    assert out.returncode == 0, out.stderr
    assert "flashing" in out.stdout and "reset" in out.stdout and "4/4" in out.stdout
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    argvs = [c["argv"] for c in calls]
    assert all(a[:2] == ["connect", "/dev/ttyFAKE0"] for a in argvs)
    assert [a[2:] for a in argvs] == [
        ["fs", "cp", "config.json", ":config.json"], ["fs", "cp", "-r", "app", ":"],
        ["fs", "cp", "-r", "meshlink", ":"], ["fs", "cp", "main.py", ":main.py"], ["reset"]]
    bundle = Path(info["bundle"])
    assert {c["cwd"] for c in calls} == {str(bundle)}
    copied = {}
    for c in calls:
        copied.update({os.path.normpath(k): v for k, v in c["files"].items()})
    assert copied == tree_digest(bundle)
    # `meshlink board run` executes exactly these files on the unix port (112K heap)
    if board_bundle.find_micropython() is None:
        pytest.skip("no MicroPython unix port")
    argv, cwd, run_env = board_bundle.run_command(tmp_path / "data", "garage")
    assert argv[1:] == ["-X", "heapsize=112K", "main.py"]
    text = run_until(meshlink_cmd() + ["board", "run", "garage", "--data-dir",
                                       str(tmp_path / "data")], None, None, "BOOT")
    assert "BOOT name=garage board=unix platform=unix" in text, text
    sim = tree_digest(cwd)
    assert {k: v for k, v in sim.items() if k in copied} == copied
    assert set(sim) - set(copied) <= {"boot.cnt", "boot.cnt.tmp"}


def test_flash_reports_an_mpremote_failure(tmp_path):
    add(tmp_path / "data", "g")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    tool = bindir / "mpremote"
    tool.write_text(RECORDER.format(python=sys.executable, log=str(tmp_path / "l.jsonl")))
    tool.chmod(0o755)
    env = dict(os.environ, PATH=f"{bindir}:{os.environ['PATH']}", FAKE_MPREMOTE_FAIL_ON_RESET="3")
    out = cli("board", "flash", "g", "--port", "/dev/ttyX", "--data-dir", str(tmp_path / "data"),
              env=env)
    assert out.returncode == 1 and "reset failed (3)" in out.stderr
    # make setup installs mpremote into the venv ([flash]); one that is missing:
    with pytest.raises(ConfigError, match="mpremote not found: `make setup` installs it"):
        board_bundle.flash(board_bundle.bundle_dir(tmp_path / "data", "g"), "/dev/ttyX",
                           mpremote=str(tmp_path / "none" / "mpremote"))


def test_the_same_firmware_runs_on_cpython_through_the_shim(tmp_path):
    add(tmp_path, "pi")
    argv, cwd, env = board_bundle.run_command(tmp_path, "pi", cpython=True)
    assert argv[1:3] == ["-m", "meshlink_gw.mpy_shim"]
    assert (cwd / "app" / "app.py").exists() and not (cwd / "app" / "app.mpy").exists()
    text = run_until(argv, cwd, env, "LINK down")
    assert "BOOT name=pi board=unix" in text and "READING temp seq=1" in text, text


def test_board_add_ble_writes_the_ble_link_config(tmp_path):
    data = str(tmp_path / "data")
    out = cli("board", "add", "radio", "--board", "esp32-devkitc", "--transport", "ble",
              "--ble-name", "garden-ble", "--data-dir", data, "--json")
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout.strip().splitlines()[-1])
    assert info["transport"] == "ble" and info["gateway"] is None
    cfg = json.loads((Path(info["bundle"]) / "config.json").read_text())
    assert cfg["transport"] == "ble" and cfg["gateway"] is None
    assert cfg["ble"] == {"name": "garden-ble"}
    assert (Path(info["bundle"]) / "app" / "ble_link.mpy").exists()
    assert (Path(info["bundle"]) / "meshlink" / "blefrag.mpy").exists()
    out = cli("board", "add", "plain", "--board", "unix", "--transport", "ble",
              "--data-dir", data, "--json")
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout.strip().splitlines()[-1])
    cfg = json.loads((Path(info["bundle"]) / "config.json").read_text())
    assert cfg["transport"] == "ble" and "ble" not in cfg  # advertises the board name
    for bad in (("--ble-name", "x"), ("--transport", "ble", "--ble-name", "n" * 29),
                ("--transport", "ble", "--gateway", "h:1")):
        out = cli("board", "add", "bad", "--board", "unix", *bad, "--data-dir", data)
        assert out.returncode == 2, (bad, out.stderr)


def test_board_add_serial_writes_the_serial_link_config(tmp_path):
    data = str(tmp_path / "data")
    out = cli("board", "add", "wired", "--board", "unix", "--transport", "serial",
              "--serial-port", "/dev/ttyUSB0", "--serial-baudrate", "230400", "--data-dir",
              data, "--json")
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout.strip().splitlines()[-1])
    assert info["transport"] == "serial" and info["gateway"] is None
    cfg = json.loads((Path(info["bundle"]) / "config.json").read_text())
    assert cfg["transport"] == "serial" and cfg["gateway"] is None
    assert cfg["serial"] == {"port": "/dev/ttyUSB0", "baudrate": 230400}
    assert (Path(info["bundle"]) / "app" / "serial_link.mpy").exists()
    out = cli("board", "add", "esp", "--board", "esp32-devkitc", "--transport", "serial",
              "--serial-port", "1", "--data-dir", data, "--json")
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout.strip().splitlines()[-1])
    cfg = json.loads((Path(info["bundle"]) / "config.json").read_text())
    assert cfg["serial"] == {"port": 1, "baudrate": 115200}  # UART 1 on an ESP32
    for bad in (("--transport", "serial"), ("--serial-port", "/dev/x"),
                ("--transport", "serial", "--serial-port", "/dev/x", "--gateway", "h:1")):
        out = cli("board", "add", "bad", "--board", "unix", *bad, "--data-dir", data)
        assert out.returncode == 2, (bad, out.stderr)


def test_every_board_gets_the_one_file_list_without_the_router():
    # boards/files.json is the one list; no board.json repeats it, and it
    # ships no router module (the router runs on the gateway)
    root = Path(board_bundle.firmware_root())
    want = [(e["dst"], e["compile"]) for e in board_bundle.board_files(root)]
    boards = sorted(p.parent.name for p in (root / "boards").glob("*/board.json"))
    assert "unix" in boards and len(boards) >= 4
    for board in boards:
        assert "files" not in board_bundle.board_definition(board, root), board
        got = [(dst, c) for _src, dst, c in board_bundle.source_files(board, root)]
        assert got == sorted(want), board
    assert not [d for d, _c in want if d.split("/")[-1].startswith("router")]


def test_a_glob_file_list_deploys_no_router_module(tmp_path):
    # a board.json with its own "files" globs gets shared/meshlink/*.py minus
    # the router, which runs on the gateway (router.py, router_*.py)
    root = Path(board_bundle.firmware_root())
    (tmp_path / "boards" / "bare").mkdir(parents=True)
    spec = json.loads((root / "boards" / "unix" / "board.json").read_text())
    spec["files"] = ["firmware/main.py", "firmware/app/*.py", "shared/meshlink/*.py"]
    (tmp_path / "boards" / "bare" / "board.json").write_text(json.dumps(spec))
    for part in ("firmware", "shared"):
        (tmp_path / part).symlink_to(root / part)
    dsts = [dst for _src, dst, _c in board_bundle.source_files("bare", tmp_path)]
    assert "meshlink/boardlink.py" in dsts and "main.py" in dsts
    shipped = sorted(p.stem for p in (root / "shared" / "meshlink").glob("router*.py"))
    assert len(shipped) >= 8  # router, router_core, ..., router_dv
    assert not [d for d in dsts if d.split("/")[-1].startswith("router")]


def test_board_add_for_a_real_esp32_needs_wifi_and_gets_real_sensors(tmp_path):
    """A real ESP32 over UDP/TCP cannot reach its gateway without WiFi settings,
    and its default bundle reports its real chip sensor, never a simulated one."""
    data = str(tmp_path / "data")
    for board in ("esp32-devkitc", "esp32-s3", "esp32-c3"):
        out = cli("board", "add", f"no-wifi-{board}", "--board", board, "--data-dir", data)
        assert out.returncode == 2 and "Traceback" not in out.stderr
        assert out.stderr.strip() == (
            f"meshlink: error: --board {board} over udp needs --wifi-ssid SSID and "
            "--wifi-password PASSWORD: the board joins that WiFi network to reach its "
            "gateway (or --no-wifi: provision it over serial later; or --transport serial or "
            "ble)"), out.stderr
        out = cli("board", "add", f"ok-{board}", "--board", board, "--wifi-ssid", "home",
                  "--wifi-password", "secret", "--transport", "tcp", "--data-dir", data, "--json")
        assert out.returncode == 0, out.stderr
        info = json.loads(out.stdout.strip().splitlines()[-1])
        cfg = json.loads((Path(info["bundle"]) / "config.json").read_text())
        assert cfg["wifi"] == {"ssid": "home", "password": "secret"}
        assert cfg["sensors"] and all(s["type"] != "sim" for s in cfg["sensors"]), cfg["sensors"]
    out = cli("board", "add", "sim", "--board", "unix", "--data-dir", data)
    assert out.returncode == 0, out.stderr  # the unix port uses the host's network


def test_board_add_no_wifi_leaves_the_password_out_and_provision_checks_its_input(tmp_path):
    """--no-wifi: no "wifi" in the bundle, a provisioning line instead (UART 0
    by default); contradictory or bad provisioning input exits 2, typed."""
    data = str(tmp_path / "data")
    out = cli("board", "add", "roof", "--board", "esp32-devkitc", "--no-wifi", "--data-dir",
              data, "--json")
    assert out.returncode == 0, out.stderr
    cfg = json.loads((Path(json.loads(out.stdout.splitlines()[-1])["bundle"]) /
                      "config.json").read_text())
    assert "wifi" not in cfg and cfg["provision"] == {"port": 0, "baudrate": 115200}
    out = cli("board", "add", "sim", "--board", "unix", "--provision-port", "/dev/ttyX",
              "--data-dir", data, "--json")
    assert out.returncode == 0, out.stderr
    cfg = json.loads((Path(json.loads(out.stdout.splitlines()[-1])["bundle"]) /
                      "config.json").read_text())
    assert cfg["provision"]["port"] == "/dev/ttyX" and "wifi" not in cfg
    out = cli("board", "add", "both", "--board", "esp32-s3", "--no-wifi", "--wifi-ssid", "x",
              "--data-dir", data)
    assert out.returncode == 2 and "choose one" in out.stderr and "Traceback" not in out.stderr
    for args, why in ((("nobody",), "no board named 'nobody'"),
                      (("roof", "--port", str(tmp_path / "no-such-tty")), "is not present")):
        full = ["board", "provision", *args, "--wifi-ssid", "net", "--wifi-password", "pw",
                "--data-dir", data, "--timeout-s", "2"]
        if "--port" not in args:
            full += ["--port", "/dev/null"]
        out = cli(*full)
        assert out.returncode in (1, 2) and why in out.stderr and "Traceback" not in out.stderr, \
            out.stderr
