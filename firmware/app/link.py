# The board link: the handshake with HELLO retransmission, sealed records,
# STALE handling, reconnect backoff, over one transport: UDP or TCP over WiFi
# (app.ip_link, with gateway discovery), a serial line (app.serial_link) or
# BLE (app.ble_link), each loaded only by the boards that use it.
# Rules: the protocol is meshlink.boardlink (sans-I/O); this module only
# moves its messages. Transport errors are TransportError.
# One task receives (BoardLink.recv), any task may send (a Lock orders them).
import asyncio

from meshlink import cjson
from meshlink._compat import const
from meshlink.boardlink import (
    T_CHALLENGE,
    T_RECORD,
    T_STALE,
    BoardClient,
    decode_stale,
)
from meshlink.errors import (
    AuthError,
    DecodeError,
    HandshakeError,
    LocalProtocolError,
    ReplayError,
    TransportError,
)

from app import platform

# Board-side cap on one record's plaintext: far below MAX_PLAINTEXT_BYTES so
# a 112K heap never holds a 16 KiB record (PROTOCOL_boardlink section 8).
# The gateway must not send a board a larger record: it would be dropped.
MAX_RECORD_PLAINTEXT = const(768)  # <= boardlink.MAX_PLAINTEXT_BYTES (16384)
# STALE replies (the gateway lost our session, PROTOCOL.md section 6.4) with
# no authentic record in between before the board drops the session and runs
# a new handshake. STALE is unauthenticated, so each one only sends a probe
# ping; a live gateway's pong resets the count. A forger must inject several
# in a row, and wins only an authenticated handshake (readings stay queued).
_STALE_LIMIT = const(3)


class Backoff:
    """Exponential backoff with "equal jitter": the n-th delay is uniform in
    [d/2, d] with d = min(max_ms, min_ms * 2^n). reset() after a good session."""

    def __init__(self, min_ms, max_ms):
        self.min_ms = max(1, min_ms)
        self.max_ms = max(self.min_ms, max_ms)
        self.failures = 0

    def next_ms(self):
        d = min(self.max_ms, self.min_ms << min(self.failures, 20))
        self.failures += 1
        r = int.from_bytes(platform.urandom(2), "big")
        return d // 2 + r % (d - d // 2 + 1)

    def reset(self):
        self.failures = 0


