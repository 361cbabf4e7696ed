"""`meshlink board add | bundle | list | revoke | flash | run`: provision boards.

Rule: argument parsing and human output only; the work is in meshlink_gw.boards
(registry, bundle). Errors are raised typed and turned into exit codes by
cli/app.py (ConfigError -> 2, other MeshLinkError -> 1).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from typing import Any

from meshlink.errors import ConfigError, TransportError
from meshlink.nodeid import is_id

from meshlink_gw.boards import bundle as board_bundle
from meshlink_gw.boards.registry import BOARD_TYPES, BoardRegistry
from meshlink_gw.cli.common import data_dir, data_dir_arg
from meshlink_gw.config import parse_hostport
from meshlink_gw.node import control


# -- meshlink board ... -----------------------------------------------------------------
def _control(args: argparse.Namespace, req: dict, timeout_s: float = 10.0) -> Any | None:
    """Ask a running gateway; None if none runs on this data directory."""
    sock = data_dir(args) / "control.sock"
    if not sock.exists():
        return None
    try:
        return asyncio.run(control.request(sock, req, timeout_s))
    except TransportError:
        return None


def _parse_json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as e:
        raise ConfigError(f"{what}: not valid JSON ({e})")


def _apply_config_options(cfg: dict[str, Any], args: argparse.Namespace) -> None:
    """--gateway/--transport/--wifi-*/--sensor/--route/--rule/--set onto config.json."""
    if getattr(args, "transport", None):
        cfg["transport"] = args.transport
    if getattr(args, "gateway", None) is not None:
        if args.gateway in ("", "discover", "none"):
            cfg["gateway"] = None
        else:
            parse_hostport(args.gateway, what="--gateway")
            cfg["gateway"] = args.gateway
    if getattr(args, "wifi_ssid", None) is not None:
        cfg["wifi"] = {"ssid": args.wifi_ssid, "password": args.wifi_password or ""}
    _apply_provision_options(cfg, args)
    if args.sensor:
        cfg["sensors"] = [_parse_json(s, "--sensor") for s in args.sensor]
    for route in args.route or []:
        sensor, sep, to = route.partition("=")
        if not sep or not sensor:
            raise ConfigError(f"--route {route!r}: expected SENSOR=TO (TO: a node ID, "
                              "broadcast or gateway)")
        if to not in ("broadcast", "gateway") and not is_id(to):
            raise ConfigError(f"--route {route!r}: TO must be a node ID, broadcast or gateway")
        cfg.setdefault("routes", []).append({"sensor": sensor, "to": to})
    for rule in args.rule or []:
        cfg.setdefault("rules", []).append(_parse_json(rule, "--rule"))
    for item in args.set or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected KEY=JSON")
        if key in ("board_id", "psk", "node_id", "name", "board"):
            raise ConfigError(f"--set {key}: provisioned by the registry, not settable")
        cfg[key] = _parse_json(value, f"--set {key}")
    _apply_serial_options(cfg, args)
    _apply_ble_options(cfg, args)


def _apply_provision_options(cfg: dict[str, Any], args: argparse.Namespace) -> None:
    """--no-wifi/--provision-port: no WiFi secrets in config.json; the board takes
    them over a serial line from `meshlink board provision` (docs/BOARDS.md)."""
    port = getattr(args, "provision_port", None)
    if not getattr(args, "no_wifi", False) and port is None:
        return
    if getattr(args, "wifi_ssid", None) is not None:
        raise ConfigError("--no-wifi/--provision-port and --wifi-ssid: choose one")
    cfg.pop("wifi", None)
    if port is None and cfg.get("board") == "unix":
        return  # the unix port uses the host's network: nothing to provision
    line = {"port": 0, "baudrate": 115200}  # ESP32: UART 0, the USB serial console
    if port is not None:
        line["port"] = int(port) if port.isdigit() else port
    cfg["provision"] = line


def _apply_ble_options(cfg: dict[str, Any], args: argparse.Namespace) -> None:
    """--ble-name: "ble": {"name"} in config.json (the advertised name; default the board's)."""
    name = getattr(args, "ble_name", None)
    if cfg.get("transport") != "ble":
        if name is not None:
            raise ConfigError("--ble-name needs --transport ble")
        return
    if getattr(args, "gateway", None) not in (None, "", "discover", "none"):
        raise ConfigError("--gateway: a BLE board waits for its gateway to connect")
    if name is not None:
        cfg["ble"] = {"name": name}
    cfg["gateway"] = None  # the gateway connects over BLE


def _apply_serial_options(cfg: dict[str, Any], args: argparse.Namespace) -> None:
    """--serial-port/--serial-baudrate: "serial": {"port", "baudrate"} in config.json."""
    port, baud = getattr(args, "serial_port", None), getattr(args, "serial_baudrate", None)
    if port is None and baud is None:
        if cfg.get("transport") == "serial" and not cfg.get("serial"):
            raise ConfigError("--transport serial needs --serial-port (a tty path on the "
                              "unix port, or a UART id on an ESP32)")
        return
    if cfg.get("transport") != "serial":
        raise ConfigError("--serial-port/--serial-baudrate need --transport serial")
    if getattr(args, "gateway", None) not in (None, "", "discover", "none"):
        raise ConfigError("--gateway: a serial board reaches its gateway over the line")
    serial = dict(cfg.get("serial") or {})
    if port is not None:
        serial["port"] = int(port) if port.isdigit() else port
    serial["baudrate"] = baud or serial.get("baudrate", 115200)
    cfg["serial"] = serial
    cfg["gateway"] = None  # the serial line is the way to the gateway


def _config_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--transport", choices=("udp", "tcp", "serial", "ble"),
                   help="board link transport (default udp; serial: see --serial-port; "
                   "ble: the board advertises, the gateway's [[ble]] entry connects)")
    p.add_argument("--serial-port", metavar="PATH|UART",
                   help="with --transport serial: the board's side of the line, a tty "
                   "path (unix port) or a UART id (ESP32)")
    p.add_argument("--serial-baudrate", type=int, metavar="BAUD",
                   help="with --transport serial (default 115200)")
    p.add_argument("--ble-name", metavar="NAME",
                   help="with --transport ble: the advertised name (default the board name)")
    p.add_argument("--gateway", metavar="HOST:PORT", help="the gateway's board address; "
                   "omit to discover it by its beacon")
    p.add_argument("--wifi-ssid", metavar="SSID")
    p.add_argument("--wifi-password", metavar="PASSWORD")
    p.add_argument("--no-wifi", action="store_true",
                   help="leave WiFi out of config.json: the board takes it over serial from "
                   "`meshlink board provision` (no WiFi password in the bundle)")
    p.add_argument("--provision-port", metavar="PATH|UART",
                   help="with --no-wifi: the board's provisioning line (default UART 0, the "
                   "USB console; a tty path on the unix port)")
    p.add_argument("--sensor", action="append", metavar="JSON",
                   help="a sensor object (repeatable; replaces the board's defaults)")
    p.add_argument("--route", action="append", metavar="SENSOR=TO",
                   help="send SENSOR's readings to TO: a node ID, broadcast or gateway")
    p.add_argument("--rule", action="append", metavar="JSON",
                   help='a rule, e.g. {"from":"*","sensor":"temp","op":">","value":25,'
                   '"action":"relay","arg":1}')
    p.add_argument("--set", action="append", metavar="KEY=JSON",
                   help="any other config.json key, e.g. ping_interval_ms=1000")


