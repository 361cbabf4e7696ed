"""The `meshlink` command line.

Rule: the only place that prints for humans and turns errors into exit codes
(0 ok, 1 failed, 2 usage/config). Everything else raises typed errors.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import signal
import sys
from pathlib import Path

from meshlink.errors import ConfigError, MeshLinkError

from meshlink_gw import control
from meshlink_gw.config import Config, NodeConfig, default_data_dir, load_config, override

log = logging.getLogger("meshlink.cli")


def setup_logging(verbose: int = 0) -> None:
    level = logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _data_dir_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", type=Path, default=None,
                   help=f"data directory (default {default_data_dir()})")


def _node_args(p: argparse.ArgumentParser) -> None:
    _data_dir_arg(p)
    p.add_argument("--listen", metavar="HOST:PORT", help="TCP address to listen on "
                   "(default 127.0.0.1:7400; port 0 picks a free one)")
    p.add_argument("--peer", action="append", default=[], metavar="HOST:PORT",
                   help="static peer to keep a link to (repeatable)")
    p.add_argument("--config", type=Path, help="TOML config file ([node] table)")
    p.add_argument("--router", help="routing strategy: meshlink (default), seed, flood")
    p.add_argument("--discovery", action="store_true", default=None,
                   help="find peers on the LAN by UDP broadcast beacons")
    p.add_argument("--network-key", metavar="HEX", help="optional 32-byte network key (hex)")
    p.add_argument("--routing-log", type=Path, help="write every routing decision as JSONL here")
    p.add_argument("--uvloop", action="store_const", const="uvloop", dest="event_loop",
                   help="run on uvloop instead of the standard asyncio loop")
    p.add_argument("-v", "--verbose", action="count", default=1)


def node_config_from_args(args: argparse.Namespace, file: Config | None = None) -> NodeConfig:
    """The validated NodeConfig from --config (file: already loaded) plus flags;
    --peer adds to the file's peers. Raises ConfigError."""
    file = file or load_config(args.config)
    overrides = {"data_dir": args.data_dir, "listen": args.listen,
                 "peers": args.peer or None, "router": args.router,
                 "discovery": args.discovery, "network_key": args.network_key,
                 "routing_log": args.routing_log, "event_loop": args.event_loop}
    cfg = override(file.node, overrides)
    if args.peer:
        cfg = dataclasses.replace(cfg, peers=file.node.peers + cfg.peers)
    return cfg


def _data_dir(args: argparse.Namespace) -> Path:
    return args.data_dir or default_data_dir()


# -- commands ------------------------------------------------------------------
def cmd_keygen(args: argparse.Namespace) -> int:
    from meshlink_gw.crypto.identity import KEY_FILENAME, Identity

    created = not (_data_dir(args) / KEY_FILENAME).exists()
    ident = Identity.load_or_create(_data_dir(args))
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


async def run_until_signal(node, ctl: control.ControlServer) -> None:
    """Start node and control socket; stop both cleanly on SIGINT/SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await node.start()
    await ctl.start()
    print(json.dumps({"event": "started", "node_id": node.node_id,
                      "listen": "%s:%d" % node.listen_addr}), flush=True)
    try:
        await stop.wait()
    finally:
        log.info("stopping")
        await ctl.close()
        await node.stop()


def run_loop(cfg: NodeConfig, coro) -> None:
    """Run coro on the configured event loop (asyncio, or uvloop if chosen)."""
    if cfg.event_loop == "uvloop":
        try:
            import uvloop
        except ImportError:
            raise ConfigError("event_loop = 'uvloop' but uvloop is not installed")
        uvloop.run(coro)
    else:
        asyncio.run(coro)


def cmd_node(args: argparse.Namespace) -> int:
    cfg = node_config_from_args(args)
    run_loop(cfg, _run_node(cfg))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    st = asyncio.run(control.request(_data_dir(args) / "control.sock", {"cmd": "status"}))
    if args.json:
        print(json.dumps(st))
        return 0
    print(f"node     {st['node_id']}\nlisten   {st['listen']}\nrouter   {st['router']}")
    print(f"peers    {len(st['peers'])}")
    for p in st["peers"]:
        rtt = "-" if p["rtt_ms"] is None else f"{p['rtt_ms']:.2f} ms"
        score = "-" if p["score"] is None else f"{p['score']:.3f}"
        print(f"  {p['node_id']}  {p['address']:<21} rtt {rtt:<10} score {score}")
    return 0


def cmd_send(args: argparse.Namespace) -> int:
    req = {"cmd": "send", "to": None if args.broadcast else args.to, "text": args.text}
    res = asyncio.run(control.request(_data_dir(args) / "control.sock", req, timeout_s=None))
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
    data_dir = _data_dir(args)
    if not args.follow and not (data_dir / "control.sock").exists():
        from meshlink_gw.store import Inbox  # node not running: read the inbox directly

        inbox = Inbox(data_dir / "meshlink.db")
        for rec in inbox.since(0):
            _print_received(rec.to_json(), args.json)
        return 0

    async def follow() -> None:
        req = {"cmd": "recv", "follow": args.follow}
        async for item in control.stream(data_dir / "control.sock", req):
            _print_received(item, args.json)

    try:
        asyncio.run(follow())
    except KeyboardInterrupt:
        pass
    return 0


def _print_received(item: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(item), flush=True)
        return
    body = item.get("text", item.get("data"))
    to = item["to"] or "*"
    print(f"[{item['seq']}] from {item['from']} to {to} hops {item['hops']}: {body}", flush=True)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="meshlink", description="MeshLink post-quantum mesh")
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("keygen", help="create this node's identity (keys mode 0600)")
    _data_dir_arg(p)
    p.set_defaults(func=cmd_keygen)
    p = sub.add_parser("node", help="run a full node until SIGINT/SIGTERM")
    _node_args(p)
    p.set_defaults(func=cmd_node)
    p = sub.add_parser("status", help="show node ID, listen address and peers")
    _data_dir_arg(p)
    p.add_argument("--json", action="store_true", help="one JSON object")
    p.set_defaults(func=cmd_status)
    p = sub.add_parser("send", help="send a directed or broadcast message")
    _data_dir_arg(p)
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--to", metavar="NODE_ID")
    g.add_argument("--broadcast", action="store_true")
    p.add_argument("text")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_send)
    p = sub.add_parser("recv", help="print received messages")
    _data_dir_arg(p)
    p.add_argument("--follow", action="store_true", help="keep printing new messages")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(func=cmd_recv)
    _add_optional_commands(sub)
    return ap


def _add_optional_commands(sub) -> None:
    """Subcommands that live in their own modules (simulator, gateway, boards)."""
    for module_name in ("meshlink_gw.sim.cli", "meshlink_gw.gateway_cli"):
        try:
            module = __import__(module_name, fromlist=["add_parser"])
        except ImportError:
            continue
        module.add_parser(sub)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(getattr(args, "verbose", 0))
    try:
        return int(args.func(args) or 0)
    except ConfigError as e:
        print(f"meshlink: config error: {e}", file=sys.stderr)
        return 2
    except MeshLinkError as e:
        print(f"meshlink: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
