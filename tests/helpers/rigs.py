"""In-process nodes and the gateway rig: real Node objects on loopback, a
board service on the gateway, CPython stand-in boards (examples/sim_board.py).

One Rig serves every in-process gateway test: boards over UDP/TCP
(listeners=True) and boards wired through [[serial]] / [[ble]] entries
(listeners=False, serial=..., ble=...).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from meshlink_gw.boards.registry import BoardRecord, BoardRegistry
from meshlink_gw.boards.service import BoardService
from meshlink_gw.config import GatewayConfig, NodeConfig, override
from meshlink_gw.crypto.identity import Identity
from meshlink_gw.node import Node

from examples.sim_board import SharedUdp, SimBoard
from helpers import DEADLINE_S, wait_until


async def start_node(root: Path, name: str, **cfg: Any) -> Node:
    """A started Node with its data directory at root/name, listening on loopback."""
    config = NodeConfig(data_dir=root / name, listen=("127.0.0.1", 0), **cfg)
    node = Node(config, Identity.load_or_create(config.data_dir))
    await node.start()
    return node


class TestBoard(SimBoard):
    """A SimBoard whose waits default to the tests' generous DEADLINE_S."""

    __test__ = False  # not a test class, despite its name

    async def connect_udp(self, shared: SharedUdp, gateway: tuple[str, int],
                          timeout_s: float = DEADLINE_S) -> None:
        await super().connect_udp(shared, gateway, timeout_s)

    async def connect_tcp(self, gateway: tuple[str, int], timeout_s: float = DEADLINE_S
                          ) -> None:
        await super().connect_tcp(gateway, timeout_s)

    async def connect_link(self, send, timeout_s: float = DEADLINE_S) -> None:
        await super().connect_link(send, timeout_s)

    async def recv(self, timeout_s: float = DEADLINE_S) -> dict:
        return await super().recv(timeout_s)

    async def recv_msg(self, timeout_s: float = DEADLINE_S, ack: bool = True) -> dict:
        return await super().recv_msg(timeout_s, ack)


class Rig:
    """A gateway (node + board service) linked to one plain node, `peer`.

    Attributes:
        gw_node, peer: the two nodes; svc: the board service on gw_node.
        reg, recs: the gateway's registry and the records of the boards registered.
        udp: a SharedUdp for stand-in boards (None without listeners).
        online_events: every (board name, online?) change the service reported.
    """

    async def start(self, root: Path, boards: tuple[str, ...] = ("b1",), *,
                    transport: str = "udp", listeners: bool = True, serial=(), ble=(),
                    ble_classes: tuple[Any, Any] | None = None, **overrides: Any) -> Rig:
        """boards: names to register (with `transport`); listeners: open the board
        UDP and TCP listeners; serial/ble: wired link entries; overrides: GatewayConfig
        settings (as the CLI overrides them)."""
        self.gw_node = await start_node(root, "gw", retry_interval_ms=300)
        self.peer = await start_node(root, "peer", peers=[self.gw_node.listen_addr],
                                     retry_interval_ms=300)
        self.reg = BoardRegistry(root / "gw")
        self.recs: dict[str, BoardRecord] = {n: self.reg.add(n, "unix", transport)
                                             for n in boards}
        listen = "127.0.0.1:0" if listeners else "off"
        over: dict[str, Any] = {"board_udp": listen, "board_tcp": listen, "beacon": False,
                                "retry_ms": 100, "refusal_log_interval_ms": 0}
        over.update(overrides)
        self.cfg = dataclasses.replace(override(GatewayConfig(), over),
                                       serial=tuple(serial), ble=tuple(ble))
        self.svc = BoardService(self.gw_node, self.cfg, self.reg, ble_classes=ble_classes)
        self.online_events: list[tuple[str, bool]] = []
        self.svc.events.online_hooks.append(
            lambda rec, up: self.online_events.append((rec.name, up)))
        await self.svc.start()
        self.udp: SharedUdp | None = None
        if self.svc.udp_addr is not None:
            self.udp = SharedUdp()
            self.udp.start()
        await wait_until(lambda: len(self.gw_node.peers.links) == 1
                         and len(self.peer.peers.links) == 1, what="gateway and peer linked")
        return self

    def board(self, name: str = "b1", boot_ctr: int = 1) -> TestBoard:
        """A stand-in for registered board name (not connected yet)."""
        r = self.recs[name]
        return TestBoard(r.psk, r.board_id, boot_ctr, r.node_id)

    async def online(self, name: str = "b1", boot_ctr: int = 1) -> TestBoard:
        """A stand-in for board name with an established session over UDP."""
        assert self.udp is not None and self.svc.udp_addr is not None, "no UDP listener"
        b = self.board(name, boot_ctr)
        await b.connect_udp(self.udp, self.svc.udp_addr)
        await wait_until(lambda: name in self.svc.links
                         and self.svc.links[name].session.sid == b.client.sid,
                         what=f"board {name} online")
        return b

    async def stop(self) -> None:
        if self.udp is not None:
            self.udp.close()
        await self.svc.stop()
        await self.peer.stop()
        await self.gw_node.stop()
        self.reg.close()


class rig_for:  # noqa: N801 - used as `async with rig_for(tmp_path) as rig`
    """A started Rig (boards b1 and b2 unless told), stopped on exit."""

    def __init__(self, root: Path, boards: tuple[str, ...] = ("b1", "b2"), **kw: Any) -> None:
        self.root, self.boards, self.kw = root, boards, kw

    async def __aenter__(self) -> Rig:
        self.rig = await Rig().start(self.root, boards=self.boards, **self.kw)
        return self.rig

    async def __aexit__(self, *exc: object) -> None:
        await self.rig.stop()
