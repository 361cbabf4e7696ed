"""Pins of static peers: which node ID answers at a configured HOST:PORT.

Rule: one small JSON file in the data directory (mode 0600), read at every
dial so an operator's reset (`meshlink pins --reset`) applies at the next
redial. A peer configured as NODE_ID@HOST:PORT is pinned by the
configuration; a HOST:PORT peer is pinned to the first node ID that completes
a handshake there (trust on first use). A pinned address presenting another
identity fails the handshake (AuthError) and is logged.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from meshlink.nodeid import is_id

log = logging.getLogger("meshlink.pins")

PINS_FILE = "pins.json"


def _key(addr: tuple[str, int]) -> str:
    return "%s:%d" % (addr[0], addr[1])


class PinStore:
    """HOST:PORT -> node ID, persisted in data_dir/pins.json."""

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / PINS_FILE

    def load(self) -> dict[str, str]:
        """Every pin; an unreadable or malformed file counts as no pins (logged)."""
        try:
            raw = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as e:
            log.warning("ignoring unreadable %s: %s", self.path, e)
            return {}
        if not isinstance(raw, dict):
            return {}
        return {k: v for k, v in raw.items() if isinstance(k, str) and is_id(v)}

    def get(self, addr: tuple[str, int]) -> str | None:
        return self.load().get(_key(addr))

    def pin(self, addr: tuple[str, int], node_id: str) -> None:
        pins = self.load()
        pins[_key(addr)] = node_id
        self._save(pins)
        log.warning("pinned %s to node %s (trust on first use; `meshlink pins --reset "
                    "%s` forgets it)", _key(addr), node_id, _key(addr))

    def reset(self, key: str | None) -> list[str]:
        """Forget the pin of HOST:PORT key, or every pin (None); the keys forgotten."""
        pins = self.load()
        gone = list(pins) if key is None else [k for k in pins if k == key]
        for k in gone:
            del pins[k]
        self._save(pins)
        return gone

    def _save(self, pins: dict[str, str]) -> None:
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(pins, f, indent=1, sort_keys=True)
        os.replace(tmp, self.path)
