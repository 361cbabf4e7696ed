"""`meshlink board update-key | release | update`: signed over-the-air updates.

Rule: argument parsing and human output only; the work is in
meshlink_gw.boards.ota (keys, releases) and the running gateway's board
service (transfers), asked over the control socket.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from meshlink.errors import ConfigError, TransportError

from meshlink_gw.boards import ota
from meshlink_gw.boards.registry import BOARD_TYPES
from meshlink_gw.cli.common import data_dir, data_dir_arg
from meshlink_gw.node import control

DONE = ("updated", "failed", "rolled_back")


def _ask(args: argparse.Namespace, req: dict) -> Any:
    sock = data_dir(args) / "control.sock"
    if not sock.exists():
        raise TransportError(f"no gateway is running on {data_dir(args)}: updates go over "
                             "the running gateway's board links")
    return asyncio.run(control.request(sock, req, 30.0))


def cmd_update_key(args: argparse.Namespace) -> int:
    out = Path(args.out) if args.out else data_dir(args)
    pub = ota.generate_update_key(out, force=args.force)
    print(f"update key written to {out / ota.KEY_FILE} (mode 0600; keep it off the gateway "
          f"if you can), public key {out / ota.PUB_FILE}")
    print(f"ed25519 {pub['ed25519']}\nml-dsa-65 {pub['mldsa65'][:32]}... "
          f"({len(pub['mldsa65']) // 2} bytes)")
    return 0


def _progress(i: int, n: int, what: str) -> None:
    if sys.stdout.isatty():
        print(f"\r  [{i}/{n}] {what:<40}", end="" if i < n else "\n", flush=True)


def cmd_release(args: argparse.Namespace) -> int:
    key = Path(args.key) if args.key else data_dir(args) / ota.KEY_FILE
    out = ota.build_release(data_dir(args), args.board, args.version, key,
                            progress=_progress)
    _b, _v, files = ota.decode_manifest((out / ota.MANIFEST_FILE).read_bytes())
    total = sum(f["size"] for f in files)
    print(f"release {args.board} {args.version}: {len(files)} files, {total} bytes, "
          f"signed (Ed25519 + ML-DSA-65) in {out}")
    return 0


def _release_path(args: argparse.Namespace, board_type: str) -> Path:
    cand = Path(args.release)
    if cand.is_dir():
        return cand.resolve()
    path = ota.release_dir(data_dir(args), board_type, args.release)
    if not path.is_dir():
        raise ConfigError(f"no release {args.release!r} for {board_type} (looked in {path}); "
                          "build one with `meshlink board release VERSION --board "
                          f"{board_type}`")
    return path


def cmd_update(args: argparse.Namespace) -> int:
    if bool(args.all) == bool(args.names):
        raise ConfigError("name the boards to update, or --all")
    rows = _ask(args, {"cmd": "board_list"})
    by_name = {r["name"]: r for r in rows if not r.get("revoked")}
    names = sorted(by_name) if args.all else args.names
    for n in names:
        if n not in by_name:
            raise ConfigError(f"no (unrevoked) board named {n!r}")
    started: list[dict] = []
    for board_type in sorted({by_name[n]["board"] for n in names}):
        group = [n for n in names if by_name[n]["board"] == board_type]
        release = _release_path(args, board_type)
        started += _ask(args, {"cmd": "board_update", "names": group,
                               "release": str(release)})
    print(f"updating {len(started)} board(s) to {started[0]['version']}", flush=True)
    deadline = time.monotonic() + args.timeout_s
    shown: dict[str, str] = {}
    while True:
        rows = _ask(args, {"cmd": "board_update_status", "names": names})
        for r in rows:
            pct = 100 * r["acked"] // max(1, r["bytes"])
            line = f"{r['board']}: {r['state']} {pct}% of {r['bytes']} bytes"
            if r["error"]:
                line += f" ({r['error']})"
            if shown.get(r["board"]) != line:
                shown[r["board"]] = line
                print("  " + line, flush=True)
        if all(r["state"] in DONE for r in rows) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    ok = [r for r in rows if r["state"] == "updated"]
    if args.json:
        print(json.dumps(rows))
    print(f"{len(ok)} of {len(rows)} board(s) updated", flush=True)
    return 0 if len(ok) == len(rows) else 1


def add_parsers(bsub: Any) -> None:
    """Add update-key, release and update under `meshlink board`."""
    p = bsub.add_parser("update-key", help="generate the operator's update key "
                        "(Ed25519 + ML-DSA-65) that signs firmware releases")
    p.add_argument("--out", metavar="DIR", help="where to write it (default: the data dir)")
    p.add_argument("--force", action="store_true", help="replace an existing key")
    data_dir_arg(p)
    p.set_defaults(func=cmd_update_key)

    p = bsub.add_parser("release", help="build and sign a firmware release for a board "
                        "type (what `board update` sends)")
    p.add_argument("version")
    p.add_argument("--board", required=True, choices=BOARD_TYPES)
    p.add_argument("--key", metavar="FILE", help=f"the update key (default DATA_DIR/"
                   f"{ota.KEY_FILE})")
    data_dir_arg(p)
    p.set_defaults(func=cmd_release)

    p = bsub.add_parser("update", help="send a signed release to boards over their board "
                        "link (UDP/TCP) through the running gateway")
    p.add_argument("names", nargs="*", metavar="NAME")
    p.add_argument("--all", action="store_true", help="every registered board")
    p.add_argument("--release", required=True, metavar="VERSION|DIR")
    p.add_argument("--timeout-s", type=float, default=600.0)
    p.add_argument("--json", action="store_true")
    data_dir_arg(p)
    p.set_defaults(func=cmd_update)
