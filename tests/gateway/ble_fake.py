"""A fake of bleak's BleakScanner / BleakClient, with fake boards "on air".

It mirrors the bleak 1.x-3.x call signatures the BLE transport uses, and the
board side speaks meshlink.blefrag like firmware/app/ble_link.py, so the
transport's fragmenting, reassembly, scanning and reconnecting are exercised
without a Bluetooth adapter. It is not a BLE stack: timing, pairing and
BlueZ quirks are out of its reach.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from bleak.exc import BleakError
from meshlink.blefrag import (
    RX_CHAR_UUID,
    SERVICE_UUID,
    TX_CHAR_UUID,
    Fragmenter,
    Reassembler,
)


class FakeBoard:
    """A peripheral advertising the MeshLink service. By default it echoes."""

    def __init__(self, air: FakeAir, address: str, name: str, *, att_payload_bytes: int = 20,
                 service_uuids: list[str] | None = None) -> None:
        self.air = air
        self.address = address
        self.name = name
        self.att_payload_bytes = att_payload_bytes
        self.service_uuids = [SERVICE_UUID] if service_uuids is None else service_uuids
        self.advertising = False
        self.client: FakeClient | None = None
        self.writes: list[bytes] = []
        self.received: asyncio.Queue[bytes] = asyncio.Queue()
        self.reassembler = Reassembler()
        self.on_message: Callable[[bytes], None] = lambda m: self.notify(b"echo:" + m)
        self.connections = 0
        self.fail_next_connect: Exception | None = None
        self.fail_writes: Exception | None = None

    def advertise(self) -> None:
        self.advertising = True
        self.air.changed()

    def notify(self, message: bytes) -> None:
        for piece in Fragmenter(self.att_payload_bytes, self.connections).split(message):
            self.notify_raw(piece)

    def notify_raw(self, piece: bytes) -> None:
        if self.client is not None and self.client.notify_cb is not None:
            self.client.notify_cb(SimpleNamespace(uuid=TX_CHAR_UUID), bytearray(piece))

    def drop(self) -> None:
        """The radio link is lost (out of range, board reset)."""
        client, self.client = self.client, None
        if client is not None:
            client.lost()

    def _written(self, data: bytes) -> None:
        self.writes.append(data)
        message = self.reassembler.feed(data)
        if message is not None:
            self.received.put_nowait(message)
            self.on_message(message)


class FakeAir:
    """Everything the fake scanner can see."""

    def __init__(self) -> None:
        self.boards: dict[str, FakeBoard] = {}
        self._changed = asyncio.Event()

    def board(self, address: str, name: str, **kw: Any) -> FakeBoard:
        b = FakeBoard(self, address, name, **kw)
        self.boards[address] = b
        return b

    def changed(self) -> None:
        self._changed.set()

    def visible(self) -> list[tuple[Any, Any]]:
        return [(SimpleNamespace(address=b.address, name=b.name),
                 SimpleNamespace(local_name=b.name, service_uuids=b.service_uuids, rssi=-50))
                for b in self.boards.values() if b.advertising and b.client is None]

    async def wait_changed(self) -> None:
        self._changed.clear()
        await self._changed.wait()

    def classes(self) -> tuple[type, type]:
        """(scanner_cls, client_cls) bound to this air."""
        air = self

        class Scanner(FakeScanner):
            _air = air

        class Client(FakeClient):
            _air = air

        return Scanner, Client


class FakeScanner:
    _air: FakeAir

    @classmethod
    async def find_device_by_filter(cls, filterfunc, timeout=10.0, **kwargs):
        async def _search():
            while True:
                for dev, adv in cls._air.visible():
                    if filterfunc(dev, adv):
                        return dev
                await cls._air.wait_changed()
        try:
            return await asyncio.wait_for(_search(), timeout)
        except TimeoutError:
            return None

    @classmethod
    async def discover(cls, timeout=5.0, *, return_adv=False, **kwargs):
        return {dev.address: (dev, adv) for dev, adv in cls._air.visible()}


class FakeClient:
    _air: FakeAir

    def __init__(self, address_or_ble_device, disconnected_callback=None, services=None, *,
                 timeout=30.0, **kwargs) -> None:
        self.device = address_or_ble_device
        self.board = self._air.boards[address_or_ble_device.address]
        self.disconnected_callback = disconnected_callback
        self.notify_cb: Callable[[Any, bytearray], None] | None = None
        self.is_connected = False
        self.mtu_size = self.board.att_payload_bytes + 3

    @property
    def services(self) -> Any:
        rx = SimpleNamespace(uuid=RX_CHAR_UUID,
                             max_write_without_response_size=self.board.att_payload_bytes)
        return SimpleNamespace(get_characteristic=lambda u: rx if u == RX_CHAR_UUID else None)

    async def connect(self, **kwargs) -> None:
        if self.board.fail_next_connect is not None:
            err, self.board.fail_next_connect = self.board.fail_next_connect, None
            raise err
        if self.board.client is not None:
            raise BleakError("device busy")
        self.board.client = self
        self.board.connections += 1
        self.is_connected = True

    async def start_notify(self, char_specifier, callback, **kwargs) -> None:
        if not self.is_connected:
            raise BleakError("Not connected")
        assert char_specifier == TX_CHAR_UUID
        self.notify_cb = callback

    async def write_gatt_char(self, char_specifier, data, response=None) -> None:
        if not self.is_connected:
            raise BleakError("Not connected")
        if self.board.fail_writes is not None:
            raise self.board.fail_writes
        assert char_specifier == RX_CHAR_UUID and response is False
        assert len(data) <= self.board.att_payload_bytes
        self.board._written(bytes(data))

    async def disconnect(self) -> None:
        if self.is_connected:
            self.is_connected = False
            if self.board.client is self:
                self.board.client = None
            self._air.changed()
            if self.disconnected_callback is not None:  # bleak calls it on any disconnect
                self.disconnected_callback(self)

    def lost(self) -> None:
        self.is_connected = False
        self._air.changed()
        if self.disconnected_callback is not None:
            self.disconnected_callback(self)
