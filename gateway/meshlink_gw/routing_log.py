"""JSONL log of routing decisions (features and outcome), one object per line.

Rule: the router produces the records; this only appends them to a file,
line-buffered so a crash loses at most the current line.
"""

from __future__ import annotations

import json
from pathlib import Path


class RoutingLog:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(path, "a", buffering=1, encoding="utf-8")

    def write(self, record: dict) -> None:
        self._f.write(json.dumps(record, separators=(",", ":")) + "\n")

    def close(self) -> None:
        self._f.close()
