"""`meshlink nodes | ping | trace`: the mesh as this node sees it.

Rule: argument parsing and human output only; the node does the work over
its control socket (nodes, resolve, probe). Errors are raised typed and
turned into exit codes by cli/app.py.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

from meshlink.errors import ConfigError, MeshLinkError
from meshlink.nodeid import is_id, is_name

from meshlink_gw.cli.common import data_dir, data_dir_arg
from meshlink_gw.node import control


def _sock(args: argparse.Namespace) -> Path:
    return data_dir(args) / "control.sock"


def resolve(args: argparse.Namespace, text: str, flag: str = "NODE") -> str:
    """The node ID that text (an ID, a name or a unique ID prefix) names,
    as the running node resolves it.

    Raises:
        ConfigError: text cannot name a node (checked before asking the node).
        LocalProtocolError: no known node, or more than one, matches.
        TransportError: no node is running on this data directory.
    """
    if not (is_id(text) or is_name(text)):
        raise ConfigError(f"{flag} {text!r} is not a node ID, name or ID prefix (a node ID "
                          "is 36 characters of lowercase hex in UUID form; names and IDs "
                          "are listed by `meshlink nodes`)")
    res = asyncio.run(control.request(_sock(args), {"cmd": "resolve", "node": text}))
    return str(res["node_id"])


def label(row: dict) -> str:
    return f"{row['name']} ({row['node_id'][:8]})" if row.get("name") else row["node_id"]


def _reading_text(r: dict) -> str:
    unit = r.get("unit") or ""
    return f"{r['sensor']}={r['value_milli'] / 1000:g}{unit}"


def cmd_nodes(args: argparse.Namespace) -> int:
    rows = asyncio.run(control.request(_sock(args), {"cmd": "nodes"}))
    if args.json:
        print(json.dumps(rows))
        return 0
    names = {r["node_id"]: r["name"] or r["node_id"][:8] for r in rows}
    print(f"{'NODE ID':<36}  {'NAME':<16} {'ROLE':<7} {'HOPS':>4}  {'NEXT HOP':<16} "
          f"{'HEARD':>7} {'RTT':>9}  DETAILS")
    for r in rows:
        hops = "-" if r["hops"] is None else str(r["hops"])
        via = "-" if r["next_hop"] is None else names.get(r["next_hop"], r["next_hop"][:8])
        heard = "-" if r["last_heard_s"] is None else f"{r['last_heard_s']:.0f}s"
        rtt = "-" if r["rtt_ms"] is None else f"{r['rtt_ms']:.1f}ms"
        details = []
        if r["self"]:
            details.append("this node")
        if r.get("gateway") and r["role"] == "board":
            details.append("via gateway " + names.get(r["gateway"], r["gateway"][:8]))
        if "online" in r:
            details.append("online" if r["online"] else "offline")
        details += [_reading_text(x) for x in r.get("readings", [])]
        if not r["reachable"]:
            details.append("unreachable")
        print(f"{r['node_id']:<36}  {r['name'] or '-':<16} {r['role']:<7} {hops:>4}  "
              f"{via:<16} {heard:>7} {rtt:>9}  {', '.join(details)}".rstrip())
    return 0


async def _probe(sock: Path, node_id: str, trace: bool, timeout_s: float) -> dict:
    req = {"cmd": "probe", "to": node_id, "trace": trace, "timeout_s": timeout_s}
    return await control.request(sock, req, timeout_s=timeout_s + 30)


def cmd_ping(args: argparse.Namespace) -> int:
    node_id = resolve(args, args.node)
    print(f"PING {args.node} ({node_id}): {args.count} probe(s), timeout {args.timeout:g} s",
          flush=True)
    rtts: list[float] = []
    for i in range(args.count):
        if i:
            time.sleep(args.interval)
        res = asyncio.run(_probe(_sock(args), node_id, False, args.timeout))
        if res["ok"]:
            rtts.append(res["rtt_ms"])
            print(f"reply from {node_id[:8]}: probe {i + 1} rtt {res['rtt_ms']} ms"
                  + (f" ({res['attempts']} attempts)" if res["attempts"] > 1 else ""),
                  flush=True)
        else:
            print(f"probe {i + 1}: {res['reason']}", flush=True)
    loss = 100 * (args.count - len(rtts)) / args.count
    print(f"--- {args.count} sent, {len(rtts)} answered, {loss:.0f}% loss", end="")
    if rtts:
        print(f", rtt min/avg/max {min(rtts):g}/{sum(rtts) / len(rtts):.1f}/{max(rtts):g} ms")
    else:
        print()
    if not rtts:
        raise MeshLinkError(f"{args.node} did not answer any probe within {args.timeout:g} s "
                            "(is it running and connected? see `meshlink nodes`)")
    return 0


def cmd_trace(args: argparse.Namespace) -> int:
    sock = _sock(args)
    node_id = resolve(args, args.node)
    res = asyncio.run(_probe(sock, node_id, True, args.timeout))
    if not res["ok"] or not res["path"]:
        raise MeshLinkError(f"trace to {args.node}: {res['reason'] or 'no path came back'}")
    rows = {r["node_id"]: r for r in asyncio.run(control.request(sock, {"cmd": "nodes"}))}
    print(f"trace to {args.node} ({node_id}): {len(res['path']) - 1} hop(s), "
          f"end to end rtt {res['rtt_ms']} ms")
    for i, hop in enumerate(res["path"]):
        row = rows.get(hop, {"node_id": hop, "name": ""})
        if i == 0:
            print(f"  0  {label(row)}  (this node)")
            continue
        one = asyncio.run(_probe(sock, hop, False, args.timeout))
        rtt = f"{one['rtt_ms']} ms" if one["ok"] else one["reason"]
        print(f"{i:>3}  {label(row)}  rtt {rtt}", flush=True)
    return 0


def add_parser(sub: Any) -> None:
    """Add nodes, ping and trace to the meshlink command line."""
    p = sub.add_parser("nodes", help="list every node this node knows of (not only peers)")
    data_dir_arg(p)
    p.add_argument("--json", action="store_true", help="one JSON list")
    p.set_defaults(func=cmd_nodes)
    for name, fn, helptext in (
            ("ping", cmd_ping, "measure end-to-end RTT and loss to a node (nothing is "
                               "stored in its inbox)"),
            ("trace", cmd_trace, "show the path to a node, each hop with its RTT")):
        p = sub.add_parser(name, help=helptext)
        data_dir_arg(p)
        p.add_argument("node", metavar="NODE", help="node ID, unique ID prefix or name")
        p.add_argument("--timeout", type=_seconds, default=5.0,
                       help="seconds to wait for each answer (default 5)")
        if name == "ping":
            p.add_argument("-c", "--count", type=_count, default=4, help="probes (default 4)")
            p.add_argument("-i", "--interval", type=_seconds, default=1.0,
                           help="seconds between probes (default 1)")
        p.set_defaults(func=fn)


def _seconds(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        v = -1
    if not 0 < v <= 600:
        raise argparse.ArgumentTypeError(f"expected seconds in (0, 600], got {text!r}")
    return v


def _count(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 10_000:
        raise argparse.ArgumentTypeError(f"expected a count from 1 to 10000, got {text!r}")
    return int(text)


