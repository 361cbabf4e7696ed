# Over-the-air updates, the board's side (docs/BOARDS.md "Over-the-air
# updates"; records in docs/PROTOCOL.md §8.1). Rules: the gateway streams
# the signed manifest, then each file, in "ota" records; this module writes
# the files into the slot that is not running, checks the per-board MAC over
# the manifest hash and the SHA-256 of every file, and only then switches
# (otaboot.write: one rename). Nothing the running firmware boots from is
# touched before the switch, so a bad or interrupted transfer changes
# nothing. Memory: one file open and one SHA-256 at a time; the manifest
# (<= MAX_MANIFEST_BYTES) is the largest buffer.
import hashlib
import os

import otaboot
from meshlink._compat import b64decode, ct_equal
from meshlink.cjson import loads
from meshlink.errors import DecodeError
from meshlink.hmac256 import hkdf, hmac_sha256

from app import platform

KEY_LABEL = b"meshlink ota v1"  # HKDF info: the OTA key is not a board-link key
MAC_LABEL = b"meshlink-ota-manifest"
MAX_MANIFEST_BYTES = 4096
MAX_FILE_BYTES = 262144
ACK_EVERY = 4  # chunks per cumulative ack (the gateway keeps a window of 8)
TRIAL_MS = 60000  # a new slot must reach its gateway within this, or it reboots back
_NAME_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./"


def ota_key(psk):
    """The per-board OTA MAC key: HKDF-SHA256(salt empty, psk, KEY_LABEL)."""
    return hkdf(b"", psk, KEY_LABEL, 32)


def manifest_tag(key, manifest_sha256):
    """HMAC-SHA256(ota key, MAC_LABEL || SHA-256(manifest)) -> 32 bytes."""
    return hmac_sha256(key, MAC_LABEL, manifest_sha256)


def _hex(b):
    return "".join("%02x" % x for x in b)


def _safe_path(p):
    if type(p) is not str or not p or p[0] == "/" or len(p) > 64 or ".." in p:
        return False
    for ch in p:
        if ch not in _NAME_CHARS:
            return False
    return p not in ("main.py", "otaboot.py", "config.json", otaboot.STATE_FILE)


def _rmtree(path):
    try:
        names = os.listdir(path)
    except OSError:
        return
    for name in names:
        sub = path + "/" + name
        if os.stat(sub)[0] & 0x4000:  # a directory
            _rmtree(sub)
        else:
            os.remove(sub)
    os.rmdir(path)


def _makedirs(path):
    cur = ""
    for part in path.split("/"):
        cur = cur + "/" + part if cur else part
        if not part:
            continue
        try:
            os.mkdir(cur)
        except OSError:
            pass  # exists


class OtaError(Exception):
    pass


