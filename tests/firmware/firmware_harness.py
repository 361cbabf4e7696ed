"""Test harness for the board firmware: a bundle builder, the firmware as a
MicroPython unix-port process, and a small fake gateway in CPython.

The fake gateway speaks the board link with meshlink.boardlink.GatewaySession
over real loopback sockets (UDP datagrams, or TCP with meshlink.frames). It
is deliberately small: one thread, one select loop, every event pushed onto
queues the tests wait on with timeouts (no fixed sleeps).
"""

from __future__ import annotations

import json
import os
import pathlib
import queue
import re
import select
import shutil
import socket
import subprocess
import threading
import time

from helpers import DEADLINE_S, ROOT, mpy_cross, require_micropython
from meshlink import boardlink, cjson, messages
from meshlink._compat import b64encode
from meshlink.errors import MeshLinkError
from meshlink.frames import Deframer, encode_frame
from meshlink_gw.boards import bundle as board_bundle

HEAP = "112K"
BOARD_NODE_ID = "0b0a4d00-0000-4000-8000-000000000001"
GATEWAY_NODE_ID = "9a7e0000-0000-4000-8000-0000000000aa"
PEER_NODE_ID = "5e550000-0000-4000-8000-000000000002"
PSK = bytes(range(32))
BOARD_ID = bytes.fromhex("b0a2d00000000001")


def build_bundle(dest: pathlib.Path, board: str = "unix", compile_mpy: bool | None = None):
    """Lay out the files a board gets (boards/files.json, through the gateway's
    own bundle.source_files), as they would sit on the board's filesystem;
    compile to .mpy where boards/<board>/board.json says so."""
    spec = json.loads((ROOT / "boards" / board / "board.json").read_text())
    if compile_mpy is None:
        compile_mpy = spec["precompile"]["mpy"]
    args = spec["precompile"].get("mpy_cross_args", [])
    for src, rel, compile_it in board_bundle.source_files(board, ROOT):
        dst = dest / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if compile_mpy and compile_it:
            out = dst.with_suffix(".mpy")
            # -s: the source name the bundle's .mpy carries (bundle.build does the same;
            # an absolute path would cost each module a long qstr on the heap)
            subprocess.run([mpy_cross(), *args, "-s", rel, "-o", str(out), str(src)],
                           check=True)
        else:
            shutil.copyfile(src, dst)
    return dest


def board_config(**overrides) -> dict:
    """A valid unix-board config.json with short test timeouts."""
    cfg = {
        "name": "sim-1",
        "board": "unix",
        "board_id": BOARD_ID.hex(),
        "psk": PSK.hex(),
        "node_id": BOARD_NODE_ID,
        "transport": "udp",
        "gateway": None,
        "wifi": None,
        "sensors": [{"name": "temp", "type": "sim", "interval_ms": 150, "unit": "C",
                     "base": 21.5, "amplitude": 3, "period_ms": 3000, "noise": 0.25,
                     "seed": 7}],
        "routes": [],
        "rules": [],
        "handlers": {},
        "heap_budget": 112000,
        "boot_counter_file": "boot.cnt",
        "hello_timeout_ms": 300,
        "hello_tries": 3,
        "backoff_min_ms": 200,
        "backoff_max_ms": 1600,
        "ping_interval_ms": 500,
        "link_timeout_ms": 3000,
        "discovery_timeout_ms": 3000,
        "heap_report_ms": 500,
    }
    cfg.update(overrides)
    return cfg


