"""What every `meshlink` subcommand module shares: argument helpers, the data
directory, the node config built from flags, logging and the event loop.

Rule: app.py and the subcommand modules import this; it imports none of them
(so no import runs back up from a subcommand to main).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from meshlink.errors import ConfigError

from meshlink_gw.config import Config, NodeConfig, default_data_dir, load_config, override


def setup_logging(verbose: int = 0) -> None:
    level = logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def data_dir_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", type=Path, default=None,
                   help=f"data directory (default {default_data_dir()})")


def node_args(p: argparse.ArgumentParser) -> None:
    """The flags of `meshlink node` (and of `meshlink gateway`, which runs a node)."""
    data_dir_arg(p)
    p.add_argument("--listen", metavar="HOST:PORT", help="TCP address to listen on "
                   "(default 127.0.0.1:7400; port 0 picks a free one)")
    p.add_argument("--peer", action="append", default=[], metavar="[NODE_ID@]HOST:PORT",
                   help="static peer to keep a link to (repeatable); with NODE_ID@ only "
                   "that identity is accepted there, else the first one met is pinned")
    p.add_argument("--config", type=Path, help="TOML config file ([node] table)")
    p.add_argument("--name", help="this node's name, announced to the mesh (1-32 of "
                   "letters, digits, '.', '_', '-')")
    p.add_argument("--dashboard", metavar="HOST:PORT", help="serve the dashboard and "
                   "/metrics here (off by default; use 127.0.0.1:PORT)")
    p.add_argument("--router", help="routing strategy: meshlink (default), seed, flood")
    p.add_argument("--discovery", action="store_true", default=None,
                   help="find peers on the LAN by UDP broadcast beacons")
    p.add_argument("--network-key-file", metavar="FILE", type=Path,
                   help="optional 32-byte network key: a file of 64 hex characters, mode 0600")
    p.add_argument("--network-key", metavar="HEX",
                   help="the network key itself (visible to every local user in the process "
                   "list: prefer --network-key-file)")
    p.add_argument("--routing-log", type=Path, help="write every routing decision as JSONL here")
    p.add_argument("--uvloop", action="store_const", const="uvloop", dest="event_loop",
                   help="run on uvloop instead of the standard asyncio loop")
    p.add_argument("-v", "--verbose", action="count", default=1)


def claim_data_dir(path: Path) -> Any:
    """For a long-running node or gateway: new files owner-only (umask 077),
    the directory 0700 and its files 0600, and its lock held (a second process
    on it fails with "data directory in use by PID N"). Returns the lock."""
    from meshlink_gw.node.datadir import DataDirLock, secure_data_dir

    os.umask(0o077)
    secure_data_dir(path)
    lock = DataDirLock(path)
    lock.acquire()
    return lock


def data_dir(args: argparse.Namespace) -> Path:
    return args.data_dir or default_data_dir()


def node_config_from_args(args: argparse.Namespace, file: Config | None = None) -> NodeConfig:
    """The validated NodeConfig from --config (file: already loaded) plus flags;
    --peer adds to the file's peers. Raises ConfigError."""
    file = file or load_config(args.config)
    overrides = {"data_dir": args.data_dir, "listen": args.listen,
                 "peers": args.peer or None, "router": args.router,
                 "discovery": args.discovery, "network_key": args.network_key,
                 "network_key_file": args.network_key_file,
                 "routing_log": args.routing_log, "event_loop": args.event_loop,
                 "name": getattr(args, "name", None),
                 "dashboard": getattr(args, "dashboard", None)}
    base = file.node
    if args.network_key_file is not None:  # the flag replaces the file's key
        base = dataclasses.replace(base, network_key=None)
    cfg = override(base, overrides)
    if args.peer:
        cfg = dataclasses.replace(cfg, peers=file.node.peers + cfg.peers)
    return cfg


def run_loop(cfg: NodeConfig, coro: Coroutine[Any, Any, None]) -> None:
    """Run coro on the configured event loop (asyncio, or uvloop if chosen)."""
    if cfg.event_loop == "uvloop":
        try:
            import uvloop
        except ImportError:
            coro.close()  # never awaited: close it so Python does not warn
            raise ConfigError("event_loop = 'uvloop' but uvloop is not installed")
        uvloop.run(coro)
    else:
        asyncio.run(coro)
