# The lean update receiver (docs/BOARDS.md "Over-the-air updates"). Rule: a
# board's heap is nearly full while the app runs (sensors, rules, outbox), so
# an update is not received there: the app answers the gateway's "begin" by
# rebooting into this mode ("rx" in ota.json), which loads only the board
# link and the receiver (app/ota_rx.py), takes one transfer, and reboots.
# otaboot.py takes the request, so whatever happens the next boot is normal:
# a mode that cannot reach its gateway or stalls costs one reboot.
import asyncio
import gc

from meshlink.errors import MeshLinkError

from app import link, ota, platform

MODE_MS = 120000  # the whole receive mode; then back to the app
IDLE_MS = 10000  # no record from the gateway for this long: give up


_peak = [0]  # highest live gc.mem_alloc() seen, for the HEAP line


def _note_heap():
    alloc = gc.mem_alloc()
    if alloc > _peak[0]:
        _peak[0] = alloc


def run(cfg):
    """Take one update over the board link, then reboot (never returns on a board)."""
    ota.init(cfg.base_dir)
    try:
        asyncio.run(_main(cfg))
    finally:
        platform.log("HEAP ota_mode alloc_peak=%d budget=%d" % (_peak[0], cfg.heap_budget))
    platform.reset(ota.REBOOT_EXIT)


async def _main(cfg):
    gc.threshold(4096)  # collect often: TCP buffers and chunks must find contiguous room
    clock = platform.Clock()
    boot_ctr = platform.bump_boot_counter(platform.data_path(cfg.base_dir,
                                                             cfg.boot_counter_file))
    rx = Rx(cfg)
    platform.log("OTA mode: boot_ctr=%d version=%s; waiting for the update" % (
        boot_ctr, ota.version()))
    backoff = link.Backoff(cfg.backoff_min_ms, cfg.backoff_max_ms)
    while clock.now_ms() < MODE_MS:
        gc.collect()
        bl = link.BoardLink(cfg, clock, boot_ctr)
        try:
            if cfg.transport != "serial" and cfg.transport != "ble":
                await platform.wifi_up(cfg.wifi, cfg.wifi_timeout_ms)
            await bl.connect()
            await bl.send({"t": "status", "ver": ota.version(), "ota": "receiving"})
            while clock.now_ms() < MODE_MS:
                obj = await asyncio.wait_for_ms(bl.recv(), IDLE_MS)
                backoff.reset()
                if obj.get("t") != "ota":
                    continue  # messages wait in the gateway's queue for the app
                reply = rx.handle(obj)
                gc.collect()
                _note_heap()  # live data (after a collection), as the app's HEAP alloc
                if reply is not None:
                    await bl.send(reply)
                    if reply["op"] == "done":
                        await asyncio.sleep_ms(300)  # let the record leave
                        platform.log("REBOOT (OTA update installed)")
                        return
                    if reply["op"] == "fail" and rx.rx is None:
                        return
        except (MeshLinkError, OSError, EOFError, asyncio.TimeoutError) as e:  # noqa: UP041
            platform.log("OTA mode: link down (%s: %s)" % (type(e).__name__, e))
            await asyncio.sleep_ms(backoff.next_ms())
        finally:
            await bl.close()
    platform.log("OTA mode: no complete update in %d ms; back to the app" % MODE_MS)


class Rx:
    """Routes "ota" records to one transfer (app/ota_rx.py Receiver) at a time."""

    def __init__(self, cfg):
        self._cfg = cfg
        self.rx = None
        self.reboot = False  # set once a verified update is switched in (ota_rx)
        self.state = ota.state

    def version(self):
        return ota.version()

    def trial(self):
        return ota.trial()

    def handle(self, obj):
        """An "ota" record -> the reply record, or None."""
        op, tid, rx = obj.get("op"), obj.get("id"), self.rx
        try:
            if op == "begin" and rx is not None and rx.id == tid:  # a resent begin
                return rx.ack()
            if op == "begin":
                self._end(None)
                gc.collect()
                from app.ota_rx import Receiver

                self.rx = Receiver(self._cfg, self, obj)
                return self.rx.ack()
            if rx is None or rx.id != tid:
                return {"t": "ota", "op": "fail", "id": tid, "why": "no such transfer"}
            if op == "abort":
                self._end("aborted by the gateway")
                return None
            reply = rx.chunk(obj)
            if reply is not None and reply["op"] == "done":
                self.rx = None
            return reply
        except Exception as e:  # noqa: BLE001 - OtaError, OSError, bad fields: refuse it
            why = ("%s: %s" % (type(e).__name__, e))[:120]
            if self.rx is None:  # the begin itself was refused: nothing staged
                platform.log("OTA refused id=%s: %s; still running %s" % (
                    tid, why, ota.version()))
            self._end(why)
            return {"t": "ota", "op": "fail", "id": tid, "why": why}

    def _end(self, why):
        rx, self.rx = self.rx, None
        if rx is not None:
            rx.drop(why or "replaced by a new transfer")