class Board:
    """The real firmware (main.py) as a MicroPython unix-port process."""

    def __init__(self, bundle: pathlib.Path, workdir: pathlib.Path, config: dict | str | None,
                 heap: str = HEAP, script: pathlib.Path | None = None,
                 args: tuple[str, ...] = (), path_before: str = ""):
        """config: a dict (written as JSON), raw text, or None (no file at all).
        script/args/path_before: run script (not the bundle's main.py) with
        argv [config path, *args], path_before ahead of the bundle on MICROPYPATH."""
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = workdir / "config.json"
        if config is not None:
            text = config if isinstance(config, str) else json.dumps(config)
            self.config_path.write_text(text)
        env = dict(os.environ, MICROPYPATH=f".frozen:{path_before}{bundle}")
        self.proc = subprocess.Popen(
            [require_micropython(), "-X", f"heapsize={heap}", str(script or bundle / "main.py"),
             str(self.config_path), *args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        self.lines: list[str] = []
        self._q: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self._q.put(line.rstrip("\n"))
        self._q.put(None)

    def wait_for(self, pattern: str, timeout: float = DEADLINE_S) -> re.Match:
        """Wait for the next output line matching pattern (regex search)."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no line matching {pattern!r} in {timeout}s; "
                                     f"output tail:\n" + "\n".join(self.lines[-30:]))
            try:
                line = self._q.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                self._q.put(None)  # keep reporting EOF
                raise AssertionError(f"board exited (rc={self.proc.wait()}) before "
                                     f"{pattern!r}; output:\n" + "\n".join(self.lines[-30:]))
            self.lines.append(line)
            m = rx.search(line)
            if m:
                return m

    def wait_exit(self, timeout: float = DEADLINE_S) -> int:
        rc = self.proc.wait(timeout=timeout)
        self._reader.join(timeout)
        while True:
            try:
                line = self._q.get_nowait()
            except queue.Empty:
                break
            if line is not None:
                self.lines.append(line)
        return rc

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class FakeGateway:
    """A gateway's board service, minimal: handshakes and records for one board.

    events: ("hello", boot_ctr), ("established", session), ("auth_error", text)
    records: decoded record objects from the board (pings are answered and
    also queued). psk may differ from the board's to test refusal.
    """

    def __init__(self, psk: bytes = PSK, board_id: bytes = BOARD_ID):
        self.psk = psk
        self.board_id = board_id
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.tcp.bind(("127.0.0.1", 0))
        self.tcp.listen(4)
        self.udp_port = self.udp.getsockname()[1]
        self.tcp_port = self.tcp.getsockname()[1]
        self.events: queue.Queue = queue.Queue()
        self.records: queue.Queue = queue.Queue()
        self.sessions: list[boardlink.GatewaySession] = []
        self.hello_times: list[float] = []
        self.answer = True  # False: swallow HELLOs (gateway down)
        self.mute = False  # True: receive records but never answer (no pongs)
        self.confirm = True  # False: never confirm readings ("got")
        self.stale_sent = 0
        self._pending: dict[bytes, boardlink.GatewaySession] = {}
        self._by_sid: dict[int, tuple[boardlink.GatewaySession, object]] = {}
        self._conns: dict[socket.socket, Deframer] = {}
        self._peer = None  # (session, reply-to) of the newest established session
        self._next_sid = 1
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._established = threading.Event()
        self._beacon = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    # -- wire
    def _send(self, to, msg: bytes):
        try:
            if isinstance(to, socket.socket):
                to.sendall(encode_frame(msg))
            else:
                self.udp.sendto(msg, to)
        except OSError:  # that board is gone (stopped, rebooted): as a real gateway
            pass

    def _now(self) -> int:
        return int(time.monotonic() * 1000)

    def _on_message(self, msg: bytes, reply_to):
        kind = msg[0] if msg else 0
        now = self._now()
        with self._lock:
            if kind == boardlink.T_HELLO:
                self.hello_times.append(time.monotonic())
                if not self.answer:
                    return
                session = self._pending.get(msg)
                if session is None:
                    board_id, boot_ctr, _ = boardlink.decode_hello(msg)
                    self.events.put(("hello", boot_ctr))
                    session = boardlink.GatewaySession(self.psk, board_id)
                    self._pending[msg] = session
                    sid, self._next_sid = self._next_sid, self._next_sid + 1
                    self._by_sid[sid] = (session, reply_to)
                    challenge = session.handle_hello(msg, sid, os.urandom(16), now)
                else:
                    challenge = session.handle_hello(msg, session.sid, os.urandom(16), now)
                if challenge is not None:
                    self._send(reply_to, challenge)
            elif kind == boardlink.T_CONFIRM:
                sid, _ = boardlink.decode_confirm(msg)
                session, _ = self._by_sid[sid]
                try:
                    if session.handle_confirm(msg, now):
                        self.sessions.append(session)
                        self._by_sid[sid] = (session, reply_to)
                        self._peer = (session, reply_to)
                        self._established.set()
                        self.events.put(("established", session))
                except MeshLinkError as e:
                    self.events.put(("auth_error", str(e)))
            elif kind == boardlink.T_RECORD:
                sid, _ = boardlink.decode_record_header(msg)
                if sid not in self._by_sid:  # forget_sessions(): as a restarted gateway
                    self.stale_sent += 1
                    self._send(reply_to, boardlink.encode_stale(sid))
                    return
                session, _ = self._by_sid[sid]
                obj = cjson.loads(session.open(msg, now))
                self.records.put(obj)
                if self.mute:
                    return
                if obj.get("t") == "ping":
                    pong = cjson.dumps({"t": "pong", "seq": obj["seq"]})
                    self._send(reply_to, session.seal(pong, now))
                elif obj.get("t") == "reading" and self.confirm:
                    got = cjson.dumps({"t": "got", "seq": obj["seq"], "to": obj["to"]})
                    self._send(reply_to, session.seal(got, now))

    def forget_sessions(self):
        """Drop every session, as a restarted gateway: records get STALE."""
        with self._lock:
            self._by_sid.clear()
            self._pending.clear()

    def _run(self):
        while not self._stop.is_set():
            socks = [self.udp, self.tcp, *self._conns]
            try:
                ready, _, _ = select.select(socks, [], [], 0.05)
            except (OSError, ValueError):
                continue
            for s in ready:
                try:
                    self._ready(s)
                except MeshLinkError as e:
                    self.events.put(("error", f"{type(e).__name__}: {e}"))

    def _ready(self, s):
        if s is self.udp:
            data, addr = self.udp.recvfrom(4096)
            self._on_message(data, addr)
        elif s is self.tcp:
            conn, _ = self.tcp.accept()
            self._conns[conn] = Deframer()
        else:
            data = self._recv_or_close(s)
            if data is not None:
                for msg in self._conns[s].feed(data):
                    self._on_message(msg, s)

    def _recv_or_close(self, s):
        """Bytes from the stream connection s, or None once it ended or failed
        (then it is closed and forgotten)."""
        try:
            data = s.recv(4096)
        except OSError:
            data = b""
        if not data:
            del self._conns[s]
            s.close()
            return None
        return data

    # -- test API
    def wait_event(self, kind: str, timeout: float = DEADLINE_S):
        return _wait_queue(self.events, lambda e: e[0] == kind, f"{kind!r} event", timeout)

    def wait_record(self, t: str, timeout: float = DEADLINE_S, pred=lambda obj: True) -> dict:
        return _wait_queue(self.records, lambda o: o.get("t") == t and pred(o),
                           f"{t!r} record", timeout)

    def send_msg(self, data: bytes, src: str = PEER_NODE_ID, dst: str | None = BOARD_NODE_ID,
                 msg_id: str | None = None) -> str:
        """Seal a gateway->board "msg" record on the newest session; returns its id."""
        msg_id = msg_id or messages_id()
        obj = {"t": "msg", "id": msg_id, "from": src, "to": dst, "data": b64encode(data)}
        # the board may print LINK up before its CONFIRM reached this thread
        assert self._established.wait(DEADLINE_S), "no established session to send on"
        with self._lock:
            session, reply_to = self._peer
            self._send(reply_to, session.seal(cjson.dumps(obj), self._now()))
        return msg_id

    def send_record(self, obj: dict) -> None:
        """Seal any record object on the newest session (e.g. OTA records)."""
        assert self._established.wait(DEADLINE_S), "no established session to send on"
        with self._lock:
            session, reply_to = self._peer
            self._send(reply_to, session.seal(cjson.dumps(obj), self._now()))

    def start_beacons(self, port: int, interval_s: float = 0.2, node_id: str = GATEWAY_NODE_ID):
        beacon = messages.GatewayBeacon(node_id=node_id, udp_port=self.udp_port,
                                        tcp_port=self.tcp_port).encode()
        stop = threading.Event()

        def run():
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                while not stop.wait(interval_s):
                    s.sendto(b"not a beacon", ("127.0.0.1", port))
                    s.sendto(beacon, ("127.0.0.1", port))

        threading.Thread(target=run, daemon=True).start()
        self._beacon = stop

    def close(self):
        self._stop.set()
        if self._beacon is not None:
            self._beacon.set()
        self._thread.join(5)
        for s in [self.udp, self.tcp, *self._conns]:
            s.close()


def messages_id() -> str:
    from meshlink.nodeid import new_message_id

    return new_message_id(os.urandom(16))


def run_mpy(bundle: pathlib.Path, code: str, heap: str = HEAP,
            timeout: float = 4 * DEADLINE_S):
    """Run a MicroPython snippet with the bundle on its path -> CompletedProcess."""
    env = dict(os.environ, MICROPYPATH=f".frozen:{bundle}")
    return subprocess.run([require_micropython(), "-X", f"heapsize={heap}", "-c", code], env=env,
                          capture_output=True, text=True, timeout=timeout)


def mpy_json(bundle: pathlib.Path, code: str, heap: str = HEAP):
    """Run a snippet that prints one JSON document last -> the decoded value."""
    proc = run_mpy(bundle, code, heap)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _wait_queue(q, match, what: str, timeout: float):
    """The first item of q that match() accepts within timeout s (others are dropped)."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no {what} in {timeout}s")
        try:
            item = q.get(timeout=left)
        except queue.Empty:
            continue
        if match(item):
            return item