class Ota:
    """Version reporting, confirmation of a trial boot, and one transfer at a time."""

    def __init__(self, cfg):
        self._key = ota_key(cfg.psk)
        self._board = cfg.board
        self.state = otaboot.state
        self.reboot = False  # set once a verified update is switched in
        self._t = None  # the transfer in progress (dict)

    def version(self):
        return self.state["ver"] if self.state else "factory"

    def trial(self):
        return bool(self.state and self.state["trial"])

    def on_link_up(self):
        """First session of this boot is up: a trial slot is now confirmed.
        Returns the status record to send."""
        st = self.state
        if st and st["trial"]:
            st["trial"] = 0
            st["note"] = "updated"
            otaboot.write(st)
            platform.log("OTA confirmed version %s" % st["ver"])
        return {"t": "status", "ver": self.version(),
                "ota": (st.get("note") or "") if st else ""}

    def handle(self, obj):
        """An "ota" record from the gateway -> the reply record, or None."""
        op, tid = obj.get("op"), obj.get("id")
        try:
            if op == "begin":
                return self._begin(obj, tid)
            t = self._t
            if t is None or tid != t["id"]:
                return {"t": "ota", "op": "fail", "id": tid, "why": "no such transfer"}
            if op == "chunk":
                return self._chunk(t, obj)
            if op == "abort":
                self._drop("aborted by the gateway")
                return None
        except (OtaError, DecodeError, OSError, ValueError, KeyError, TypeError) as e:
            why = "%s: %s" % (type(e).__name__, e)
            self._drop(why)
            return {"t": "ota", "op": "fail", "id": tid, "why": why[:120]}
        return None

    # -- transfer --------------------------------------------------------------
    def _begin(self, obj, tid):
        if type(tid) is not str or len(tid) > 16:
            raise OtaError("bad transfer id")
        if self._t is not None and self._t["id"] == tid:  # a resent begin
            return {"t": "ota", "op": "ack", "id": tid, "off": self._t["off"]}
        if self.reboot:
            raise OtaError("an update is already installed; rebooting")
        if self.trial():
            raise OtaError("running an unconfirmed version")
        mlen, mh, tag = obj.get("mlen"), obj.get("mh"), obj.get("tag")
        if type(mlen) is not int or not 0 < mlen <= MAX_MANIFEST_BYTES:
            raise OtaError("manifest length out of range")
        mh = bytes.fromhex(mh)
        if len(mh) != 32 or not ct_equal(manifest_tag(self._key, mh), bytes.fromhex(tag)):
            raise OtaError("manifest MAC does not verify")
        self._drop(None)
        cur = self.state["slot"] if self.state else ""
        slot = "ota/b" if cur == "ota/a" else "ota/a"
        _rmtree(otaboot.base + slot)
        _makedirs(otaboot.base + slot)
        self._t = {"id": tid, "mh": mh, "mlen": mlen, "man": bytearray(), "off": 0,
                   "slot": slot, "files": None, "fi": 0, "fdone": 0, "f": None, "h": None,
                   "total": None, "n": 0, "pct": 0}
        platform.log("OTA begin id=%s manifest=%d bytes into %s" % (tid, mlen, slot))
        return {"t": "ota", "op": "ack", "id": tid, "off": 0}

    def _chunk(self, t, obj):
        off = obj.get("off")
        if off != t["off"]:  # lost or repeated chunk: say where we are
            return {"t": "ota", "op": "ack", "id": t["id"], "off": t["off"]}
        data = b64decode(obj.get("data"))
        if not data:
            raise OtaError("empty chunk")
        i = 0
        while i < len(data):
            i += self._feed(t, memoryview(data)[i:])
        t["off"] += len(data)
        t["n"] += 1
        if t["total"] is not None and t["off"] == t["total"]:
            return self._finish(t)
        if t["total"] is not None:
            pct = t["off"] * 100 // t["total"]
            if pct >= t["pct"] + 25:
                t["pct"] = pct - pct % 25
                platform.log("OTA progress %d%% (%d of %d bytes)" % (
                    t["pct"], t["off"], t["total"]))
        if t["n"] % ACK_EVERY == 0:
            return {"t": "ota", "op": "ack", "id": t["id"], "off": t["off"]}
        return None

    def _feed(self, t, data):
        """Consume a prefix of data (manifest or the current file) -> its length."""
        if t["files"] is None:
            n = min(len(data), t["mlen"] - len(t["man"]))
            t["man"].extend(data[:n])
            if len(t["man"]) == t["mlen"]:
                self._manifest(t)
            return n
        files = t["files"]
        if t["fi"] >= len(files):
            raise OtaError("more bytes than the manifest lists")
        path, size, sha = files[t["fi"]]
        if t["f"] is None:
            full = otaboot.base + t["slot"] + "/" + path
            j = full.rfind("/")
            _makedirs(full[:j])
            t["f"] = open(full, "wb")
            t["h"] = hashlib.sha256()
        n = min(len(data), size - t["fdone"])
        part = data[:n]
        t["f"].write(part)
        t["h"].update(part)
        t["fdone"] += n
        if t["fdone"] == size:
            self._file_done(t, path, sha)
        return n

    def _file_done(self, t, path, sha):
        t["f"].close()
        t["f"] = None
        if not ct_equal(t["h"].digest(), sha):
            raise OtaError("%s: SHA-256 does not match the manifest" % path)
        t["h"] = None
        t["fi"] += 1
        t["fdone"] = 0

    def _manifest(self, t):
        man = bytes(t["man"])
        t["man"] = None
        if not ct_equal(hashlib.sha256(man).digest(), t["mh"]):
            raise OtaError("manifest SHA-256 does not match the MACed hash")
        m = loads(man)
        if type(m) is not dict or m.get("kind") != "meshlink-firmware":
            raise OtaError("not a firmware manifest")
        if m.get("board") != self._board:
            raise OtaError("manifest is for board %r, not %r" % (m.get("board"), self._board))
        ver = m.get("version")
        if type(ver) is not str or not 0 < len(ver) <= 32:
            raise OtaError("bad version")
        files, total = [], t["mlen"]
        for e in m.get("files"):
            path, size, sha = e.get("path"), e.get("size"), bytes.fromhex(e.get("sha256"))
            if not _safe_path(path) or type(size) is not int or not 0 <= size <= MAX_FILE_BYTES \
                    or len(sha) != 32:
                raise OtaError("bad manifest entry %r" % (path,))
            files.append((path, size, sha))
            total += size
        if not files:
            raise OtaError("empty manifest")
        t["files"], t["total"], t["ver"] = files, total, ver
        while t["fi"] < len(files) and files[t["fi"]][1] == 0:  # empty files: now
            self._feed(t, b"")
        platform.log("OTA manifest version=%s files=%d bytes=%d" % (ver, len(files), total))

    def _finish(self, t):
        while t["fi"] < len(t["files"]):  # trailing empty files
            self._feed(t, b"")
        st = self.state or {"slot": "", "ver": "factory"}
        otaboot.write({"slot": t["slot"], "ver": t["ver"], "prev": st["slot"],
                       "prev_ver": st["ver"], "trial": 1, "note": ""})
        self._t = None
        self.reboot = True
        platform.log("OTA verified version=%s (%d bytes, %d files); switched to %s, rebooting"
                     % (t["ver"], t["total"], len(t["files"]), t["slot"]))
        return {"t": "ota", "op": "done", "id": t["id"], "ver": t["ver"]}

    def _drop(self, why):
        t, self._t = self._t, None
        if t is None:
            return
        if t["f"] is not None:
            t["f"].close()
        _rmtree(otaboot.base + t["slot"])
        if why:
            platform.log("OTA failed id=%s: %s; still running %s" % (t["id"], why,
                                                                     self.version()))


async def reboot_after(delay_ms, why):
    """Reboot into the state otaboot will read (unix port: exit REBOOT_EXIT)."""
    import asyncio

    await asyncio.sleep_ms(delay_ms)
    platform.log("REBOOT (%s)" % why)
    platform.reset(otaboot.REBOOT_EXIT)


async def trial_guard(ota):
    """A trial slot that has not confirmed within TRIAL_MS reboots (and so rolls back)."""
    import asyncio

    await asyncio.sleep_ms(TRIAL_MS)
    if ota.trial():
        await reboot_after(0, "OTA version %s unconfirmed after %d ms" % (ota.version(),
                                                                         TRIAL_MS))
