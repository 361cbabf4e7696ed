"""Child-process harnesses (examples/node_proc.py, examples/gateway_proc.py) with the
tests' generous DEADLINE_S as every wait's default: a loaded machine must
never turn a slow start or a slow handshake into a failure."""

from __future__ import annotations

import re
from typing import Any

from examples import gateway_proc as board_proc
from examples.node_proc import NodeProcess
from helpers import DEADLINE_S, poll_until


class GenerousWaits:
    """Mixin for NodeProcess and its subclasses."""

    def start(self, timeout_s: float = DEADLINE_S) -> Any:
        return super().start(timeout_s)  # type: ignore[misc]

    def cli(self, *args: str, timeout_s: float = 4 * DEADLINE_S) -> Any:
        return super().cli(*args, timeout_s=timeout_s)  # type: ignore[misc]

    def wait_peers(self, count: int, timeout_s: float = DEADLINE_S) -> dict[str, Any]:
        return super().wait_peers(count, timeout_s)  # type: ignore[misc]

    def wait_received(self, message_id: str, timeout_s: float = DEADLINE_S) -> dict[str, Any]:
        return super().wait_received(message_id, timeout_s)  # type: ignore[misc]

    def wait_inbox(self, pred, timeout_s: float = DEADLINE_S) -> list[dict[str, Any]]:
        """Poll the inbox (`meshlink recv`) until pred(items) holds; return the items."""
        def check() -> tuple[list[dict[str, Any]]] | None:
            items = self.received()  # type: ignore[attr-defined]
            return (items,) if pred(items) else None
        return poll_until(check, timeout_s, what="inbox condition")[0]


class Node(GenerousWaits, NodeProcess):
    """`meshlink node` as a child process."""


class Gateway(GenerousWaits, board_proc.GatewayProcess):
    """`meshlink gateway` as a child process."""

    def wait_log(self, pattern: str, timeout_s: float = DEADLINE_S,
                 count: int = 1) -> list[re.Match]:
        return super().wait_log(pattern, timeout_s, count)


class Board(board_proc.BoardProcess):
    """`meshlink board run NAME` as a child process."""

    def wait_for(self, pattern: str, timeout_s: float = DEADLINE_S,
                 count: int = 1) -> list[re.Match]:
        return super().wait_for(pattern, timeout_s, count)
