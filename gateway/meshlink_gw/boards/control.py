"""The board service on the control socket: status, board list, revoke, reload.

Rule: read-only views and thin command handlers over a BoardService; the
work is in service.py.
"""

from __future__ import annotations

from typing import Any

from meshlink.errors import ConfigError


def board_rows(svc: Any, now: int) -> list[dict]:
    """One row per registered board: registry fields, online, queued, session."""
    counts = svc.reg.queue_counts()
    rows = []
    for rec in svc.reg.all():
        link = svc.links.get(rec.name)
        row = rec.public()
        asleep = svc.events.is_asleep(rec.name, now)
        row.update({"online": bool(link and link.online(now, svc.cfg.offline_after_ms)),
                    "asleep": asleep,
                    "queued": counts.get(rec.name, 0),
                    "readings": sorted(svc.latest.get(rec.name, {}).values(),
                                       key=lambda r: r["sensor"]),
                    "session": None if link is None else {
                        "sid": "%08x" % link.session.sid, "via": link.peer.describe(),
                        "records_in": link.records_in, "rate_limited": link.rate_limited,
                        "boot_ctr": link.session.boot_ctr}})
        rows.append(row)
    return rows


def status(svc: Any, now: int) -> dict:
    """Addresses, board counts, refusals and counters of the service, its wired
    links ([[serial]]/[[ble]]) and whatever status_extras add (e.g. mqtt)."""
    extras = {name: fn() for name, fn in svc.status_extras.items()}
    return {
        **extras,
        "links": [runner.status() for runner in svc.runners],
        **svc.cfg.addresses(),
        "udp": None if svc.udp_addr is None else "%s:%d" % svc.udp_addr,
        "tcp": None if svc.tcp_addr is None else "%s:%d" % svc.tcp_addr,
        "boards": sum(1 for r in svc.boards.values() if not r.revoked),
        "online": svc.sessions.online_count(now),
        "half_open": len(svc.half_open),
        "queued": sum(svc.reg.queue_counts().values()),
        "refusals": dict(svc.refusals),
        "stats": dict(svc.stats),
    }


def nodes(svc: Any, node_rows: list[dict]) -> list[dict]:
    """The node's `nodes` list with this gateway's boards filled in: name,
    online, latest readings (revoked boards are left out)."""
    boards = {row["node_id"]: row for row in svc.board_rows() if not row.get("revoked")}
    out = []
    for row in node_rows:
        b = boards.pop(row["node_id"], None)
        if b is None:
            out.append(row)
            continue
        out.append(dict(row, name=b["name"], role="board", gateway=svc.node.node_id,
                        online=b["online"], asleep=b["asleep"], readings=b["readings"]))
    return out


def attach(svc: Any, server: Any) -> None:
    """Register board_list/board_revoke/board_reload and a board-aware status.

    `send` needs nothing extra: the node hands a message for a board's node ID
    to the board's queue and waits for the board's ack (Node.originate).
    """
    node_status = server.handlers.get("status")

    async def status_cmd(req, w):
        out = await node_status(req, w) if node_status else svc.node.status()
        out["gateway"] = svc.status()
        return out

    async def nodes_cmd(req, w):
        return nodes(svc, svc.node.nodes())

    async def board_list(req, w):
        return svc.board_rows()

    async def board_revoke(req, w):
        name = req.get("name")
        if not isinstance(name, str) or svc.reg.get(name) is None:
            raise ConfigError(f"no board named {name!r}")
        return svc.revoke(name)

    async def board_reload(req, w):
        svc.reload()
        return {"boards": len(svc.boards)}

    server.register("status", status_cmd)
    server.register("nodes", nodes_cmd)
    server.register("board_list", board_list)
    server.register("board_revoke", board_revoke)
    server.register("board_reload", board_reload)
