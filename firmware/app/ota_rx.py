# Over-the-air updates: one transfer into the slot that is not running
# (docs/BOARDS.md "Over-the-air updates"; records in docs/PROTOCOL.md §8.1).
# Imported by app/ota.py at the first "begin" and dropped after it: the code
# is kept small because the board's heap is nearly full (112K). Rules: the
# manifest (read line by line, never buffered whole) must hash to the value
# this board's MAC covers, and every file must match its manifest SHA-256,
# before ota.write switches slots (one rename). A failure removes the
# staged slot. One file open and one SHA-256 at a time.
import hashlib
import os

from meshlink._compat import b64decode, ct_equal
from meshlink.hmac256 import hkdf, hmac_sha256

from app import ota, platform

MAX_MANIFEST_BYTES = 16384
MAX_FILE_BYTES = 262144
ACK_EVERY = 2  # chunks per cumulative ack (the gateway keeps a window of 2)
_OK = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./"


class OtaError(Exception):
    pass


def tag(psk, manifest_sha256):
    """HMAC-SHA256(HKDF(psk, "meshlink ota v1"), "meshlink-ota-manifest" || hash)."""
    return hmac_sha256(hkdf(b"", psk, b"meshlink ota v1", 32), b"meshlink-ota-manifest",
                       manifest_sha256)


def _rm(path):
    try:
        names = os.listdir(path)
    except OSError:
        return
    for name in names:
        sub = path + "/" + name
        if os.stat(sub)[0] & 0x4000:
            _rm(sub)
        else:
            os.remove(sub)
    os.rmdir(path)


def _mkdirs(path):
    cur = "/" if path[:1] == "/" else ""
    for part in path.split("/"):
        if part:
            cur += part
            try:
                os.mkdir(cur)
            except OSError:
                pass  # exists
            cur += "/"


def _check(ok, why):
    if not ok:
        raise OtaError(why)


