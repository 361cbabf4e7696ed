"""BLE adapter (bleak): one MeshLink board as a GATT peripheral.

Rule: a thin adapter. It scans for a board advertising the MeshLink service
(meshlink.blefrag.SERVICE_UUID), connects, and carries the board link as
fragments (meshlink.blefrag) written without response to RX_CHAR_UUID and
notified by the board on TX_CHAR_UUID. BleakError, OSError and timeouts
become TransportError here; a dropped board ends the frame iterator and
supervise() rescans and reconnects. The bleak classes are injectable
(scanner_cls / client_cls) so tests drive a fake at the bleak boundary.
Only the fake has exercised this code so far; see docs/BRIDGES.md.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator
from typing import Any

from meshlink import blefrag
from meshlink.errors import LocalProtocolError, TransportError

from .base import FrameInbox, Transport

log = logging.getLogger("meshlink.transport.ble")

SERVICE_UUID = blefrag.SERVICE_UUID
RX_CHAR_UUID = blefrag.RX_CHAR_UUID  # gateway -> board, write without response
TX_CHAR_UUID = blefrag.TX_CHAR_UUID  # board -> gateway, notify
MAX_ATT_PAYLOAD_BYTES = 512  # ATT attribute value limit


def _bleak_classes() -> tuple[Any, Any]:
    from bleak import BleakClient, BleakScanner

    return BleakScanner, BleakClient


def _vendor_errors() -> tuple[type[BaseException], ...]:
    from bleak.exc import BleakError

    return (BleakError, OSError, TimeoutError, EOFError)


def _advertises_meshlink(adv: Any) -> bool:
    return SERVICE_UUID in [u.lower() for u in (getattr(adv, "service_uuids", None) or [])]


@dataclasses.dataclass(frozen=True)
class BleBoard:
    address: str
    name: str | None
    rssi_dbm: int | None


async def scan_boards(timeout_s: float = 5.0, scanner_cls: Any = None) -> list[BleBoard]:
    """Boards advertising the MeshLink service, strongest signal first.

    Raises:
        TransportError: the adapter is missing or scanning failed.
    """
    scanner_cls = scanner_cls or _bleak_classes()[0]
    try:
        found = await scanner_cls.discover(timeout=timeout_s, return_adv=True,
                                           service_uuids=[SERVICE_UUID])
    except _vendor_errors() as e:
        raise TransportError(f"BLE scan failed: {e}")
    boards = [BleBoard(dev.address, adv.local_name or dev.name, adv.rssi)
              for dev, adv in found.values() if _advertises_meshlink(adv)]
    return sorted(boards, key=lambda b: -(b.rssi_dbm if b.rssi_dbm is not None else -999))


class BleTransport(Transport):
    """The board link to one BLE board, found by address or advertised name.

    Args:
        address: the board's Bluetooth address (or CoreBluetooth UUID).
        board_name: the advertised local name, when the address is unknown.
        max_message_bytes: reassembly buffer for board -> gateway messages.
        scanner_cls / client_cls: bleak.BleakScanner / BleakClient or fakes.
    """

    kind = "datagram"

    def __init__(self, *, address: str | None = None, board_name: str | None = None,
                 scan_timeout_s: float = 10.0, connect_timeout_s: float = 20.0,
                 max_message_bytes: int = blefrag.DEFAULT_MAX_MESSAGE_BYTES,
                 scanner_cls: Any = None, client_cls: Any = None) -> None:
        self.address = address
        self.board_name = board_name
        self.name = f"ble:{address or board_name or 'any'}"
        self.scan_timeout_s = scan_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.max_message_bytes = max_message_bytes
        self.mtu = 0
        self.att_payload_bytes = 0
        self._scanner_cls = scanner_cls
        self._client_cls = client_cls
        self._client: Any = None
        self._frag: blefrag.Fragmenter | None = None
        self.reassembler = blefrag.Reassembler(max_message_bytes)
        self._inbox = FrameInbox()
        self._closing = False

    def _matches(self, device: Any, adv: Any) -> bool:
        if not _advertises_meshlink(adv):
            return False
        if self.address and device.address.lower() != self.address.lower():
            return False
        name = getattr(adv, "local_name", None) or device.name
        return not self.board_name or name == self.board_name

    async def _find(self) -> Any:
        scanner_cls = self._scanner_cls or _bleak_classes()[0]
        try:
            device = await scanner_cls.find_device_by_filter(
                self._matches, timeout=self.scan_timeout_s, service_uuids=[SERVICE_UUID])
        except _vendor_errors() as e:
            raise TransportError(f"BLE scan failed: {e}")
        if device is None:
            raise TransportError(f"no MeshLink board {self.address or self.board_name or ''} "
                                 f"advertising within {self.scan_timeout_s} s")
        return device

    async def open(self) -> None:
        device = await self._find()
        client_cls = self._client_cls or _bleak_classes()[1]
        client = client_cls(device, disconnected_callback=self._on_disconnect,
                            services=[SERVICE_UUID], timeout=self.connect_timeout_s)
        self._client = client
        try:
            await client.connect()
            await client.start_notify(TX_CHAR_UUID, self._on_notify)
            self.att_payload_bytes = self._att_payload(client)
        except _vendor_errors() as e:
            await self.close()
            raise TransportError(f"cannot connect to {device.address}: {e}")
        self._frag = blefrag.Fragmenter(self.att_payload_bytes)
        self.mtu = min(self.max_message_bytes,
                       blefrag.max_message_bytes_for(self.att_payload_bytes))
        self.name = f"ble:{device.address}"

    @staticmethod
    def _att_payload(client: Any) -> int:
        """Bytes per write: the characteristic's limit, else negotiated MTU - 3."""
        char = client.services.get_characteristic(RX_CHAR_UUID)
        if char is None:
            raise TransportError("board lacks the MeshLink RX characteristic")
        size = getattr(char, "max_write_without_response_size", 0) or client.mtu_size - 3
        return max(blefrag.MIN_ATT_PAYLOAD_BYTES, min(MAX_ATT_PAYLOAD_BYTES, int(size)))

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._inbox.frames()

    async def send(self, frame: bytes) -> None:
        """Fragment and write one frame. Raises LocalProtocolError, TransportError."""
        if len(frame) > self.mtu:
            raise LocalProtocolError(f"BLE frame of {len(frame)} bytes exceeds {self.mtu}")
        if self._client is None or self._frag is None or self._inbox.error is not None:
            raise TransportError(f"{self.name} is not connected")
        for piece in self._frag.split(frame):
            try:
                await self._client.write_gatt_char(RX_CHAR_UUID, piece, response=False)
            except _vendor_errors() as e:
                error = TransportError(f"{self.name} write failed: {e}")
                self._inbox.fail(error)
                raise error

    async def close(self) -> None:
        self._closing = True
        client, self._client = self._client, None
        if client is not None:
            try:
                await client.disconnect()
            except _vendor_errors() as e:
                log.debug("event=ble_disconnect_error transport=%s error=%s", self.name, e)
        self._inbox.close()

    def _on_notify(self, characteristic: Any, data: bytearray) -> None:
        message = self.reassembler.feed(bytes(data))
        if message is not None:
            self._inbox.put(message)
        for err in self.reassembler.take_errors():
            log.debug("event=ble_fragment_dropped transport=%s error=%s", self.name, err)

    def _on_disconnect(self, client: Any) -> None:
        if not self._closing:
            log.info("event=ble_board_lost transport=%s", self.name)
            self._inbox.fail(TransportError(f"{self.name}: board disconnected"))