def _progress(i: int, n: int, what: str) -> None:
    if sys.stdout.isatty():
        print(f"\r  [{i}/{n}] {what:<40}", end="" if i < n else "\n", flush=True)
    elif i == n:
        print(f"  {n} file(s) in the bundle", flush=True)


def _require_wifi(args: argparse.Namespace) -> None:
    """A real board reaching its gateway over UDP or TCP joins a WiFi network:
    without its name the board could never connect (the unix port uses the
    host's network; serial and BLE boards need none)."""
    transport = args.transport or board_bundle.board_definition(args.board).get(
        "defaults", {}).get("transport", "udp")
    if getattr(args, "no_wifi", False) or getattr(args, "provision_port", None) is not None:
        return  # provisioned over serial later (`meshlink board provision`)
    if args.board != "unix" and transport in ("udp", "tcp") and args.wifi_ssid is None:
        raise ConfigError(f"--board {args.board} over {transport} needs --wifi-ssid SSID and "
                          "--wifi-password PASSWORD: the board joins that WiFi network to "
                          "reach its gateway (or --no-wifi: provision it over serial later; or "
                          "--transport serial or ble)")


def cmd_board_add(args: argparse.Namespace) -> int:
    from meshlink_gw.crypto.identity import Identity

    ddir = data_dir(args)
    if args.board not in BOARD_TYPES:
        raise ConfigError(f"--board: expected one of {', '.join(BOARD_TYPES)}")
    if (args.wifi_password is not None) and args.wifi_ssid is None:
        raise ConfigError("--wifi-password needs --wifi-ssid")
    _require_wifi(args)
    registry = BoardRegistry(ddir)
    try:
        if registry.get(args.name) is not None:
            raise ConfigError(f"a board named {args.name!r} already exists")
        ident = Identity.generate()
        psk, board_id = os.urandom(32), os.urandom(8)

        class _New:
            name, node_id = args.name, ident.node_id
        _New.psk, _New.board_id = psk, board_id  # type: ignore[attr-defined]
        cfg = board_bundle.default_config(_New, args.board, transport=args.transport,
                                          gateway=None, wifi=None)
        _apply_config_options(cfg, args)
        board_bundle.validate_config(cfg)
        rec = registry.add(args.name, args.board, cfg["transport"], psk=psk,
                           board_id=board_id, identity=ident)
        try:
            print(f"building the bundle for {rec.name} ({args.board})", flush=True)
            out = board_bundle.build(ddir, rec.name, args.board, cfg,
                                     progress=None if args.json else _progress)
        except BaseException:
            registry.remove(rec.name)
            raise
    finally:
        registry.close()
    notified = _control(args, {"cmd": "board_reload"}) is not None
    info = {"name": rec.name, "board": args.board, "board_id": rec.board_id.hex(),
            "node_id": rec.node_id, "transport": cfg["transport"], "gateway": cfg["gateway"],
            "bundle": str(out), "gateway_notified": notified}
    if args.json:
        print(json.dumps(info))
    else:
        print(f"board    {rec.name} ({args.board}, {cfg['transport']})\n"
              f"board ID {info['board_id']}\nnode ID  {rec.node_id}\nbundle   {out}\n"
              f"gateway  {cfg['gateway'] or 'discovered by its beacon'}"
              + ("\nthe running gateway serves it now" if notified else ""))
    return 0


