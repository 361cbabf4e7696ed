"""Probes: `meshlink ping` and `meshlink trace` payloads (docs/PROTOCOL.md §12).

Rule: pure functions, no I/O. A probe is a directed mesh message whose data
is exactly the canonical JSON {"kind":"probe","nonce":HEX16,"trace":0|1}.
Its destination (or the gateway serving it) acknowledges it like any directed
message but never stores it; with "trace":1 it also sends back a directed
{"kind":"trace","nonce":HEX16,"path":[...]} carrying the path the probe
arrived with, which the origin matches by nonce and does not store either.
"""

from __future__ import annotations

from meshlink import cjson
from meshlink.errors import DecodeError
from meshlink.nodeid import is_id

NONCE_HEX = 16
_PROBE_KEYS = ["kind", "nonce", "trace"]
_TRACE_KEYS = ["kind", "nonce", "path"]


def probe_data(nonce: str, trace: bool) -> bytes:
    return cjson.dumps({"kind": "probe", "nonce": nonce, "trace": 1 if trace else 0})


def trace_data(nonce: str, path: list[str]) -> bytes:
    return cjson.dumps({"kind": "trace", "nonce": nonce, "path": list(path)})


def _load(data: bytes, mark: bytes) -> dict | None:
    if mark not in data:
        return None
    try:
        obj = cjson.loads(data)
    except DecodeError:
        return None
    return obj if type(obj) is dict else None


def _nonce_ok(nonce: object) -> bool:
    return (type(nonce) is str and len(nonce) == NONCE_HEX
            and all(c in "0123456789abcdef" for c in nonce))


def parse_probe(data: bytes) -> dict | None:
    """{"nonce", "trace"} if data is a probe, else None."""
    obj = _load(data, b'"kind":"probe"')
    if (obj is None or sorted(obj) != _PROBE_KEYS or obj["kind"] != "probe"
            or not _nonce_ok(obj["nonce"]) or type(obj["trace"]) is not int
            or obj["trace"] not in (0, 1)):
        return None
    return {"nonce": obj["nonce"], "trace": obj["trace"] == 1}


def parse_trace(data: bytes) -> dict | None:
    """{"nonce", "path"} if data is a trace reply, else None."""
    obj = _load(data, b'"kind":"trace"')
    if (obj is None or sorted(obj) != _TRACE_KEYS or obj["kind"] != "trace"
            or not _nonce_ok(obj["nonce"]) or type(obj["path"]) is not list
            or not all(type(p) is str and is_id(p) for p in obj["path"])):
        return None
    return {"nonce": obj["nonce"], "path": obj["path"]}
