"""The `meshlink` command line: where errors end (cli/app.py).

Every error is one line `meshlink: error: ...` on stderr: ConfigError and
usage -> 2, other MeshLinkError and OSError -> 1, Ctrl-C -> 130, a closed
stdout -> 141, all without a traceback. Optional subcommands that cannot be
imported are listed and say why. (The simulator's errors: tests/sim/test_sim_cli.py.)
"""

from __future__ import annotations

import ast
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from meshlink_gw import cli
from meshlink_gw.cli import node as node_cmds
from meshlink_gw.cli.app import OPTIONAL, Unavailable, build_parser

GOOD_ID = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
CLI_DIR = Path(node_cmds.__file__).parent


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    rc = cli.main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


def one_error_line(err: str) -> str:
    assert err.startswith("meshlink: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err[len("meshlink: error: "):-1]


def test_version_prints_the_package_version(capsys):
    from importlib.metadata import version

    with pytest.raises(SystemExit) as e:
        cli.main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out == f"meshlink {version('meshlink')}\n"


def test_version_through_the_installed_script():
    exe = Path(sys.executable).parent / "meshlink"
    out = subprocess.run([str(exe), "--version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.startswith("meshlink 0.") and out.stderr == ""


def test_send_to_a_malformed_id_says_so_in_plain_words(tmp_path, capsys):
    rc, out, err = run(["send", "--data-dir", str(tmp_path), "--to", "not an id!", "hi"], capsys)
    assert rc == 2 and out == ""
    msg = one_error_line(err)
    assert msg.startswith("--to 'not an id!' is not a node ID, name or ID prefix")
    assert "ProtocolError" not in msg and "mesh.dst" not in msg


def test_send_with_no_node_running_is_a_runtime_failure(tmp_path, capsys):
    rc, out, err = run(["send", "--data-dir", str(tmp_path), "--to", GOOD_ID, "hi"], capsys)
    assert rc == 1 and out == ""
    assert one_error_line(err).startswith(
        f"no node is running with control socket {tmp_path / 'control.sock'} (start one")


def test_status_with_no_node_running(tmp_path, capsys):
    rc, _out, err = run(["status", "--data-dir", str(tmp_path)], capsys)
    assert rc == 1 and "no node is running" in one_error_line(err)


def test_recv_on_a_missing_data_dir(tmp_path, capsys):
    missing = tmp_path / "nope"
    rc, out, err = run(["recv", "--data-dir", str(missing)], capsys)
    assert rc == 2 and out == ""
    assert one_error_line(err).startswith(f"no data directory {missing}: no node has run there")
    assert not missing.exists()  # nothing created on the way


def test_recv_on_a_data_dir_with_no_inbox_prints_nothing(tmp_path, capsys):
    rc, out, err = run(["recv", "--data-dir", str(tmp_path)], capsys)
    assert (rc, out, err) == (0, "", "")
    assert list(tmp_path.iterdir()) == []


def test_missing_config_file_is_a_config_error(tmp_path, capsys):
    rc, _out, err = run(["node", "--data-dir", str(tmp_path), "--config",
                         str(tmp_path / "none.toml")], capsys)
    assert rc == 2 and one_error_line(err).startswith("cannot read config ")


def test_an_os_error_is_one_line_and_exit_1(tmp_path):
    """A port already in use: the OSError from bind, not a traceback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        out = subprocess.run([sys.executable, "-m", "meshlink_gw.cli", "node", "--data-dir",
                              str(tmp_path), "--listen", f"127.0.0.1:{port}"],
                             capture_output=True, text=True, timeout=120)
    assert out.returncode == 1, out.stderr
    assert "Traceback" not in out.stderr
    last = out.stderr.splitlines()[-1]  # the node may log before it binds
    assert last.startswith("meshlink: error: ") and "ddress already in use" in last
    assert "choose another port (port 0 picks a free one)" in last


def test_ctrl_c_exits_130_quietly(monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(node_cmds, "cmd_status", interrupted)
    assert run(["status"], capsys) == (130, "", "")


def test_a_closed_stdout_ends_quietly(tmp_path):
    """`meshlink recv | head -1`: no BrokenPipeError traceback, exit 141 as for SIGPIPE."""
    from meshlink_gw.node.store import Inbox

    inbox = Inbox(tmp_path / "meshlink.db")
    for i in range(3000):  # far more than a pipe buffer
        inbox.add(GOOD_ID, None, f"{i:08x}-0000-4000-8000-000000000000",
                  f"{i:08x}-0000-4000-8000-000000000000", b"x" * 100, 1)
    inbox.close()
    proc = subprocess.Popen([sys.executable, "-m", "meshlink_gw.cli", "recv", "--data-dir",
                             str(tmp_path), "--limit", "3000"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 141
    assert first.startswith(b"[1] from ") and err == b""


def test_usage_errors_stay_argparse_errors(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["send", "hi"])  # neither --to nor --broadcast
    assert e.value.code == 2
    assert "one of the arguments --to --broadcast is required" in capsys.readouterr().err


# -- optional subcommands ---------------------------------------------------------
# A module only the board (bundle) or gateway (board service) subcommand needs is
# made unimportable, as a missing optional dependency would make it.
BLOCKED = ("import sys; "
           "sys.modules['meshlink_gw.boards.bundle'] = None; "
           "sys.modules['meshlink_gw.boards.service'] = None; "
           "from meshlink_gw.cli import main; sys.exit(main(sys.argv[1:]))")


def _blocked(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCKED, *argv], capture_output=True,
                          text=True, timeout=60)


def test_an_optional_subcommand_that_cannot_import_says_why():
    """`board` and `gateway` are still listed, and running them says what failed."""
    for argv, module, missing in (
            (["board", "list", "--json"], "meshlink_gw.cli.board", "boards.bundle"),
            (["board", "--help"], "meshlink_gw.cli.board", "boards.bundle"),
            (["gateway", "--listen", "127.0.0.1:0"], "meshlink_gw.cli.gateway",
             "boards.service")):
        out = _blocked(*argv)
        assert out.returncode == 1, out.stderr
        msg = one_error_line(out.stderr)
        assert msg.startswith(f"`meshlink {argv[0]}` is unavailable: importing {module} "
                              f"failed (ModuleNotFoundError: import of meshlink_gw.{missing} "
                              "halted"), msg
    out = _blocked("--help")
    assert out.returncode == 0
    assert "(unavailable: importing meshlink_gw.cli.board failed)" in out.stdout
    assert "invalid choice" not in out.stderr
    # the core commands and the simulator are unaffected
    out = _blocked("sim", "--nodes", "-3")
    assert out.returncode == 2 and "--nodes -3" in out.stderr
    out = _blocked("--version")
    assert out.returncode == 0 and out.stdout.startswith("meshlink ")


def test_every_subcommand_is_registered():
    ap = build_parser()
    sub = next(a for a in ap._actions if a.dest == "command")
    assert set(sub.choices) == {"keygen", "node", "status", "send", "recv", "pins", "nodes",
                                "ping", "trace", "sim", "gateway", "board"}
    assert not any(isinstance(m, Unavailable) for m in OPTIONAL)


# -- import structure ----------------------------------------------------------------
def _imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


def test_subcommand_modules_never_import_main_back():
    """common.py is the shared module; only app.py (and the entry points) import the app."""
    for path in sorted(CLI_DIR.glob("*.py")):
        if path.name in ("app.py", "__init__.py", "__main__.py"):
            continue
        imported = _imports(path)
        assert not {"meshlink_gw.cli", "meshlink_gw.cli.app"} & imported, path.name
        assert not any(m.startswith("meshlink_gw.cli.app") for m in imported), path.name


def test_nothing_outside_cli_imports_it():
    pkg = CLI_DIR.parent
    entry = pkg / "sim" / "__main__.py"  # python -m meshlink_gw.sim runs `meshlink sim`
    for path in sorted(pkg.rglob("*.py")):
        if CLI_DIR in path.parents or path == entry:
            continue
        assert not any(m == "meshlink_gw.cli" or m.startswith("meshlink_gw.cli.")
                       for m in _imports(path)), path


def test_no_module_named_like_the_old_cli_halves():
    pkg = CLI_DIR.parent
    assert not (pkg / "gateway_cli.py").exists() and not (pkg / "sim" / "cli.py").exists()
    assert not os.path.exists(pkg / "cli.py")