class BoardLink:
    """One board-link session to the gateway: connect(), send(obj), recv().

    A new BoardLink (new BoardClient, fresh nonce) for every connection
    attempt and every rekey; boot_ctr is the same for the whole boot.
    """

    def __init__(self, cfg, clock, boot_ctr):
        self.cfg = cfg
        self.clock = clock
        self.boot_ctr = boot_ctr
        self.transport = None
        self.client = None
        self.peer = None  # "host:port" once connected
        self.gateway_node_id = None  # from the beacon, if discovered
        self.dropped = 0  # records that failed to open (replay, bad tag, bad JSON)
        self.stale = 0  # STALE replies since the last authentic record
        self.resumed = None  # a resumed BoardClient (app.sleep): no handshake
        self._lock = asyncio.Lock()

    async def _gateway(self):
        cfg = self.cfg
        if cfg.gateway is not None:
            return cfg.gateway
        from app.ip_link import discover

        host, node_id, udp_port, tcp_port = await discover(
            cfg.discovery_port, cfg.discovery_timeout_ms, self.clock)
        self.gateway_node_id = node_id
        return host, udp_port if cfg.transport == "udp" else tcp_port

    async def connect(self):
        """Discover (if needed), open the transport and run the handshake.

        Raises:
            TransportError: no beacon, no answer to any HELLO, socket error.
            AuthError: CHALLENGEs came but none verified (wrong PSK).
        """
        if self.cfg.transport == "serial":
            from app.serial_link import SerialTransport  # only serial boards pay for it

            serial = SerialTransport(self.cfg.serial)
            self.peer = serial.name
            await serial.open()
            self.transport = serial
        elif self.cfg.transport == "ble":
            from app.ble_link import BleTransport  # only BLE boards pay for it

            ble = BleTransport(self.cfg.ble["name"], self.cfg.discovery_timeout_ms)
            self.peer = ble.name
            await ble.open()
            self.transport = ble
        else:
            from app.ip_link import TcpTransport, UdpTransport  # WiFi boards only

            host, port = await self._gateway()
            t = UdpTransport() if self.cfg.transport == "udp" else TcpTransport()
            self.peer = "%s:%d" % (host, port)
            await t.open(host, port)
            self.transport = t
        if self.resumed is not None:  # a session kept across deep sleep (PROTOCOL.md 6.7)
            self.client = self.resumed
            return
        self.client = await self._handshake(self.transport)

    async def _handshake(self, t):
        cfg = self.cfg
        client = BoardClient(cfg.psk, cfg.board_id, self.boot_ctr, platform.urandom(16))
        timeout_ms = cfg.hello_timeout_ms
        refused = None
        for _ in range(cfg.hello_tries):
            await t.send(client.hello())  # a retransmission is the same bytes
            deadline = self.clock.now_ms() + timeout_ms
            while True:
                left = deadline - self.clock.now_ms()
                if left <= 0:
                    break
                try:
                    msg = await asyncio.wait_for_ms(t.recv(), left)
                except asyncio.TimeoutError:  # noqa: UP041 (MicroPython: not the builtin)
                    break
                if not msg or msg[0] != T_CHALLENGE:
                    continue  # e.g. a late record of the previous session
                try:
                    confirm = client.handle_challenge(msg, self.clock.now_ms())
                except (AuthError, DecodeError) as e:
                    refused = e  # keep waiting: a forged CHALLENGE must not win
                    continue
                await t.send(confirm)
                return client
            if refused is not None:
                raise refused
            timeout_ms *= 2
        raise TransportError("no CHALLENGE after %d HELLOs to %s" % (cfg.hello_tries, self.peer))

    async def send(self, obj):
        """Seal one record (canonical JSON) and send it. Raises TransportError,
        SessionExpiredError, LocalProtocolError (too large, floats)."""
        plaintext = cjson.dumps(obj)
        if len(plaintext) > MAX_RECORD_PLAINTEXT:
            raise LocalProtocolError("record of %d bytes over the board's cap" % len(plaintext))
        async with self._lock:  # seal order = send order; one writer at a time
            record = self.client.seal(plaintext, self.clock.now_ms())
            await self.transport.send(record)

    async def recv(self):
        """Wait for the next record from the gateway -> decoded JSON object.

        Records that fail to open (replayed, bad tag, not JSON, not an
        object) are counted in .dropped and skipped. A retransmitted
        CHALLENGE (our CONFIRM was lost) is answered with the cached CONFIRM.

        Raises:
            TransportError: the transport failed.
            SessionExpiredError: the session hit a hard limit.
        """
        while True:
            msg = await self.transport.recv()
            kind = msg[0] if msg else 0
            if kind == T_CHALLENGE:
                try:
                    confirm = self.client.handle_challenge(msg, self.clock.now_ms())
                except (HandshakeError, AuthError, DecodeError):
                    continue
                async with self._lock:
                    await self.transport.send(confirm)
                continue
            if kind == T_STALE:
                await self._on_stale(msg)
                continue
            if kind != T_RECORD:
                continue
            try:
                obj = cjson.loads(self.client.open(msg, self.clock.now_ms()))
            except (ReplayError, AuthError, DecodeError, HandshakeError):
                self.dropped += 1
                continue
            self.stale = 0  # the gateway holds this session
            if type(obj) is dict:
                return obj
            self.dropped += 1

    async def _on_stale(self, msg):
        """The gateway says it holds no session with our sid: probe with a
        ping (a live gateway answers it with a pong, which resets the count);
        after _STALE_LIMIT STALEs, raise TransportError: reconnect now."""
        try:
            if decode_stale(msg) != self.client.sid:
                return
        except DecodeError:
            return
        self.stale += 1
        if self.stale >= _STALE_LIMIT:
            raise TransportError("the gateway has no session %08x (restarted?)" % self.client.sid)
        await self.send({"t": "ping", "seq": 0})

    async def close(self):
        if self.transport is not None:
            t = self.transport
            self.transport = None
            await t.close()
