"""The MQTT bridge inside a gateway: the MeshPort, and the hooks that feed it.

Rule: the only place where the MQTT bridge meets the node and the board
service. Uplink: every board reading (publish_reading), every board coming
or going (set_node_online), and every mesh message addressed to the gateway
itself (publish_message, origin "mesh"), except its own boards' readings,
which are already published as readings. Downlink: commands become
node.originate() (or a gateway broadcast) with origin "mqtt"; the bridge
never republishes those, and they never reach the gateway's inbox.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from meshlink import cjson
from meshlink.errors import DecodeError

from meshlink_gw.bridges.mqtt import MqttBridge
from meshlink_gw.bridges.mqtt_store import FILENAME as OUTBOX_FILENAME
from meshlink_gw.config import MqttConfig

log = logging.getLogger("meshlink.mqtt")


class GatewayMeshPort:
    """bridges.mqtt.MeshPort for a gateway: its node and its board service."""

    def __init__(self, node: Any, service: Any) -> None:
        self.node = node
        self.service = service
        self.gateway_node_id: str = node.node_id

    async def send_to_mesh(self, dst_node_id: str | None, data: bytes, *, origin: str) -> str:
        """Inject data: a board of ours gets it through its queue (acked end to
        end), any other node through the mesh; None broadcasts to the mesh and
        this gateway's online boards. Returns the message ID.

        Raises:
            LocalProtocolError: payload too large, too many pending sends.
        """
        if dst_node_id is None:
            return str(self.service.broadcast_from_gateway(data))
        msg, fut = self.node.originate(dst_node_id, data)
        log.info("event=mqtt_injected origin=%s to=%s id=%s bytes=%d", origin, dst_node_id,
                 msg.message_id, len(data))
        if fut is not None:
            fut.add_done_callback(lambda f, m=msg.message_id: _outcome(m, f))
        return str(msg.message_id)

    def known_node(self, name_or_id: str) -> str | None:
        """A registered, unrevoked board of this gateway, by name or node ID."""
        rec = self.service.boards.get(name_or_id)
        if rec is None:
            rec = self.service.by_node_id.get(name_or_id)
        return None if rec is None or rec.revoked else str(rec.node_id)


def _outcome(message_id: str, fut: asyncio.Future) -> None:
    if fut.cancelled():
        return
    res = fut.result()
    if res.delivered:
        log.info("event=mqtt_command_delivered id=%s rtt_ms=%s", message_id, res.rtt_ms)
    else:
        log.warning("event=mqtt_command_undelivered id=%s reason=%s", message_id, res.reason)


def _is_reading(data: bytes) -> bool:
    if not data.startswith(b"{"):
        return False
    try:
        obj = cjson.loads(data)
    except DecodeError:
        return False
    return type(obj) is dict and obj.get("kind") == "reading"


def attach(bridge: MqttBridge, node: Any, service: Any) -> None:
    """Feed the bridge from the board service's events and the node's inbox."""
    def reading(rec: Any, value: dict) -> None:
        bridge.publish_reading(rec.node_id, rec.name, value)

    def online(rec: Any, is_online: bool) -> None:
        bridge.set_node_online(rec.node_id, is_online)

    def delivered(rec: Any) -> None:
        if rec.dst != node.node_id:
            return  # broadcasts and the like: only what is addressed to the gateway
        if rec.src in service.by_node_id and _is_reading(rec.data):
            return  # our own board's reading: published by publish_reading already
        bridge.publish_message(rec.src, rec.dst, rec.data, rec.origin_id, "mesh")

    def revoked(rec: Any) -> None:
        sensors, outputs = service.board_io(rec)
        bridge.forget_node(rec.node_id, sensors + outputs)

    def announce_outputs(rec: Any) -> None:
        bridge.announce_outputs(rec.node_id, rec.name, service.board_io(rec)[1])

    name = node.config.name or f"MeshLink gateway {node.node_id[:8]}"
    bridge.announce_gateway(name)
    for rec in service.boards.values():
        if not rec.revoked:
            announce_outputs(rec)
    service.events.reading_hooks.append(reading)
    service.events.online_hooks.append(online)
    service.events.asleep_hooks.append(lambda rec: bridge.set_node_asleep(rec.node_id))
    service.events.online_hooks.append(lambda rec, up: announce_outputs(rec) if up else None)
    service.events.revoked_hooks.append(revoked)
    node.add_deliver_hook(delivered)
    service.status_extras["mqtt"] = lambda: {
        "broker": f"{bridge.config.host}:{bridge.config.effective_port}",
        "connected": bridge.connected, "outbox": bridge.outbox_size(),
        "stats": dict(bridge.stats)}


async def start_bridge(config: MqttConfig, node: Any, service: Any) -> MqttBridge:
    """Build, hook up and start the gateway's MQTT bridge (it connects in the
    background and keeps reconnecting)."""
    bridge = MqttBridge(config, GatewayMeshPort(node, service),
                        outbox_path=node.config.data_dir / OUTBOX_FILENAME)
    attach(bridge, node, service)
    for rec in service.boards.values():  # retained status for every known board
        if not rec.revoked:
            bridge.set_node_online(rec.node_id, rec.name in service.events.online)
    await bridge.start()
    return bridge
