"""Start the dashboard and /metrics ([node] dashboard) for a node or a gateway.

Rule: wiring only; the server is meshlink_gw.web, the data comes from the
node's (and the board service's) public views.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from meshlink_gw.web.server import WebServer, new_token


def snapshot_of(node: Any, service: Any = None) -> Callable[[], dict]:
    """The /api/state document: status, nodes, links and recent messages."""
    def snapshot() -> dict:
        status = node.status()
        nodes = node.nodes()
        if service is not None:
            from meshlink_gw.boards.control import nodes as with_boards

            status["gateway"] = service.status()
            nodes = with_boards(service, nodes)
        return {"status": status, "nodes": nodes, "links": node.links_view(),
                "messages": list(node.recent)}
    return snapshot


async def start_dashboard(node: Any, service: Any = None) -> WebServer | None:
    """Serve the dashboard if [node] dashboard is set; prints its address
    (with the token) on stderr. Raises OSError if the port is taken."""
    cfg = node.config
    if cfg.dashboard is None:
        return None

    async def trace(text: str) -> dict:
        return await node.probe(await node.resolve_reachable(text), True, 5.0)

    web = WebServer(cfg.dashboard, cfg.dashboard_token or new_token(), snapshot_of(node, service),
                    trace)
    await web.start()
    print(f"dashboard: {web.url}", file=sys.stderr, flush=True)
    return web
