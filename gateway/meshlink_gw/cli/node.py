"""`meshlink keygen | node | status | send | recv | pins`: a full node and its control socket.

Rule: argument parsing and human output only; errors are raised typed and
turned into exit codes by cli/app.py.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import logging
import signal
import sys
import time
from pathlib import Path
from typing import Any

from meshlink.errors import ConfigError

from meshlink_gw.cli.common import (
    claim_data_dir,
    data_dir,
    data_dir_arg,
    node_args,
    node_config_from_args,
    run_loop,
)
from meshlink_gw.config import NodeConfig
from meshlink_gw.node import control

log = logging.getLogger("meshlink.cli")


def cmd_keygen(args: argparse.Namespace) -> int:
    from meshlink_gw.crypto.identity import KEY_FILENAME, Identity

    created = not (data_dir(args) / KEY_FILENAME).exists()
    ident = Identity.load_or_create(data_dir(args))
    print(f"{'created' if created else 'existing'} identity; node ID {ident.node_id}")
    return 0


async def _run_node(cfg: NodeConfig) -> None:
    from meshlink_gw.crypto.identity import Identity
    from meshlink_gw.node import Node

    ident = Identity.load_or_create(cfg.data_dir)
    node = Node(cfg, ident)
    ctl = control.ControlServer(cfg.control_socket())
    control.attach_node_commands(ctl, node)
    await run_until_signal(node, ctl)


async def run_until_signal(node: Any, ctl: control.ControlServer) -> None:
    """Start node and control socket; stop both cleanly on SIGINT/SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    from meshlink_gw.cli.web import start_dashboard

    web = None
    try:
        await node.start()
        web = await start_dashboard(node)
        await ctl.start()
        print(json.dumps({"event": "started", "node_id": node.node_id,
                          "listen": "%s:%d" % node.listen_addr,
                          "dashboard": web.url if web else None}), flush=True)
        await stop.wait()
    finally:
        log.info("stopping")
        await ctl.close()
        if web is not None:
            await web.close()
        await node.stop()


def cmd_node(args: argparse.Namespace) -> int:
    cfg = node_config_from_args(args)
    lock = claim_data_dir(cfg.data_dir)
    try:
        run_loop(cfg, _run_node(cfg))
    finally:
        lock.release()
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    st = asyncio.run(control.request(data_dir(args) / "control.sock", {"cmd": "status"}))
    if args.json:
        print(json.dumps(st))
        return 0
    print(f"node     {st['node_id']}" + (f" ({st['name']})" if st.get("name") else ""))
    print(f"listen   {st['listen']}\nrouter   {st['router']}")
    print(f"peers    {len(st['peers'])}")
    for p in st["peers"]:
        rtt = "-" if p["rtt_ms"] is None else f"{p['rtt_ms']:.2f} ms"
        score = "-" if p["score"] is None else f"{p['score']:.3f}"
        print(f"  {p['node_id']}  {p['address']:<21} rtt {rtt:<10} score {score}")
    return 0


def cmd_send(args: argparse.Namespace) -> int:
    from meshlink_gw.cli.mesh import resolve

    # a name or prefix becomes the one node ID it names; an unknown node fails
    # here at once instead of after the delivery timeout
    to = None if args.broadcast else resolve(args, args.to, "--to")
    req = {"cmd": "send", "to": to, "text": args.text}
    res = asyncio.run(control.request(data_dir(args) / "control.sock", req, timeout_s=None))
    if args.json:
        print(json.dumps(res))
    elif res.get("broadcast"):
        print(f"broadcast {res['message_id']} sent")
    elif res["delivered"]:
        print(f"delivered {res['message_id']} in {res['rtt_ms']} ms "
              f"({res['attempts']} attempt(s))")
    else:
        print(f"failed {res['message_id']}: {res['reason']}")
    return 0 if res.get("broadcast") or res.get("delivered") else 1


def cmd_recv(args: argparse.Namespace) -> int:
    """Print the newest --limit messages (filters --since, --from) straight from
    the inbox, read only (a copy on a read-only disk works too); say so on
    stderr when older ones were left out. --follow then prints new messages
    through the running node's control socket, from the end (--backlog: after
    the newest --limit)."""
    ddir = data_dir(args)
    if ddir.exists() and not ddir.is_dir():
        raise ConfigError(f"--data-dir {ddir}: not a directory")
    after = 0
    db = ddir / "meshlink.db"
    if db.exists() and (args.backlog or not args.follow):
        after = _print_newest(db, args)
    elif db.exists():
        after = _last_seq(db)
    elif not args.follow:
        if not ddir.is_dir():
            raise ConfigError(f"no data directory {ddir}: no node has run there "
                              "(start one with `meshlink node`, or give --data-dir)")
        return 0  # a node ran here but never received anything
    if not args.follow:
        return 0

    async def follow() -> None:
        req = {"cmd": "recv", "follow": True, "after": after}
        async for item in control.stream(ddir / "control.sock", req):
            if args.source is None or item["from"] == args.source:
                _print_received(item, args.json)

    asyncio.run(follow())
    return 0


