"""One paho-mqtt 2.x connection driven by the gateway's asyncio loop.

Rule: a thin adapter with the transport shape (open / close / async-iterate)
so the one supervise() loop reconnects it. No loop_start() thread, no polling:
paho's socket callbacks register the socket with loop.add_reader/add_writer,
and one loop.call_later timer runs loop_misc() for keepalive. The only
blocking step in paho, connect() (TCP connect and TLS handshake), runs once
per connection in the default executor; the socket callbacks it fires there
are handed to the loop with call_soon_threadsafe, and the loop touches the
client only after that call has returned. A session is used once: each
reconnect builds a new client, so paho keeps no state between connections
and the bridge's outbox is the one place that decides what to resend.
paho return codes and socket/TLS exceptions become TransportError here.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

import paho.mqtt.client as paho
from meshlink.errors import TransportError
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from meshlink_gw.config import MqttConfig

from ..transports.base import FrameInbox

log = logging.getLogger("meshlink.mqtt")

MISC_INTERVAL_S = 1.0  # paho's loop_misc cadence (keepalive pings and timeouts)
MAX_SSL_DRAIN = 64  # loop_read rounds for bytes already decrypted inside the SSL object


class InboundMessage:
    __slots__ = ("topic", "payload", "retain")

    def __init__(self, topic: str, payload: bytes, retain: bool) -> None:
        self.topic = topic
        self.payload = payload
        self.retain = retain


def _make_client(cfg: MqttConfig, client_id: str, will: tuple[str, bytes]) -> paho.Client:
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                         protocol=paho.MQTTv311, clean_session=True,
                         reconnect_on_failure=False)
    client.max_inflight_messages_set(0)  # unlimited: the bridge bounds its own window
    client.max_queued_messages_set(0)
    client.will_set(will[0], will[1], qos=1, retain=True)
    if cfg.username:
        client.username_pw_set(cfg.username, cfg.password)
    if cfg.tls:
        client.tls_set(ca_certs=cfg.ca_file, certfile=cfg.cert_file, keyfile=cfg.key_file)
        client.tls_insecure_set(cfg.tls_insecure)
    return client


class MqttSession:
    """One broker connection. Iterating yields InboundMessage objects.

    Args:
        cfg: the validated [mqtt] config.
        client_id: MQTT client id.
        will: (topic, payload) published retained by the broker if we vanish.
        on_publish: called with the paho mid when a publish completes (PUBACK
            for QoS 1, written for QoS 0).
    """

    kind = "datagram"

    def __init__(self, cfg: MqttConfig, client_id: str, will: tuple[str, bytes],
                 on_publish: Callable[[int], None]) -> None:
        self.cfg = cfg
        self.name = f"mqtt:{cfg.host}:{cfg.effective_port}"
        self.mtu = cfg.max_command_bytes
        self._on_publish_cb = on_publish
        self._client = _make_client(cfg, client_id, will)
        self._inbox = FrameInbox(max_frames=1024)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._sock: Any = None
        self._misc: asyncio.TimerHandle | None = None
        self._connack: asyncio.Future[Any] | None = None
        self._ended = False
        self._ended_event = asyncio.Event()
        self._closing = False
        self._wire_callbacks()

    def _wire_callbacks(self) -> None:
        c = self._client
        c.on_socket_open = self._threadsafe(self._attach)
        c.on_socket_register_write = self._threadsafe(self._want_write)
        c.on_socket_unregister_write = self._threadsafe(self._no_write)
        c.on_socket_close = self._threadsafe(self._detach)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_publish = self._on_publish
        c.on_message = self._on_message

    def _threadsafe(self, fn: Callable[[Any], None]) -> Callable[..., None]:
        def callback(client: Any, userdata: Any, sock: Any) -> None:
            loop = self._loop
            if loop is None:
                return
            if threading.get_ident() == self._loop_thread:
                fn(sock)
            else:  # fired inside connect(), which runs in the executor
                loop.call_soon_threadsafe(fn, sock)
        return callback

    async def open(self) -> None:
        """Connect and wait for CONNACK. Raises TransportError."""
        loop = self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._connack = loop.create_future()
        try:
            await loop.run_in_executor(None, self._client.connect, self.cfg.host,
                                       self.cfg.effective_port, self.cfg.keepalive_s)
        except (OSError, ssl.SSLError, ValueError) as e:
            raise TransportError(f"cannot connect to {self.name}: {e}")
        try:
            reason = await asyncio.wait_for(asyncio.shield(self._connack),
                                            self.cfg.connect_timeout_s)
        except TimeoutError:
            raise TransportError(f"{self.name}: no CONNACK within {self.cfg.connect_timeout_s} s")
        if reason.is_failure:
            raise TransportError(f"{self.name} refused the connection: {reason}")

    def __aiter__(self) -> AsyncIterator[InboundMessage]:
        return self._inbox.frames()  # type: ignore[return-value]

    async def send(self, frame: bytes) -> None:
        raise TransportError("MqttSession carries publishes, not frames: use publish()")

    def publish(self, topic: str, payload: bytes, qos: int, retain: bool = False) -> int | None:
        """Hand one message to paho; its mid, or None if not connected."""
        if self._ended:
            return None
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        return info.mid if info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS else None

    def subscribe(self, topics: list[str], qos: int = 1) -> None:
        rc, _ = self._client.subscribe([(t, qos) for t in topics])
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            self._fail(f"subscribe failed: {paho.error_string(rc)}")

    async def close(self) -> None:
        """Send DISCONNECT if still connected (no last will), then drop the socket."""
        self._closing = True
        if not self._ended and self._sock is not None:
            self._client.disconnect()  # queued; written by the writer callback
            try:
                await asyncio.wait_for(self._ended_event.wait(), 2.0)
            except TimeoutError:
                log.info("event=mqtt_disconnect_timeout broker=%s", self.name)
        self._end()
        self._detach(self._sock)
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    # --- socket callbacks (always run on the loop thread) ---

    def _attach(self, sock: Any) -> None:
        if self._ended or sock.fileno() < 0 or self._loop is None:
            return
        self._sock = sock
        self._loop.add_reader(sock, self._on_readable)
        self._misc = self._loop.call_later(MISC_INTERVAL_S, self._on_misc)

    def _detach(self, sock: Any) -> None:
        if self._misc is not None:
            self._misc.cancel()
            self._misc = None
        if sock is None or self._loop is None or sock.fileno() < 0:
            return
        self._loop.remove_reader(sock)
        self._loop.remove_writer(sock)

    def _want_write(self, sock: Any) -> None:
        if not self._ended and sock.fileno() >= 0 and self._loop is not None:
            self._loop.add_writer(sock, self._client.loop_write)

    def _no_write(self, sock: Any) -> None:
        if sock.fileno() >= 0 and self._loop is not None:
            self._loop.remove_writer(sock)

    def _on_readable(self) -> None:
        rc = self._client.loop_read()
        sock = self._client.socket()
        for _ in range(MAX_SSL_DRAIN):  # TLS: records already decrypted wake no reader
            pending = getattr(sock, "pending", None)
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS or pending is None or pending() <= 0:
                break
            rc = self._client.loop_read()
            sock = self._client.socket()

    def _on_misc(self) -> None:
        self._misc = None
        if self._client.loop_misc() == MQTTErrorCode.MQTT_ERR_SUCCESS and self._loop is not None:
            self._misc = self._loop.call_later(MISC_INTERVAL_S, self._on_misc)

    # --- paho callbacks (run inside loop_read / loop_write / loop_misc) ---

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any,
                    properties: Any) -> None:
        if self._connack is not None and not self._connack.done():
            self._connack.set_result(reason)

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any,
                       properties: Any) -> None:
        why = f"broker connection lost: {reason}"
        if self._connack is not None and not self._connack.done():
            self._connack.set_exception(TransportError(why))
            self._connack.exception()  # retrieved by open(), or nobody
        if self._closing:
            self._end()
        else:
            self._fail(why)

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any,
                    properties: Any) -> None:
        self._on_publish_cb(mid)

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        self._inbox.put(InboundMessage(msg.topic, bytes(msg.payload), bool(msg.retain)))  # type: ignore[arg-type]

    def _fail(self, why: str) -> None:
        if not self._ended:
            self._ended = True
            self._ended_event.set()
            self._inbox.fail(TransportError(why))

    def _end(self) -> None:
        if not self._ended:
            self._ended = True
            self._ended_event.set()
            self._inbox.close()
