# The board's run loop (asyncio): sensor schedule, readings out per routes,
# gateway messages in (ack, rules, commands, text), keepalive, reconnect.
# Rules: one App per boot. The boot counter is bumped once, in __init__,
# before any HELLO. Every reconnect or rekey is a new BoardLink (fresh
# nonce); failures back off exponentially with jitter. Record plaintexts
# follow the contract in docs/FIRMWARE.md (integers only, no floats).
# Console lines (BOOT, LINK, READING, ACTION, TEXT, HEAP, ...) are a stable
# interface: tests and the gateway's board tests read them.
import asyncio
import gc

from meshlink._compat import b64decode
from meshlink.cjson import loads
from meshlink.errors import DecodeError, MeshLinkError, TransportError
from meshlink.nodeid import is_id

from app import link, platform, rules, sensors

_RECENT_IDS = 16  # msg ids remembered: a resent msg is acked again, not re-run
_HOUSEKEEPING_MS = 1000  # watchdog feed period
_GC_THRESHOLD_BYTES = 8192  # gc.threshold: collect after this much allocation


class App:
    """Everything one boot of the board runs. run() never returns on a board."""

    def __init__(self, cfg):
        """Build sensors and handlers and bump the boot counter.

        Raises:
            ConfigError: a sensor the platform lacks, or a boot counter
                problem (see platform.bump_boot_counter).
        """
        self.cfg = cfg
        self.clock = platform.Clock()
        self.sensors = sensors.build(cfg.sensors)
        self.rules = rules.Rules(cfg.rules)
        self.handlers = rules.Handlers(cfg.handlers)
        counter_path = platform.data_path(cfg.base_dir, cfg.boot_counter_file)
        self.boot_ctr = platform.bump_boot_counter(counter_path)
        self.watchdog = None
        self.outbox = []  # reading records until the gateway confirms them ("got")
        self.sent = 0  # outbox[:sent] went out in this session, not yet confirmed
        self._head_at_ping = None  # outbox[0] at the last ping
        self.seq = 0  # reading seq, +1 per reading, from 1 at every boot
        self.ping_seq = 0
        self.dropped_readings = 0
        self.recent_ids = []
        self.last_rx_ms = 0
        self.peak_alloc = 0
        self.sessions = 0
        self._wake = asyncio.Event()
        self._rx_error = None
        self._backoff = link.Backoff(cfg.backoff_min_ms, cfg.backoff_max_ms)
        self.bl = None  # the current BoardLink
        self.session_rx = 0  # authentic records in the current session
        self.sleeper = None  # app.sleep.Sleeper when config.json says sleep_ms
        if cfg.sleep_ms:
            from app.sleep import Sleeper  # only sleeping boards pay for it

            self.sleeper = Sleeper(self)

    def run(self):
        """Run forever (asyncio.run). Exceptions other than link failures
        (MemoryError, bugs) propagate: main.py resets the board. Ctrl-C
        (mpremote, a person at the REPL) stops the app; a running watchdog
        is then fed from a timer so the board is not reset under mpremote."""
        try:
            asyncio.run(self.main())
        except KeyboardInterrupt:
            if self.watchdog is not None:
                self.watchdog.keep_fed()
            platform.log("STOPPED (Ctrl-C)")

    async def main(self):
        cfg = self.cfg
        platform.log("BOOT name=%s board=%s platform=%s node=%s boot_ctr=%d transport=%s" % (
            cfg.name, cfg.board, platform.PLATFORM, cfg.node_id, self.boot_ctr, cfg.transport))
        for key in cfg.unknown_keys:
            platform.log("WARN config.json: unknown key '%s' ignored" % key)
        if self.sleeper is not None:
            self.sleeper.wake()  # before the sensors run: the outbox comes back first
        self.watchdog = platform.Watchdog(cfg.watchdog_ms)
        # Collect after every 8 KB allocated: garbage never piles up far
        # into the heap, so a 1 KB buffer still finds a contiguous run.
        gc.threshold(_GC_THRESHOLD_BYTES)
        asyncio.create_task(self._sensor_loop())
        asyncio.create_task(self._housekeeping_loop())
        if cfg.wifi is None and cfg.provision is not None:  # provisioning hook
            from app import provision  # only boards without baked WiFi pay for it

            cfg.wifi = await provision.wifi(cfg, self.clock)
            provision.unload()
            del provision
            gc.collect()
        await self._link_loop()

    # ------------------------------------------------------------ link

    async def _link_loop(self):
        cfg = self.cfg
        while True:
            gc.collect()  # start every attempt from a clean heap
            bl = link.BoardLink(cfg, self.clock, self.boot_ctr)
            if self.sleeper is not None:  # sleep hook: the radio goes on; resume once
                bl.resumed = self.sleeper.client_for(self.clock.now_ms())
            try:
                if cfg.transport != "serial" and cfg.transport != "ble":  # no WiFi needed
                    await platform.wifi_up(cfg.wifi, cfg.wifi_timeout_ms)
                await bl.connect()
                gc.collect()  # at a shallow stack: the handshake's garbage goes
                self.sessions += 1
                platform.log("LINK up %s %s sid=%08x boot_ctr=%d session=%d%s" % (
                    cfg.transport, bl.peer, bl.client.sid, self.boot_ctr, self.sessions,
                    " resumed=1" if bl.resumed is not None else ""))
                await self._session(bl)
                platform.log("REKEY session=%d" % self.sessions)
            except (MeshLinkError, OSError, EOFError, asyncio.TimeoutError) as e:  # noqa: UP041
                delay_ms = self._backoff.next_ms()
                platform.log("LINK down (%s: %s); retry %d in %d ms" % (
                    type(e).__name__, e, self._backoff.failures, delay_ms))
                await bl.close()
                await asyncio.sleep_ms(delay_ms)
            finally:
                await bl.close()
                # Drop the old link (its session keys, buffers, tasks' frames)
                # before the next attempt: both would not fit in the heap.
                self.bl = bl = None
                self._rx_error = None

    async def _session(self, bl):
        """Send the outbox, ping, watch the gateway's liveness. Returns when
        the session needs a rekey; raises when the link failed."""
        cfg = self.cfg
        self._rx_error = None
        self.bl = bl
        self.session_rx = 0
        self.last_rx_ms = self.clock.now_ms()
        rx = asyncio.create_task(self._rx_loop(bl))
        next_ping_ms = self.clock.now_ms()  # first ping at once: proves the session
        self.sent = 0  # a new session sends every unconfirmed reading again
        try:
            while True:
                if self._rx_error is not None:
                    raise self._rx_error
                now = self.clock.now_ms()
                if bl.client.needs_rekey(now):
                    return
                if now - self.last_rx_ms >= cfg.link_timeout_ms:
                    raise TransportError("no record from the gateway in %d ms" % (
                        cfg.link_timeout_ms))
                while self.sent < len(self.outbox):
                    self.sent += 1  # before the await: a "got" may arrive meanwhile
                    await bl.send(self.outbox[self.sent - 1])
                if now >= next_ping_ms:
                    head = self.outbox[0] if self.outbox else None
                    if head is not None and head is self._head_at_ping:
                        self.sent = 0  # unconfirmed for a whole ping interval: send again
                    self._head_at_ping = head
                    self.ping_seq += 1
                    await bl.send({"t": "ping", "seq": self.ping_seq})
                    next_ping_ms = now + cfg.ping_interval_ms
                wait_ms = min(next_ping_ms, self.last_rx_ms + cfg.link_timeout_ms) - now
                if self.sleeper is not None:  # sleep hook: ask to sleep, or sleep
                    wait_ms = min(wait_ms, await self.sleeper.step(bl, now))
                self._wake.clear()
                gc.collect()  # here, at a shallow stack, garbage really goes
                try:
                    await asyncio.wait_for_ms(self._wake.wait(), max(1, wait_ms))
                except asyncio.TimeoutError:  # noqa: UP041 (MicroPython: not the builtin)
                    pass
        finally:
            rx.cancel()

    async def _rx_loop(self, bl):
        try:
            while True:
                obj = await bl.recv()
                self.last_rx_ms = self.clock.now_ms()
                self.session_rx += 1
                self._backoff.reset()  # the gateway answered: the link works
                await self._handle(bl, obj)
                self._note_heap()
        except Exception as e:  # noqa: BLE001 - handed to _session, which raises it
            self._rx_error = e
            self._wake.set()

    # ------------------------------------------------------------ inbound

    async def _handle(self, bl, obj):
        t = obj.get("t")
        if t == "pong":
            return
        if t == "got":
            self._confirmed(obj.get("seq"), obj.get("to"))
            self._wake.set()
            return
        if t == "sleep_ok" and self.sleeper is not None:
            self.sleeper.granted = True
            self._wake.set()
            return
        if t == "ota":  # an update offer (docs/BOARDS.md §13): app/ota.py, loaded only now
            from app import ota

            await ota.offered(bl, obj)
            return
        if t != "msg":
            platform.log("IGNORED record t=%r" % (t,))
            return
        msg_id, src, dst = obj.get("id"), obj.get("from"), obj.get("to")
        if not is_id(msg_id) or not is_id(src) or (dst is not None and not is_id(dst)):
            platform.log("IGNORED msg with bad id/from/to")
            return
        try:
            data = b64decode(obj.get("data"))
        except DecodeError:
            platform.log("IGNORED msg %s: data is not base64" % msg_id)
            return
        if msg_id in self.recent_ids:
            platform.log("DUPLICATE msg %s" % msg_id)
        else:
            self.recent_ids.append(msg_id)
            if len(self.recent_ids) > _RECENT_IDS:
                self.recent_ids.pop(0)
            self._deliver(src, data)
        if dst == self.cfg.node_id:  # broadcasts are not acked
            await bl.send({"t": "ack", "id": msg_id})

    def _confirmed(self, seq, to):
        """The gateway has the reading (seq, to): it leaves the outbox."""
        for i in range(len(self.outbox)):
            r = self.outbox[i]
            if r["seq"] == seq and r["to"] == to:
                self.outbox.pop(i)
                if i < self.sent:
                    self.sent -= 1
                return

    def _deliver(self, src, data):
        body = None
        if data[:1] == b"{":
            try:
                body = loads(data)
            except DecodeError:
                body = None
        if type(body) is dict and body.get("kind") == "reading":
            sensor, value = body.get("sensor"), body.get("value_milli")
            platform.log("RX reading from %s %s=%r" % (src, sensor, value))
            for action, arg, why in self.rules.matches(src, sensor, value):
                self.handlers.run(action, arg, why)
            return
        if type(body) is dict and body.get("kind") == "command":
            self.handlers.run(body.get("action"), body.get("arg"), "command from %s" % src)
            return
        try:
            text = data.decode()
        except UnicodeError:
            platform.log("RX %d bytes from %s" % (len(data), src))
            return
        platform.log("TEXT from %s: %s" % (src, text))

    # ------------------------------------------------------------ sensors

    async def _sensor_loop(self):
        if not self.sensors:
            return
        now = self.clock.now_ms()
        due = [now for _ in self.sensors]  # first sample at once
        while True:
            now = self.clock.now_ms()
            for i in range(len(self.sensors)):
                if now >= due[i]:
                    self._take(self.sensors[i])
                    due[i] += self.sensors[i].interval_ms
                    if due[i] <= now:  # fell behind: skip, don't burst
                        due[i] = now + self.sensors[i].interval_ms
            await asyncio.sleep_ms(max(1, min(due) - self.clock.now_ms()))

    def _take(self, sensor):
        try:
            value = sensor.read()
        except (OSError, ValueError) as e:
            platform.log("SENSOR %s failed: %s" % (sensor.name, e))
            return
        self.seq += 1
        platform.log("READING %s seq=%d value_milli=%d unit=%s" % (
            sensor.name, self.seq, value, sensor.unit))
        for to in self.cfg.routes.get(sensor.name, (None,)):
            self.outbox.append({"t": "reading", "sensor": sensor.name, "value_milli": value,
                                "unit": sensor.unit, "seq": self.seq, "to": to})
        while len(self.outbox) > self.cfg.outbox_max:
            lost = self.outbox.pop(0)
            if self.sent:
                self.sent -= 1
            self.dropped_readings += 1
            platform.log("OUTBOX full: dropped reading seq=%d" % lost["seq"])
        self._wake.set()

    # ------------------------------------------------------------ upkeep

    def _note_heap(self):
        alloc = gc.mem_alloc()
        if alloc > self.peak_alloc:
            self.peak_alloc = alloc

    async def _housekeeping_loop(self):
        cfg = self.cfg
        next_report_ms = self.clock.now_ms() + cfg.heap_report_ms
        while True:
            self.watchdog.feed()
            self._note_heap()
            now = self.clock.now_ms()
            if self.sleeper is not None and self.sleeper.overdue(now):
                self.sleeper.sleep(self.bl, now)  # the cycle took too long: sleep anyway
            if cfg.heap_report_ms and now >= next_report_ms:
                next_report_ms = now + cfg.heap_report_ms
                gc.collect()
                alloc, free = platform.heap()
                platform.log("HEAP alloc=%d free=%d peak=%d budget=%d readings=%d dropped=%d"
                             % (alloc, free, self.peak_alloc, cfg.heap_budget, self.seq,
                                self.dropped_readings))
                if alloc > cfg.heap_budget:
                    platform.log("WARN heap use %d over heap_budget %d" % (alloc, cfg.heap_budget))
            await asyncio.sleep_ms(_HOUSEKEEPING_MS if not cfg.heap_report_ms else
                                   min(_HOUSEKEEPING_MS, cfg.heap_report_ms))