class Receiver:
    """One transfer (begin, chunks) for the Ota object that owns the state."""

    def __init__(self, cfg, owner, obj):
        """From a "begin" record. Raises OtaError (refused), ValueError."""
        _check(not owner.reboot and not owner.trial(), "not now (rebooting or on trial)")
        self.id, mlen, mh = obj["id"], obj["mlen"], bytes.fromhex(obj["mh"])
        _check(type(self.id) is str and len(self.id) <= 16, "bad id")
        _check(type(mlen) is int and 0 < mlen <= MAX_MANIFEST_BYTES, "bad manifest length")
        _check(len(mh) == 32 and ct_equal(tag(cfg.psk, mh), bytes.fromhex(obj["tag"])),
               "manifest MAC does not verify")
        self.owner, self.board, self.mh, self.mlen = owner, cfg.board, mh, mlen
        cur = owner.state["slot"] if owner.state else ""
        self.slot = "ota/b" if cur == "ota/a" else "ota/a"
        self.dir = ota.path(self.slot) + "/"
        _rm(self.dir[:-1])
        _mkdirs(self.dir[:-1])
        self.off = self.n = self.pct = self.fi = self.fdone = self.mfed = 0
        # the file table, compact (a tuple per file cost ~250 bytes of heap on the unix
        # port; paths, sizes (small ints) and one bytearray of SHA-256s cost ~100)
        self.hash, self.line, self.files, self.sizes = hashlib.sha256(), b"", [], []
        self.shas = bytearray()
        self.ver = self.total = self.f = None
        self.board_ok = self.hdr = False
        platform.log("OTA begin id=%s manifest=%d bytes into %s" % (self.id, mlen, self.slot))

    def chunk(self, obj):
        """A "chunk" record -> the reply (an ack, done) or None. Raises OtaError."""
        if obj["off"] != self.off:  # lost or repeated chunk: say where we are
            return self.ack()
        data = b64decode(obj["data"])
        _check(len(data) > 0, "empty chunk")
        i = 0
        while i < len(data):
            i += self._feed(memoryview(data)[i:])
        self.off += len(data)
        self.n += 1
        if self.total is not None:
            if self.off == self.total:
                return self._finish()
            pct = self.off * 100 // self.total
            if pct >= self.pct + 25:
                self.pct = pct - pct % 25
                platform.log("OTA progress %d%% (%d of %d bytes)" % (self.pct, self.off,
                                                                   self.total))
        return self.ack() if self.n % ACK_EVERY == 0 else None

    def ack(self):
        return {"t": "ota", "op": "ack", "id": self.id, "off": self.off}

    def _feed(self, data):
        """Consume a prefix of data (manifest, or the current file) -> its length."""
        if self.total is None:  # the manifest, line by line
            n = min(len(data), self.mlen - self.mfed)
            part = bytes(data[:n])
            self.mfed += n
            self.hash.update(part)
            self.line += part
            j = self.line.find(b"\n")
            while j >= 0:
                self._entry(self.line[:j].decode().split(" "))
                self.line = self.line[j + 1:]
                j = self.line.find(b"\n")
            _check(len(self.line) <= 160, "manifest line too long")
            if self.mfed == self.mlen:
                self._manifest()
            return n
        _check(self.fi < len(self.files), "more bytes than the manifest lists")
        fi = self.fi
        path, size = self.files[fi], self.sizes[fi]
        if self.f is None:
            full = self.dir + path
            _mkdirs(full[:full.rfind("/")])
            self.f, self.hash = open(full, "wb"), hashlib.sha256()
        n = min(len(data), size - self.fdone)
        self.f.write(data[:n])
        self.hash.update(data[:n])
        self.fdone += n
        if self.fdone == size:
            self.f.close()
            self.f = None
            if not ct_equal(self.hash.digest(), self.shas[fi * 32:fi * 32 + 32]):
                raise OtaError("%s: SHA-256 differs from the manifest" % path)
            self.fi += 1
            self.fdone = 0
        return n

    def _entry(self, w):
        """One manifest line: trusted only once the whole manifest's SHA-256
        matched (_manifest), which is before any file byte is written."""
        if not self.hdr:
            _check(w == ["meshlink-firmware", "1"], "not a firmware manifest")
            self.hdr = True
        elif w[0] == "board" and len(w) == 2:
            _check(w[1] == self.board, "manifest is for board %s" % w[1])
            self.board_ok = True
        elif w[0] == "version" and len(w) == 2 and 0 < len(w[1]) <= 32:
            self.ver = w[1]
        elif w[0] == "file" and len(w) == 4:
            size, sha, path = int(w[1]), bytes.fromhex(w[2]), w[3]
            _check(0 <= size <= MAX_FILE_BYTES and len(sha) == 32 and 0 < len(path) <= 64
                   and path[0] != "/" and ".." not in path and path != "main.py"
                   and path[:3] != "ota" and path != "config.json"
                   and all(c in _OK for c in path), "bad manifest entry")
            self.files.append(path)
            self.sizes.append(size)
            self.shas += sha
        else:
            raise OtaError("bad manifest line")

    def _manifest(self):
        _check(not self.line, "manifest does not end with a newline")
        _check(ct_equal(self.hash.digest(), self.mh), "manifest SHA-256 differs from the MACed")
        _check(self.files and self.ver and self.board_ok, "manifest lacks board/version/files")
        self.total = self.mlen
        for size in self.sizes:
            self.total += size
        while self.fi < len(self.files) and self.sizes[self.fi] == 0:
            self._feed(b"")  # empty files
        platform.log("OTA manifest version=%s files=%d bytes=%d" % (self.ver, len(self.files),
                                                                  self.total))

    def _finish(self):
        while self.fi < len(self.files):  # trailing empty files
            self._feed(b"")
        st = self.owner.state or {"slot": "", "ver": "factory"}
        ota.write({"slot": self.slot, "ver": self.ver, "prev": st["slot"],
                       "prev_ver": st["ver"], "trial": 1, "note": ""})
        self.owner.reboot = True
        platform.log("OTA verified version=%s (%d bytes, %d files); switched to %s, rebooting"
                     % (self.ver, self.total, len(self.files), self.slot))
        return {"t": "ota", "op": "done", "id": self.id, "ver": self.ver}

    def drop(self, why):
        """End this transfer: close and remove the staged slot."""
        if self.f is not None:
            self.f.close()
        _rm(self.dir[:-1])
        platform.log("OTA failed id=%s: %s; still running %s" % (self.id, why,
                                                                 self.owner.version()))
