"""A walk through the mistakes a new user makes, against the real `meshlink`
command and real node processes: every one ends in one line
`meshlink: error: ...` saying what went wrong and what to do, with its
documented exit code (cli/app.py), and never a traceback."""

from __future__ import annotations

import select
import signal
import socket
import subprocess

from helpers import DEADLINE_S

from examples.node_proc import meshlink_cmd


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(meshlink_cmd() + list(args), capture_output=True, text=True,
                          timeout=4 * DEADLINE_S)


def _last_error(out: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in out.stderr, out.stderr
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("meshlink: error: "), out.stderr
    return last[len("meshlink: error: "):]


def test_mistakes_without_a_running_node(tmp_path):
    missing = tmp_path / "none"
    a_file = tmp_path / "file"
    a_file.write_text("x")
    cases = [  # (argv, exit code, words the message must contain)
        (("status", "--data-dir", str(missing)), 1, ["no node is running", "meshlink node"]),
        (("nodes", "--data-dir", str(a_file)), 1, ["no node is running", "--data-dir"]),
        (("ping", "alpha", "--data-dir", str(missing)), 1, ["no node is running"]),
        (("trace", "alpha", "--data-dir", str(missing)), 1, ["no node is running"]),
        (("send", "--to", "a b", "hi", "--data-dir", str(missing)), 2,
         ["is not a node ID, name or ID prefix", "meshlink nodes"]),
        (("ping", "<alpha>", "--data-dir", str(missing)), 2, ["is not a node ID, name"]),
        (("recv", "--data-dir", str(missing)), 2, ["no data directory", "meshlink node"]),
        (("recv", "--data-dir", str(a_file)), 2, ["not a directory"]),
        (("node", "--data-dir", str(a_file)), 2, ["cannot create identity", "Not a directory"]),
        (("node", "--data-dir", str(tmp_path / "n"), "--name", "bad name"), 2,
         ["--name", "letters, digits"]),
        (("node", "--data-dir", str(tmp_path / "n"), "--dashboard", "nowhere"), 2,
         ["--dashboard", "HOST:PORT"]),
        (("node", "--data-dir", str(tmp_path / "n"), "--listen", "127.0.0.1:99999"), 2,
         ["--listen", "HOST:PORT"]),
        (("node", "--data-dir", str(tmp_path / "n"), "--listen", "203.0.113.7:0"), 1,
         ["no interface of this machine has that address"]),
    ]
    for argv, code, words in cases:
        out = _run(*argv)
        msg = _last_error(out)
        assert out.returncode == code, (argv, out.stderr)
        for w in words:
            assert w in msg, (argv, msg)


def test_ports_in_use_say_which_and_what_to_do(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        taken = f"127.0.0.1:{s.getsockname()[1]}"
        for argv in (("node", "--listen", taken),
                     ("node", "--listen", "127.0.0.1:0", "--dashboard", taken),
                     ("gateway", "--listen", taken, "--board-udp", "127.0.0.1:0",
                      "--board-tcp", "127.0.0.1:0", "--no-beacon")):
            out = _run(*argv, "--data-dir", str(tmp_path / argv[0]))
            msg = _last_error(out)
            assert out.returncode == 1
            assert "address already in use" in msg and "port 0 picks a free one" in msg, msg


def test_ctrl_c_ends_quietly(tmp_path, spawn):
    node = spawn("a", extra=("--name", "alpha"))
    sent = node.cli("send", "--to", node.node_id, "to myself")
    assert sent.returncode == 0, sent.stderr
    follow = subprocess.Popen(meshlink_cmd() + ["recv", "--follow", "--backlog", "--data-dir",
                                                str(node.data_dir)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert follow.stdout is not None
    # connected and streaming once it has printed the stored message
    ready, _, _ = select.select([follow.stdout], [], [], 4 * DEADLINE_S)
    assert ready and "to myself" in follow.stdout.readline()
    follow.send_signal(signal.SIGINT)  # as Ctrl-C would
    _out, err = follow.communicate(timeout=4 * DEADLINE_S)
    assert follow.returncode == 130 and err == "", err
    # SIGINT to the node itself: a clean stop, exit 0, no traceback in its log
    assert node.proc is not None
    node.proc.send_signal(signal.SIGINT)
    assert node.proc.wait(timeout=4 * DEADLINE_S) == 0
    assert "Traceback" not in node.log_path.read_text()