def cmd_board_bundle(args: argparse.Namespace) -> int:
    ddir = data_dir(args)
    registry = BoardRegistry(ddir)
    try:
        rec = registry.get(args.name)
    finally:
        registry.close()
    if rec is None:
        raise ConfigError(f"no board named {args.name!r}")
    cfg = board_bundle.load_config(ddir, args.name)
    _apply_config_options(cfg, args)
    out = board_bundle.build(ddir, rec.name, rec.board_type, cfg, progress=_progress)
    print(f"bundle for {rec.name} rebuilt in {out}")
    return 0


def _ago(ms: int | None) -> str:
    if ms is None:
        return "never"
    s = max(0, time.time() - ms / 1000)
    return f"{s:.0f} s ago" if s < 120 else f"{s / 60:.0f} min ago" if s < 7200 else \
        time.strftime("%Y-%m-%d %H:%M", time.localtime(ms / 1000))


def cmd_board_list(args: argparse.Namespace) -> int:
    rows = _control(args, {"cmd": "board_list"})
    running = rows is not None
    if rows is None:
        registry = BoardRegistry(data_dir(args))
        try:
            counts = registry.queue_counts()
            rows = [dict(r.public(), online=False, queued=counts.get(r.name, 0), session=None)
                    for r in registry.all()]
        finally:
            registry.close()
    if args.json:
        print(json.dumps(rows))
        return 0
    if not rows:
        print("no boards; add one with `meshlink board add NAME --board unix`")
        return 0
    print(f"{'NAME':<14} {'BOARD ID':<16} {'NODE ID':<36} {'TRANSPORT':<9} {'ONLINE':<7} "
          f"{'QUEUED':>6}  LAST SEEN")
    for r in rows:
        online = "revoked" if r["revoked"] else ("yes" if r["online"] else
                                                 "asleep" if r.get("asleep") else "no")
        print(f"{r['name']:<14} {r['board_id']:<16} {r['node_id']:<36} {r['transport']:<9} "
              f"{online:<7} {r['queued']:>6}  {_ago(r['last_seen_unix_ms'])}")
    if not running:
        print("(no gateway running on this data directory: online status unknown)")
    return 0


def cmd_board_revoke(args: argparse.Namespace) -> int:
    res = _control(args, {"cmd": "board_revoke", "name": args.name})
    if res is None:
        registry = BoardRegistry(data_dir(args))
        try:
            registry.revoke(args.name)
            dropped = registry.drop_queue(args.name)
        finally:
            registry.close()
        print(f"board {args.name} revoked in the registry ({dropped} queued message(s) "
              "dropped); no gateway is running")
    else:
        print(f"board {args.name} revoked: its session was cut and new ones are refused "
              f"({res['queued_dropped']} queued message(s) dropped)")
    return 0


def cmd_board_flash(args: argparse.Namespace) -> int:
    ddir = data_dir(args)
    bundle = board_bundle.bundle_dir(ddir, args.name)
    if not (bundle / "main.py").exists():
        raise ConfigError(f"board {args.name!r} has no bundle in {bundle}")
    board_bundle.flash(bundle, args.port, mpremote=args.mpremote,
                       progress=lambda line: print(line, flush=True))
    return 0


def _wifi_password(args: argparse.Namespace) -> str:
    """--wifi-password, else $MESHLINK_WIFI_PASSWORD, else a prompt (or a stdin line)."""
    if args.wifi_password is not None:
        return args.wifi_password
    env = os.environ.get("MESHLINK_WIFI_PASSWORD")
    if env is not None:
        return env
    if sys.stdin.isatty():
        import getpass

        return getpass.getpass(f"WiFi password for {args.wifi_ssid!r}: ")
    return sys.stdin.readline().rstrip("\n")


