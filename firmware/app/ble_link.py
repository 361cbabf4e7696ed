# Board side of the BLE board link: a GATT peripheral (aioble) that carries
# meshlink.blefrag fragments. The gateway writes to RX (write without
# response); the board notifies on TX. ESP32 only: needs `bluetooth` and
# aioble (`mpremote mip install aioble`).
#
# BleTransport (below) is the transport app/link.py uses when config.json
# says "transport": "ble"; only BLE boards import this module.
#
# UNTESTED ON HARDWARE. It ran only on the MicroPython unix port against a
# FAKE aioble/bluetooth (tests/gateway/mpy_fakes), and was compiled with
# mpy-cross; the gateway side (gateway/meshlink_gw/transports/ble.py) ran
# only against a fake bleak. Treat the first run on a real board as a bring-up.
import asyncio

from meshlink import blefrag
from meshlink._compat import const
from meshlink.errors import TransportError

_ADV_INTERVAL_US = const(250_000)
_PREFERRED_MTU = const(247)  # asked of the central; it decides
_DEFAULT_MTU = const(23)
_WRITE_POLL_MS = const(1000)  # re-check the connection this often while idle
# BleTransport: a board's records are at most 797 bytes (link.MAX_RECORD_PLAINTEXT
# + overhead), so a 1 KiB reassembly buffer, not the 2 KiB default.
_MAX_MESSAGE_BYTES = const(1024)
_CONNECT_POLL_MS = const(100)  # open(): check for a gateway connection this often
_RECV_POLL_MS = const(250)  # recv(): notice a dropped connection within this
_INBOX_MAX = const(4)  # whole messages waiting for recv(); the oldest goes first


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


# One BleLink per boot: the GATT service registers once, and its serve()
# task keeps advertising (and accepting the gateway) across BleTransports,
# including the backoff between two connection attempts.
_link = None
_task = None
_current = None  # the open BleTransport; incoming messages go to it


def _deliver(message):
    t = _current
    if t is not None and _link._conn is t._conn:  # not from a newer connection
        if len(t._inbox) >= _INBOX_MAX:
            t._inbox.pop(0)
            t.dropped += 1
        t._inbox.append(message)
        t._ready.set()
    _link.reassembler.take_errors()  # counted; the typed errors are not kept


class BleTransport:
    """The board link over BLE, as app.link.BoardLink wants a transport:
    open(), send(msg), recv(), close(); errors are TransportError.

    adv_name: the advertised local name (config.json "ble": {"name"}, default
    the board name). connect_timeout_ms bounds how long open() waits for the
    gateway to connect; advertising goes on after a timeout, so the gateway
    may connect during the backoff and the next open() finds it connected.
    close() leaves the connection up: the next BleTransport (a rekey or a
    retry) starts its handshake on it, as a serial board does on its line.
    """

    def __init__(self, adv_name, connect_timeout_ms):
        self.adv_name = adv_name
        self.name = "ble:%s" % adv_name
        self.connect_timeout_ms = connect_timeout_ms
        self.dropped = 0  # messages dropped because the inbox was full
        self._conn = None
        self._inbox = []
        self._ready = asyncio.Event()

    async def open(self):
        global _link, _task, _current
        try:
            if _link is None:
                link = BleLink(self.adv_name, _MAX_MESSAGE_BYTES)
                link.register()
                _link = link
            if _task is None or _task.done():
                _task = asyncio.create_task(_link.serve(_deliver))
        except (ImportError, OSError, ValueError) as e:
            raise TransportError("cannot start BLE: %s" % e)
        waited = 0
        while not _link.connected():
            if waited >= self.connect_timeout_ms:
                raise TransportError("no gateway connected to %s in %d ms" % (
                    self.name, self.connect_timeout_ms))
            await asyncio.sleep_ms(_CONNECT_POLL_MS)
            waited += _CONNECT_POLL_MS
        self._conn = _link._conn
        _current = self

    def _check(self):
        if self._conn is None or _link._conn is not self._conn or not self._conn.is_connected():
            raise TransportError("%s: the gateway disconnected" % self.name)

    async def send(self, msg):
        """Notify msg as fragments. Raises TransportError (not connected) or
        LocalProtocolError (more than 128 fragments)."""
        self._check()
        try:
            sent = _link.send(msg)
        except (OSError, ValueError) as e:  # aioble: OSError; a dropped conn: ValueError
            raise TransportError("%s send: %s" % (self.name, e))
        if not sent:
            raise TransportError("%s: the gateway disconnected" % self.name)

    async def recv(self):
        """The next whole reassembled message. Raises TransportError when the
        connection this transport opened on is gone."""
        while True:
            self._check()
            if self._inbox:
                return self._inbox.pop(0)
            self._ready.clear()
            try:
                await asyncio.wait_for_ms(self._ready.wait(), _RECV_POLL_MS)
            except asyncio.TimeoutError:  # noqa: UP041 (MicroPython has no builtin one)
                pass

    async def close(self):
        global _current
        if _current is self:
            _current = None
        self._inbox = []
        self._conn = None
