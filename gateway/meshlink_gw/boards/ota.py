"""Signed over-the-air firmware updates: the operator's update key, releases,
and the transfers the board service runs (docs/BOARDS.md "Over-the-air
updates"; records in docs/PROTOCOL.md §8.1).

Rule: the gateway verifies the operator's hybrid signature (Ed25519 +
ML-DSA-65, both must verify) over a release's manifest, and the SHA-256 of
every file, before a byte goes to a board; the board then checks a per-board
MAC over the manifest hash (a key derived from its PSK with its own label)
and every file's SHA-256. Transfers are driven by OtaService.tick(now) and
the board's "ota"/"status" records; no I/O here but the release files on disk.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import logging
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519, mldsa
from meshlink._compat import b64encode
from meshlink.errors import AuthError, ConfigError
from meshlink.hmac256 import hkdf, hmac_sha256

from meshlink_gw.boards import bundle

log = logging.getLogger("meshlink.gateway.ota")

KIND = "meshlink-firmware"
BOOT_FILES = ("main.py", "otaboot.py")  # USB flash only, never over the air
KEY_FILE = "update_key.json"  # the operator's private update key (mode 0600)
PUB_FILE = "update_key.pub.json"  # its public half: what a gateway verifies with
SIG_FILE = "manifest.sig.json"
MANIFEST_FILE = "manifest.txt"
SIG_DOMAIN = b"meshlink-release-v1\x00"  # signed: SIG_DOMAIN || manifest bytes
KEY_LABEL = b"meshlink ota v1"  # = firmware/app/ota.py KEY_LABEL
MAC_LABEL = b"meshlink-ota-manifest"  # = firmware/app/ota.py MAC_LABEL
MAX_MANIFEST_BYTES = 16384  # = firmware/app/ota_rx.py
WINDOW_CHUNKS = 2  # chunks in flight (the board acks every 2nd; its heap is small)
RECORD_SLACK_BYTES = 96  # JSON around a chunk's base64 in its record
GIVE_UP_MS = 120_000  # no progress for this long while the board is online: failed
INSTALL_WAIT_MS = 120_000  # after "done": the board must come back on the new version


# -- the operator's update key -------------------------------------------------------
def generate_update_key(directory: Path, force: bool = False) -> dict[str, str]:
    """Write a new hybrid update key (Ed25519 + ML-DSA-65) into directory:
    KEY_FILE (0600) and PUB_FILE. Returns the public key (hex).

    Raises:
        ConfigError: a key exists and force is false.
    """
    directory = Path(directory)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = directory / KEY_FILE
    if path.exists() and not force:
        raise ConfigError(f"{path} exists; --force replaces it (boards keep taking "
                          "releases only from gateways that trust the new public key)")
    ed = ed25519.Ed25519PrivateKey.generate()
    ml_seed = os.urandom(32)
    ml = mldsa.MLDSA65PrivateKey.from_seed_bytes(ml_seed)
    priv = {"ed25519": ed.private_bytes_raw().hex(), "mldsa65_seed": ml_seed.hex()}
    pub = {"ed25519": ed.public_key().public_bytes_raw().hex(),
           "mldsa65": ml.public_key().public_bytes_raw().hex()}
    bundle._write_private(path, (json.dumps(priv) + "\n").encode())
    (directory / PUB_FILE).write_text(json.dumps(pub) + "\n")
    return pub


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        obj = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(f"{what} {path}: cannot read it ({e})")
    if not isinstance(obj, dict):
        raise ConfigError(f"{what} {path}: not a JSON object")
    return obj


def load_signing_key(path: Path) -> tuple[ed25519.Ed25519PrivateKey, mldsa.MLDSA65PrivateKey]:
    """The private update key. Raises ConfigError."""
    obj = _read_json(path, "update key")
    try:
        return (ed25519.Ed25519PrivateKey.from_private_bytes(bytes.fromhex(obj["ed25519"])),
                mldsa.MLDSA65PrivateKey.from_seed_bytes(bytes.fromhex(obj["mldsa65_seed"])))
    except (KeyError, ValueError, TypeError) as e:
        raise ConfigError(f"update key {path}: malformed ({e})")


def load_public_key(path: Path) -> tuple[ed25519.Ed25519PublicKey, mldsa.MLDSA65PublicKey]:
    """The public update key a gateway trusts. Raises ConfigError."""
    obj = _read_json(path, "update public key")
    try:
        return (ed25519.Ed25519PublicKey.from_public_bytes(bytes.fromhex(obj["ed25519"])),
                mldsa.MLDSA65PublicKey.from_public_bytes(bytes.fromhex(obj["mldsa65"])))
    except (KeyError, ValueError, TypeError) as e:
        raise ConfigError(f"update public key {path}: malformed ({e})")


def sign_manifest(key: tuple[Any, Any], manifest: bytes) -> dict[str, str]:
    """Both signatures over SIG_DOMAIN || manifest (base64)."""
    msg = SIG_DOMAIN + manifest
    return {"ed25519": b64encode(key[0].sign(msg)), "mldsa65": b64encode(key[1].sign(msg))}


def verify_manifest(pub: tuple[Any, Any], manifest: bytes, sig: dict[str, Any]) -> None:
    """Raises AuthError unless both signatures verify."""
    msg = SIG_DOMAIN + manifest
    try:
        pub[0].verify(base64.b64decode(sig["ed25519"], validate=True), msg)
        pub[1].verify(base64.b64decode(sig["mldsa65"], validate=True), msg)
    except (InvalidSignature, KeyError, ValueError, TypeError) as e:
        raise AuthError(f"release signature does not verify with the update key "
                        f"({type(e).__name__})")


# -- releases --------------------------------------------------------------------------
def releases_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "releases"


def release_dir(data_dir: Path, board_type: str, version: str) -> Path:
    return releases_dir(data_dir) / board_type / version


def _check_version(version: str) -> None:
    ok = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-+"
    if not 0 < len(version) <= 32 or any(c not in ok for c in version):
        raise ConfigError(f"version {version!r}: 1-32 of A-Z a-z 0-9 . _ - +")


def build_release(data_dir: Path, board_type: str, version: str, key_path: Path,
                  root: Path | None = None, progress=None) -> Path:
    """Compile the firmware for board_type as `board flash` would (boards/files.json,
    .mpy where the board precompiles), without config.json and the boot files,
    write its manifest and sign it with the update key at key_path.

    Raises:
        ConfigError: bad version, existing release, no key, mpy-cross failed.
    """
    _check_version(version)
    key = load_signing_key(key_path)
    root = root or bundle.firmware_root()
    out = release_dir(data_dir, board_type, version)
    if out.exists():
        raise ConfigError(f"release {board_type} {version} exists in {out}")
    tmp = out.with_name(version + ".new")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "files").mkdir(parents=True)
    pre = bundle._precompile(board_type, root)
    compiler = bundle.mpy_cross() if pre.get("mpy") else None
    files = [f for f in bundle.source_files(board_type, root) if f[1] not in BOOT_FILES]
    entries = []
    for i, (src, dest, compile_it) in enumerate(files):
        if compiler and compile_it and dest.endswith(".py"):
            dest = dest[:-3] + ".mpy"
            target = tmp / "files" / dest
            target.parent.mkdir(parents=True, exist_ok=True)
            cmd = [compiler, "-o", str(target), "-s", dest[:-4] + ".py",
                   *[str(a) for a in pre.get("mpy_cross_args") or ()]]
            if pre.get("march"):
                cmd.append(f"-march={pre['march']}")
            proc = subprocess.run([*cmd, str(src)], capture_output=True, text=True)
            if proc.returncode != 0:
                raise ConfigError(f"mpy-cross failed on {src}: {proc.stderr.strip()}")
        else:
            target = tmp / "files" / dest
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, target)
        data = target.read_bytes()
        entries.append({"path": dest, "size": len(data),
                        "sha256": hashlib.sha256(data).hexdigest()})
        if progress:
            progress(i + 1, len(files), dest)
    manifest = encode_manifest(board_type, version, entries)
    if len(manifest) > MAX_MANIFEST_BYTES:
        raise ConfigError(f"manifest of {len(manifest)} bytes over {MAX_MANIFEST_BYTES}")
    (tmp / MANIFEST_FILE).write_bytes(manifest)
    (tmp / SIG_FILE).write_text(json.dumps(sign_manifest(key, manifest)) + "\n")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp.rename(out)
    return out


def encode_manifest(board_type: str, version: str, entries: list[dict[str, Any]]) -> bytes:
    """The manifest text (docs/PROTOCOL.md §8.1): a header line, board, version,
    then one `file SIZE SHA256 PATH` line per file, each ending in a newline.
    Lines, not JSON: a board parses it as it streams in, without a buffer of its size."""
    lines = [f"{KIND} 1", f"board {board_type}", f"version {version}"]
    lines += [f"file {e['size']} {e['sha256']} {e['path']}" for e in entries]
    return ("\n".join(lines) + "\n").encode()


def decode_manifest(manifest: bytes) -> tuple[str, str, list[dict[str, Any]]]:
    """(board, version, files) of a manifest. Raises ConfigError."""
    try:
        lines = manifest.decode().split("\n")
        if lines[0] != f"{KIND} 1" or lines[-1] != "":
            raise ValueError("header or final newline")
        fields = dict(ln.split(" ", 1) for ln in lines[1:3])
        files = []
        for ln in lines[3:-1]:
            word, size, sha, path = ln.split(" ")
            if word != "file":
                raise ValueError(ln[:40])
            files.append({"path": path, "size": int(size), "sha256": sha})
        return fields["board"], fields["version"], files
    except (ValueError, KeyError, UnicodeError) as e:
        raise ConfigError(f"malformed manifest ({e})")


@dataclasses.dataclass(frozen=True)
class Release:
    """A verified release: its manifest bytes and the stream a board receives
    (manifest, then every file in manifest order)."""

    board: str
    version: str
    manifest: bytes
    files: int
    stream: bytes

    @property
    def manifest_sha256(self) -> bytes:
        return hashlib.sha256(self.manifest).digest()


def load_release(path: Path, pub: tuple[Any, Any]) -> Release:
    """Read and verify a release directory.

    Raises:
        AuthError: the signature does not verify, or a file differs from the manifest.
        ConfigError: missing or malformed files.
    """
    path = Path(path)
    try:
        manifest = (path / MANIFEST_FILE).read_bytes()
    except OSError as e:
        raise ConfigError(f"release {path}: no manifest ({e.strerror})")
    verify_manifest(pub, manifest, _read_json(path / SIG_FILE, "release signature"))
    board, version, files = decode_manifest(manifest)
    parts = [manifest]
    for entry in files:
        try:
            data = (path / "files" / entry["path"]).read_bytes()
        except OSError as err:
            raise ConfigError(f"release {path}: {entry['path']} missing ({err.strerror})")
        if hashlib.sha256(data).hexdigest() != entry["sha256"] or len(data) != entry["size"]:
            raise AuthError(f"release {path}: {entry['path']} differs from the signed "
                            "manifest")
        parts.append(data)
    return Release(board, version, manifest, len(files), b"".join(parts))


def ota_key(psk: bytes) -> bytes:
    """The per-board OTA MAC key (as the board derives it)."""
    return hkdf(b"", psk, KEY_LABEL, 32)


def manifest_tag(psk: bytes, manifest_sha256: bytes) -> bytes:
    return hmac_sha256(ota_key(psk), MAC_LABEL, manifest_sha256)


def chunk_bytes(max_record_bytes: int) -> int:
    """Raw bytes per chunk so that a chunk record fits max_record_bytes."""
    return max(48, (max_record_bytes - RECORD_SLACK_BYTES) // 4 * 3)


# -- transfers ---------------------------------------------------------------------------
@dataclasses.dataclass
class Transfer:
    board: str
    release: Release
    tid: str
    started_ms: int
    state: str = "starting"  # starting, sending, installing, updated, failed, rolled_back
    acked: int = 0
    next_off: int = 0
    dups: int = 0
    link: Any = None
    last_send_ms: int = 0
    progress_ms: int = 0
    error: str = ""
    finished_ms: int | None = None

    def row(self) -> dict[str, Any]:
        total = len(self.release.stream)
        return {"board": self.board, "version": self.release.version, "state": self.state,
                "bytes": total, "acked": self.acked, "error": self.error,
                "started_ms": self.started_ms, "finished_ms": self.finished_ms}


class OtaService:
    """The board service's update transfers, one per board at a time."""

    def __init__(self, svc: Any) -> None:
        self.svc = svc
        self.transfers: dict[str, Transfer] = {}
        self.firmware: dict[str, dict[str, str]] = {}  # name -> {"version", "ota"} (status)
        self.hooks: list[Any] = []  # hook(rec, version, result): MQTT

    def start(self, names: list[str], release_path: str, now: int) -> list[dict]:
        """Verify the release and start a transfer to each named board.

        Raises:
            ConfigError: unknown board, no public update key, board type mismatch.
            AuthError: the release's signature or files do not verify.
        """
        pub = load_public_key(Path(self.svc.reg.path).parent / PUB_FILE)
        release = load_release(Path(release_path), pub)
        out = []
        for name in names:
            rec = self.svc.boards.get(name)
            if rec is None or rec.revoked:
                raise ConfigError(f"no (unrevoked) board named {name!r}")
            if rec.board_type != release.board:
                raise ConfigError(f"board {name} is a {rec.board_type}; the release is for "
                                  f"{release.board}")
        for name in names:
            old = self.transfers.get(name)
            if old is not None and old.state in ("starting", "sending"):
                self._abort(old, now)
            t = Transfer(name, release, os.urandom(4).hex(), now, progress_ms=now)
            self.transfers[name] = t
            log.info("board %s: update to %s (%d bytes, %d files) starts", name,
                     release.version, len(release.stream), release.files)
            out.append(t.row())
        return out

    def rows(self, names: list[str] | None = None) -> list[dict]:
        return [t.row() for n, t in self.transfers.items() if names is None or n in names]

    def board_fields(self, name: str) -> dict[str, Any]:
        """Firmware columns of `board list`."""
        fw = self.firmware.get(name, {})
        t = self.transfers.get(name)
        return {"firmware": fw.get("version"), "ota": t.state if t else fw.get("ota") or None}

    # -- records from boards ---------------------------------------------------------
    def on_status(self, link: Any, obj: dict, now: int) -> None:
        name = link.board.name
        ver, note = obj.get("ver"), obj.get("ota")
        if not isinstance(ver, str) or not isinstance(note, str):
            return
        self.firmware[name] = {"version": ver, "ota": note}
        t = self.transfers.get(name)
        result = note
        if t is not None and t.state == "installing":
            if ver == t.release.version:
                self._finish(t, "updated", "", now)
                result = "updated"
            elif note.startswith("rolled back"):
                self._finish(t, "rolled_back", f"board rolled back to {ver}", now)
                result = "rolled_back"
        log.info("board %s runs firmware %s%s", name, ver, f" ({note})" if note else "")
        for hook in self.hooks:
            hook(link.board, ver, result)

    def on_record(self, link: Any, obj: dict, now: int) -> None:
        t = self.transfers.get(link.board.name)
        if t is None or obj.get("id") != t.tid or t.state not in ("starting", "sending"):
            return
        op = obj.get("op")
        if op == "ack":
            off = obj.get("off")
            if not isinstance(off, int) or not 0 <= off <= len(t.release.stream):
                return
            if t.state == "starting":  # answer to begin: where the board is (0 if fresh)
                t.state, t.acked, t.next_off, t.dups = "sending", off, off, 0
                t.progress_ms = now
            elif off > t.acked:
                t.acked, t.dups, t.progress_ms = off, 0, now
            elif off == t.acked:
                t.dups += 1
                if t.dups >= 2:  # out-of-order chunks: the board is stuck at off
                    t.next_off, t.dups = off, 0
            t.next_off = max(t.next_off, t.acked)
            self._pump(t, link, now)
        elif op == "reboot":  # the board reboots into its update receiver
            t.progress_ms = now
        elif op == "done":
            t.acked = len(t.release.stream)
            t.state = "installing"
            t.progress_ms = now
            log.info("board %s verified %s; it reboots into it", t.board, t.release.version)
        elif op == "fail":
            why = str(obj.get("why"))[:200]
            if why == "no such transfer" and t.next_off >= len(t.release.stream):
                t.state = "installing"  # the "done" was lost; the board reboots anyway
                return
            self._finish(t, "failed", f"board refused: {why}", now)

    # -- timer --------------------------------------------------------------------------
    def tick(self, now: int) -> None:
        for t in list(self.transfers.values()):
            if t.state in ("updated", "failed", "rolled_back"):
                continue
            link = self.svc.links.get(t.board)
            online = link is not None and link.online(now, self.svc.cfg.offline_after_ms)
            if t.state == "installing":
                if now - t.progress_ms > INSTALL_WAIT_MS:
                    self._finish(t, "failed", "the board did not come back on the new version",
                                 now)
                continue
            if not online:
                t.progress_ms = now  # waiting for the board is not a stall
                continue
            if now - t.progress_ms > GIVE_UP_MS:
                self._finish(t, "failed", "no progress", now)
                continue
            if link is not t.link:  # new session (or first): (re)start with begin
                t.link, t.state = link, "starting"
            retry = self.svc.cfg.retry_ms
            if t.state == "starting":
                if now - t.last_send_ms >= retry:
                    self._send_begin(t, link, now)
            elif now - t.last_send_ms >= retry:  # nothing acked lately: go back
                t.next_off = t.acked
                self._pump(t, link, now)

    def _chunk(self) -> int:
        return chunk_bytes(self.svc.cfg.max_record_bytes)

    def _send_begin(self, t: Transfer, link: Any, now: int) -> None:
        rec = link.board
        self.svc.sessions.send(link, {
            "t": "ota", "op": "begin", "id": t.tid, "ver": t.release.version,
            "mlen": len(t.release.manifest), "mh": t.release.manifest_sha256.hex(),
            "tag": manifest_tag(rec.psk, t.release.manifest_sha256).hex()}, now)
        t.last_send_ms = now

    def _pump(self, t: Transfer, link: Any, now: int) -> None:
        size, stream = self._chunk(), t.release.stream
        limit = min(len(stream), t.acked + WINDOW_CHUNKS * size)
        while t.next_off < limit:
            data = stream[t.next_off:t.next_off + size]
            self.svc.sessions.send(link, {"t": "ota", "op": "chunk", "id": t.tid,
                                          "off": t.next_off, "data": b64encode(data)}, now)
            t.next_off += len(data)
            t.last_send_ms = now

    def _abort(self, t: Transfer, now: int) -> None:
        link = self.svc.links.get(t.board)
        if link is not None:
            self.svc.sessions.send(link, {"t": "ota", "op": "abort", "id": t.tid}, now)
        self._finish(t, "failed", "replaced by a newer update", now)

    def _finish(self, t: Transfer, state: str, error: str, now: int) -> None:
        t.state, t.error, t.finished_ms = state, error, now
        (log.info if state == "updated" else log.warning)(
            "board %s: update to %s %s%s after %d ms", t.board, t.release.version, state,
            f": {error}" if error else "", now - t.started_ms)
        rec = self.svc.boards.get(t.board)
        if rec is not None and state != "updated":
            for hook in self.hooks:
                hook(rec, self.firmware.get(t.board, {}).get("version"), state)


def attach(ota: OtaService, server: Any) -> None:
    """board_update / board_update_status on the control socket."""
    from meshlink_gw.runtime import now_ms

    async def board_update(req, w):
        names = req.get("names")
        if req.get("all"):
            names = [n for n, r in ota.svc.boards.items() if not r.revoked]
        if not isinstance(names, list) or not names or \
                not all(isinstance(n, str) for n in names):
            raise ConfigError("board_update needs names (a list) or all")
        release = req.get("release")
        if not isinstance(release, str):
            raise ConfigError("board_update needs a release directory")
        return ota.start(names, release, now_ms())

    async def board_update_status(req, w):
        names = req.get("names")
        return ota.rows(names if isinstance(names, list) else None)

    server.register("board_update", board_update)
    server.register("board_update_status", board_update_status)