def cmd_board_provision(args: argparse.Namespace) -> int:
    from meshlink_gw.boards.provision import provision_board

    registry = BoardRegistry(data_dir(args))
    try:
        rec = registry.get(args.name)
    finally:
        registry.close()
    if rec is None:
        raise ConfigError(f"no board named {args.name!r}")
    if rec.revoked:
        raise ConfigError(f"board {args.name!r} is revoked")
    password = _wifi_password(args)
    res = asyncio.run(provision_board(
        rec, args.port, args.wifi_ssid, password, baudrate=args.baudrate,
        timeout_s=args.timeout_s, progress=None if args.json else print))
    if args.json:
        print(json.dumps(res))
    else:
        print(f"board {rec.name} took WiFi {args.wifi_ssid!r} and proved it holds its key")
    return 0


def cmd_board_run(args: argparse.Namespace) -> int:
    from meshlink_gw.boards.simboot import run_rebooting

    argv, cwd, env = board_bundle.run_command(data_dir(args), args.name, cpython=args.cpython,
                                              micropython=args.micropython,
                                              heapsize=args.heapsize)
    sleep_ms = board_bundle.load_config(data_dir(args), args.name).get("sleep_ms", 0)
    try:
        if isinstance(sleep_ms, int) and sleep_ms > 0:  # deep sleep = exit, then start again
            from meshlink_gw.boards import simsleep

            return simsleep.run(argv, cwd, env, sleep_ms)
        # a child, booted again when it reboots (an OTA update): boards/simboot.py
        return run_rebooting(argv, str(cwd), env)
    except OSError as e:
        raise ConfigError(f"cannot run {argv[0]}: {e.strerror}")


def add_parser(sub: Any) -> None:
    """Add `board` and its subcommands to the meshlink command line."""
    board = sub.add_parser("board", help="provision, list, revoke, flash and simulate boards")
    bsub = board.add_subparsers(dest="board_command", required=True)

    p = bsub.add_parser("add", help="register a board (fresh PSK and node ID) and build "
                        "its deploy bundle")
    p.add_argument("name")
    p.add_argument("--board", required=True, choices=BOARD_TYPES)
    _config_options(p)
    data_dir_arg(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_board_add)

    p = bsub.add_parser("bundle", help="rebuild a board's bundle (after a firmware update, "
                        "or with changed settings)")
    p.add_argument("name")
    _config_options(p)
    data_dir_arg(p)
    p.set_defaults(func=cmd_board_bundle)

    p = bsub.add_parser("list", help="name, board ID, node ID, transport, online, last seen")
    data_dir_arg(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_board_list)

    p = bsub.add_parser("revoke", help="cut the board's session and refuse new ones")
    p.add_argument("name")
    data_dir_arg(p)
    p.set_defaults(func=cmd_board_revoke)

    p = bsub.add_parser("flash", help="copy the bundle to a real board with mpremote and "
                        "reset it")
    p.add_argument("name")
    p.add_argument("--port", required=True, help="serial port, e.g. /dev/ttyUSB0")
    p.add_argument("--mpremote", help="mpremote executable (default: from PATH)")
    data_dir_arg(p)
    p.set_defaults(func=cmd_board_flash)

    p = bsub.add_parser("provision", help="send a board its WiFi credentials over a serial "
                        "line, sealed under its key (a board added with --no-wifi)")
    p.add_argument("name")
    p.add_argument("--port", required=True, help="serial port, e.g. /dev/ttyUSB0")
    p.add_argument("--baudrate", type=int, default=115200)
    p.add_argument("--wifi-ssid", required=True, metavar="SSID")
    p.add_argument("--wifi-password", metavar="PASSWORD", help="default: "
                   "$MESHLINK_WIFI_PASSWORD, else asked (not echoed)")
    p.add_argument("--timeout-s", type=float, default=30.0)
    data_dir_arg(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_board_provision)

    p = bsub.add_parser("run", help="run the board's bundle as a simulated board on the "
                        "MicroPython unix port (-X heapsize=112K)")
    p.add_argument("name")
    p.add_argument("--cpython", action="store_true",
                   help="run on CPython through a small shim (no MicroPython, e.g. aarch64)")
    p.add_argument("--micropython", help="micropython executable (default: the venv's)")
    p.add_argument("--heapsize", default=board_bundle.HEAPSIZE)
    data_dir_arg(p)
    p.set_defaults(func=cmd_board_run)

    from meshlink_gw.cli.board_ota import add_parsers  # OTA: update-key, release, update
    add_parsers(bsub)