def _open_inbox(db: Path):
    from meshlink_gw.node.store import Inbox

    return Inbox(db, readonly=True)


def _print_newest(db: Path, args: argparse.Namespace) -> int:
    """Print the newest matching messages; returns the inbox's last seq."""
    inbox = _open_inbox(db)
    try:
        since_ms = None if args.since is None else _since_unix_ms(args.since)
        items, total = inbox.newest(args.limit, since_unix_ms=since_ms, src=args.source)
        for rec in items:
            _print_received(rec.to_json(), args.json)
        if total > len(items):
            print(f"meshlink: showing the newest {len(items)} of {total} messages; "
                  "more with --limit or --since", file=sys.stderr, flush=True)
        return inbox.last_seq()
    finally:
        inbox.close()


def _last_seq(db: Path) -> int:
    inbox = _open_inbox(db)
    try:
        return inbox.last_seq()
    finally:
        inbox.close()


def _since_unix_ms(text: str) -> int:
    """--since: unix milliseconds, an ISO 8601 time, or an age such as 90s, 15m, 2h, 1d."""
    units = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
    try:
        if text[-1:] in units and text[:-1].isdigit():
            return int(time.time() * 1000) - int(text[:-1]) * units[text[-1]]
        if text.isdigit():
            return int(text)
        when = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"--since {text!r}: give unix ms, an ISO 8601 time or an age "
                          "such as 15m") from None
    if when.tzinfo is None:
        when = when.astimezone()  # local time, as typed
    return int(when.timestamp() * 1000)


def _positive_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return n


def _print_received(item: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(item), flush=True)
        return
    body = item.get("text", item.get("data"))
    to = item["to"] or "*"
    print(f"[{item['seq']}] from {item['from']} to {to} hops {item['hops']}: {body}", flush=True)


def cmd_pins(args: argparse.Namespace) -> int:
    """Show the static peers' pinned node IDs, or forget some (--reset)."""
    from meshlink_gw.config.schema import parse_hostport
    from meshlink_gw.node.pins import PinStore

    store = PinStore(data_dir(args))
    if args.reset_all or args.reset:
        key = None
        if args.reset:
            key = "%s:%d" % parse_hostport(args.reset, what="--reset")
        gone = store.reset(key)
        print(f"forgot {len(gone)} pin(s): {', '.join(gone) or '-'}; the next dial "
              "pins whoever answers there")
        return 0 if gone or args.reset_all else 1
    pins = store.load()
    if args.json:
        print(json.dumps(pins, sort_keys=True))
    else:
        for addr, node_id in sorted(pins.items()):
            print(f"{addr}  {node_id}")
    return 0


def add_parser(sub: Any) -> None:
    """Add keygen, node, status, send, recv and pins to the meshlink command line."""
    p = sub.add_parser("keygen", help="create this node's identity (keys mode 0600)")
    data_dir_arg(p)
    p.set_defaults(func=cmd_keygen)
    p = sub.add_parser("node", help="run a full node until SIGINT/SIGTERM")
    node_args(p)
    p.set_defaults(func=cmd_node)
    p = sub.add_parser("status", help="show node ID, listen address and peers")
    data_dir_arg(p)
    p.add_argument("--json", action="store_true", help="one JSON object")
    p.set_defaults(func=cmd_status)
    p = sub.add_parser("send", help="send a directed or broadcast message")
    data_dir_arg(p)
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--to", metavar="NODE", help="node ID, unique ID prefix or name")
    g.add_argument("--broadcast", action="store_true")
    p.add_argument("text")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_send)
    p = sub.add_parser("recv", help="print the newest received messages")
    data_dir_arg(p)
    p.add_argument("--limit", type=_positive_int, default=100, metavar="N",
                   help="at most the newest N messages (default 100)")
    p.add_argument("--since", metavar="WHEN",
                   help="only messages received since WHEN: unix ms, ISO 8601, or 15m/2h/1d")
    p.add_argument("--from", dest="source", metavar="NODE_ID", help="only messages from NODE_ID")
    p.add_argument("--follow", action="store_true",
                   help="keep printing new messages (from now on; see --backlog)")
    p.add_argument("--backlog", action="store_true",
                   help="with --follow: print the newest --limit messages first")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(func=cmd_recv)
    p = sub.add_parser("pins", help="show or reset the node IDs static peers are pinned to")
    data_dir_arg(p)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--reset", metavar="HOST:PORT", help="forget this address's pin")
    g.add_argument("--reset-all", action="store_true", help="forget every pin")
    p.add_argument("--json", action="store_true", help="one JSON object")
    p.set_defaults(func=cmd_pins)
