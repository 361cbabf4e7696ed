"""`meshlink gateway`: a full node plus the board service, wired boards and the
MQTT bridge.

Rule: argument parsing and human output only; the work is in meshlink_gw.boards.
Errors are raised typed and turned into exit codes by cli/app.py. The board
service is imported here, at the top, so a missing dependency is reported by
cli/app.py when this module is loaded, not in the middle of a run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
from typing import Any

from meshlink.errors import ConfigError

from meshlink_gw.boards.registry import BoardRegistry
from meshlink_gw.boards.service import BoardService
from meshlink_gw.cli.common import claim_data_dir, node_args, node_config_from_args, run_loop
from meshlink_gw.cli.web import start_dashboard
from meshlink_gw.config import GatewayConfig, MqttConfig, NodeConfig, load_config, override
from meshlink_gw.crypto.identity import Identity
from meshlink_gw.node import Node, control

log = logging.getLogger("meshlink.cli")


def _gateway_args(p: argparse.ArgumentParser) -> None:
    node_args(p)
    p.add_argument("--board-udp", metavar="HOST:PORT",
                   help="UDP address boards reach (default 0.0.0.0:7410; 'off' disables)")
    p.add_argument("--board-tcp", metavar="HOST:PORT",
                   help="TCP address boards reach (default 0.0.0.0:7411; 'off' disables)")
    p.add_argument("--no-beacon", dest="beacon", action="store_const", const=False,
                   default=None, help="do not broadcast the GatewayBeacon for boards")
    p.add_argument("--beacon-port", type=int, help="UDP port of the GatewayBeacon (7399)")
    p.add_argument("--beacon-broadcast", metavar="ADDR",
                   help="broadcast address of the GatewayBeacon (255.255.255.255)")


def gateway_configs_from_args(args: argparse.Namespace) -> tuple[NodeConfig, GatewayConfig]:
    """(NodeConfig, GatewayConfig) from --config plus flags. Raises ConfigError."""
    file = load_config(args.config)
    node_cfg = node_config_from_args(args, file)
    gw_cfg = override(file.gateway, {
        "board_udp": args.board_udp, "board_tcp": args.board_tcp, "beacon": args.beacon,
        "beacon_port": args.beacon_port, "beacon_broadcast": args.beacon_broadcast})
    return node_cfg, gw_cfg


async def _start_mqtt_bridge(mqtt: MqttConfig, node: Node, service: BoardService) -> Any:
    """The MQTT bridge is imported only when [mqtt] is configured (paho-mqtt is
    not needed otherwise)."""
    try:
        from meshlink_gw.bridges.gateway_port import start_bridge
    except ImportError as e:
        raise ConfigError(f"[mqtt] is configured but the MQTT bridge cannot be imported "
                          f"({type(e).__name__}: {e})")
    return await start_bridge(mqtt, node, service)


async def run_gateway(node_cfg: NodeConfig, gw_cfg: GatewayConfig,
                      stop: asyncio.Event | None = None) -> None:
    """Run a gateway (full node + board service + wired boards + MQTT bridge +
    control socket) until stop or a signal."""
    ident = Identity.load_or_create(node_cfg.data_dir)
    node = Node(node_cfg, ident)
    node.role = "gateway"
    registry = BoardRegistry(node_cfg.data_dir)
    service = BoardService(node, gw_cfg, registry)
    ctl = control.ControlServer(node_cfg.control_socket())
    control.attach_node_commands(ctl, node)
    service.attach_control(ctl)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    bridge = web = None
    try:
        await node.start()
        await service.start()
        if gw_cfg.mqtt is not None:
            bridge = await _start_mqtt_bridge(gw_cfg.mqtt, node, service)
        web = await start_dashboard(node, service)
        await ctl.start()
        st = service.status()
        print(json.dumps({"event": "started", "node_id": node.node_id,
                          "listen": "%s:%d" % node.listen_addr, "board_udp": st["udp"],
                          "board_tcp": st["tcp"], "boards": st["boards"],
                          "links": [link["link"] for link in st["links"]],
                          "mqtt": st.get("mqtt", {}).get("broker"),
                          "dashboard": web.url if web else None}), flush=True)
        await stop.wait()
    finally:
        log.info("stopping")
        await ctl.close()
        if web is not None:
            await web.close()
        if bridge is not None:
            await bridge.stop()  # "offline" on the gateway's status topic
        await service.stop()
        await node.stop()
        registry.close()


def cmd_gateway(args: argparse.Namespace) -> int:
    node_cfg, gw_cfg = gateway_configs_from_args(args)
    lock = claim_data_dir(node_cfg.data_dir)
    try:
        run_loop(node_cfg, run_gateway(node_cfg, gw_cfg))
    finally:
        lock.release()
    return 0


def add_parser(sub: Any) -> None:
    """Add `gateway` to the meshlink command line."""
    p = sub.add_parser("gateway", help="run a gateway: a full node plus the board service")
    _gateway_args(p)
    p.set_defaults(func=cmd_gateway)
