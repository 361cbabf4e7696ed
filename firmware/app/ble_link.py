# Board side of the BLE board link: a GATT peripheral (aioble) that carries
# meshlink.blefrag fragments. The gateway writes to RX (write without
# response); the board notifies on TX. ESP32 only: needs `bluetooth` and
# aioble (`mpremote mip install aioble`).
#
# UNTESTED ON HARDWARE. This file has only been compiled (mpy-cross); the
# gateway side (gateway/meshlink_gw/transports/ble.py) ran only against a
# fake bleak. Treat the first run on a real board as a bring-up.
import asyncio

from meshlink import blefrag
from meshlink._compat import const

_ADV_INTERVAL_US = const(250_000)
_PREFERRED_MTU = const(247)  # asked of the central; it decides
_DEFAULT_MTU = const(23)
_WRITE_POLL_MS = const(1000)  # re-check the connection this often while idle


class BleLink:
    """One gateway connection at a time; messages in and out as whole frames."""

    def __init__(self, name, max_message_bytes=blefrag.DEFAULT_MAX_MESSAGE_BYTES):
        self.name = name
        self.reassembler = blefrag.Reassembler(max_message_bytes)
        self._conn = None
        self._counter = 0
        self._rx = None
        self._tx = None
        self._service_uuid = None

    def register(self):
        """Create and register the GATT service (call once, after boot)."""
        import aioble
        import bluetooth

        aioble.config(mtu=_PREFERRED_MTU)
        self._service_uuid = bluetooth.UUID(blefrag.SERVICE_UUID)
        service = aioble.Service(self._service_uuid)
        self._rx = aioble.BufferedCharacteristic(
            service, bluetooth.UUID(blefrag.RX_CHAR_UUID), write=True,
            write_no_response=True, capture=True, max_len=_PREFERRED_MTU - 3)
        self._tx = aioble.Characteristic(service, bluetooth.UUID(blefrag.TX_CHAR_UUID),
                                         notify=True)
        aioble.register_services(service)

    def connected(self):
        return self._conn is not None and self._conn.is_connected()

    def send(self, message):
        """Notify one message as fragments; False when no gateway is connected.

        Raises:
            LocalProtocolError: the message needs more than 128 fragments.
        """
        conn = self._conn
        if conn is None or not conn.is_connected():
            return False
        att = (conn.mtu or _DEFAULT_MTU) - 3
        for piece in blefrag.fragment(message, att, self._counter):
            self._tx.notify(conn, piece)
        self._counter = (self._counter + 1) & 0xFF
        return True

    async def serve(self, on_message):
        """Advertise, accept a gateway, pass each whole message to on_message; forever."""
        import aioble

        while True:
            conn = await aioble.advertise(_ADV_INTERVAL_US, name=self.name,
                                          services=[self._service_uuid])
            self._conn = conn
            try:
                await self._receive(conn, on_message)
            except aioble.DeviceDisconnectedError:
                pass
            finally:
                self._conn = None

    async def _receive(self, conn, on_message):
        while conn.is_connected():
            try:
                _, data = await self._rx.written(timeout_ms=_WRITE_POLL_MS)
            except asyncio.TimeoutError:  # noqa: UP041 (MicroPython has no builtin one)
                continue
            message = self.reassembler.feed(data)
            if message is not None:
                on_message(message)
