"""A gateway process with only the MQTT bridge, for the last-will test.

Usage: python mqtt_gateway_proc.py HOST PORT GATEWAY_ID NODE_ID
Prints "UP" once connected with the node marked online, then runs until killed.
"""

import asyncio
import sys

from meshlink_gw.bridges.mqtt import MqttBridge
from meshlink_gw.config import MqttConfig


class Mesh:
    def __init__(self, gateway_node_id: str) -> None:
        self.gateway_node_id = gateway_node_id

    async def send_to_mesh(self, dst_node_id, data, *, origin):
        return "unused"

    def known_node(self, name_or_id):
        return None


async def main(host: str, port: int, gateway_id: str, node_id: str) -> None:
    bridge = MqttBridge(MqttConfig(host=host, port=port, keepalive_s=5), Mesh(gateway_id))
    await bridge.start()
    bridge.set_node_online(node_id, True)
    await bridge.wait_for(lambda b: b.connected, 10)
    print("UP", flush=True)
    await asyncio.Event().wait()  # until SIGKILL


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]))
