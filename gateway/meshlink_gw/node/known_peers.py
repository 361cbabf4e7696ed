"""Neighbours this node has linked with, kept across restarts.

Rule: a hint, not a store: <data_dir>/peers.json maps node ID -> [host, port]
(the address we dialled, or the listen port a neighbour announced in its
handshake). A restarted node dials each of them once at start, so its
neighbours need not wait out their reconnect backoff (issue 15). A missing,
unreadable or unwritable file only costs that speed-up (logged at debug).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

log = logging.getLogger("meshlink.node")

FILENAME = "peers.json"
MAX_KNOWN = 64  # the most recently seen neighbours


class KnownPeers:
    """node ID -> (host, port) of neighbours, newest last, saved on change."""

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / FILENAME
        self.addrs: dict[str, tuple[str, int]] = self._load()

    def _load(self) -> dict[str, tuple[str, int]]:
        try:
            raw = json.loads(self.path.read_text())
            return {str(k): (str(v[0]), int(v[1])) for k, v in raw.items()}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, TypeError, KeyError, IndexError, AttributeError) as e:
            log.warning("ignoring %s (%s): known neighbours are a hint", self.path, e)
            return {}

    def remember(self, node_id: str, addr: tuple[str, int]) -> None:
        """Record where node_id listens (saved at once if it changed)."""
        if self.addrs.get(node_id) == addr:
            return
        self.addrs.pop(node_id, None)
        self.addrs[node_id] = addr
        while len(self.addrs) > MAX_KNOWN:
            del self.addrs[next(iter(self.addrs))]
        tmp = self.path.with_name(FILENAME + ".tmp")
        try:
            tmp.write_text(json.dumps({k: list(v) for k, v in self.addrs.items()}))
            os.replace(tmp, self.path)
        except OSError as e:  # a full or read-only disk: only the speed-up is lost
            log.debug("cannot save %s: %s", self.path, e)
