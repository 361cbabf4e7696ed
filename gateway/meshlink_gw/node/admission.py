"""Admission of inbound node-link connections before anyone is authenticated.

Rule: no I/O; the caller passes now_ms. Everything here is kept per source
(the remote host, and its prefix: IPv4 /24, IPv6 /64) and is bounded: an
unauthenticated sender gets at most a few half-open handshakes and a few
handshake attempts per second, and the table of sources itself never holds
more than max_sources entries (idle ones are forgotten first). Under load
(LoadGate) an M1 costs a KEM encapsulation only if it carries a cookie.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from meshlink_gw.crypto.cookie import CookieJar
from meshlink_gw.runtime import TokenBucket

MAX_SOURCES = 4096  # hosts and prefixes remembered; the oldest idle ones go first
PREFIX_FACTOR = 4  # a prefix may have this many times a host's allowance


def prefix_of(host: str) -> str:
    """The source prefix of host: /24 for IPv4, /64 for IPv6, else host itself."""
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    bits = 24 if ip.version == 4 else 64
    return str(ipaddress.ip_network(f"{ip}/{bits}", strict=False))


@dataclass
class _Source:
    bucket: TokenBucket
    half_open: int = 0


class Admission:
    """Per-source limits on half-open handshakes and on handshake attempts.

    Args:
        half_open_per_host: handshakes in progress from one host.
        attempts_per_s, attempt_burst: handshake attempts from one host (a
            token bucket); a prefix gets PREFIX_FACTOR times both limits.
    """

    def __init__(self, half_open_per_host: int, attempts_per_s: int, attempt_burst: int,
                 max_sources: int = MAX_SOURCES) -> None:
        self.half_open_per_host = half_open_per_host
        self.attempts_per_s = attempts_per_s
        self.attempt_burst = attempt_burst
        self.max_sources = max_sources
        self._sources: OrderedDict[str, _Source] = OrderedDict()

    def admit(self, host: str, now_ms: int) -> str | None:
        """Count one handshake attempt from host; None if admitted (then call
        done(host) when its handshake ends), else why it is refused."""
        keys = (host, "net:" + prefix_of(host))
        srcs = [self._source(key, i, now_ms) for i, key in enumerate(keys)]
        for i, src in enumerate(srcs):
            if src.half_open >= self.half_open_per_host * (PREFIX_FACTOR if i else 1):
                return "too many handshakes in progress from this " + ("prefix" if i else "host")
        for i, src in enumerate(srcs):
            if not src.bucket.take(now_ms):
                return "handshake attempts over the limit for this " + (
                    "prefix" if i else "host")
        for src in srcs:
            src.half_open += 1
        return None

    def done(self, host: str) -> None:
        """The handshake of an admitted attempt from host ended (either way)."""
        for key in (host, "net:" + prefix_of(host)):
            src = self._sources.get(key)
            if src is not None and src.half_open > 0:
                src.half_open -= 1

    def sources(self) -> int:
        return len(self._sources)

    def _source(self, key: str, is_prefix: int, now_ms: int) -> _Source:
        src = self._sources.get(key)
        if src is None:
            factor = PREFIX_FACTOR if is_prefix else 1
            src = _Source(TokenBucket(self.attempts_per_s * factor,
                                      self.attempt_burst * factor, now_ms))
            self._sources[key] = src
            self._forget_idle()
        else:
            self._sources.move_to_end(key)
        return src

    def _forget_idle(self) -> None:
        """Keep the table bounded: drop the least recently seen sources with no
        handshake in progress (a forgotten source starts with a full bucket,
        which is what it would have after a while anyway)."""
        if len(self._sources) <= self.max_sources:
            return
        for key in list(self._sources):
            if len(self._sources) <= self.max_sources:
                break
            if self._sources[key].half_open == 0:
                del self._sources[key]


class LoadGate:
    """When the node is under load, every M1 must carry a cookie (PROTOCOL.md §5.3.1).

    Under load: `half_open()` (handshakes in progress, the one asking
    included) has reached load_half_open, or more than attempts_per_s M1s
    (all sources) arrived in the last second (a token bucket). Then jar()
    hands the responder the CookieJar; otherwise None (no cookie needed).
    """

    def __init__(self, network_key: bytes | None, load_half_open: int, attempts_per_s: int,
                 half_open: Callable[[], int], now_ms: int) -> None:
        self.cookies = CookieJar(network_key if network_key is not None else bytes(32))
        self.load_half_open = load_half_open
        self._half_open = half_open
        self._m1s = TokenBucket(attempts_per_s, attempts_per_s, now_ms)

    def jar(self, now_ms: int) -> CookieJar | None:
        """Count one M1; the CookieJar if the node is under load, else None."""
        over_rate = not self._m1s.take(now_ms)
        if over_rate or self._half_open() >= self.load_half_open:
            return self.cookies
        return None
