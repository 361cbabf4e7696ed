# Over-the-air updates, the board's side (docs/BOARDS.md "Over-the-air
# updates"; records in docs/PROTOCOL.md §8.1). Rules: the gateway streams
# the signed manifest, then each file, in "ota" records; this module writes
# the files into the slot that is not running, checks the per-board MAC over
# the manifest hash and the SHA-256 of every file, and only then switches
# (otaboot.write: one rename). Nothing the running firmware boots from is
# touched before the switch, so a bad or interrupted transfer changes
# nothing. Memory: one file open and one SHA-256 at a time; the manifest
# (<= MAX_MANIFEST_BYTES) is the largest buffer.
import otaboot

from app import platform

TRIAL_MS = 60000  # a new slot must reach its gateway within this, or it reboots back


class Ota:
    """Version reporting and confirmation of a trial boot; the transfer code
    (app/ota_rx.py, ~5 KB of heap) is imported at the first "begin" only."""

    def __init__(self, cfg):
        self._cfg = cfg
        self.state = otaboot.state
        self.reboot = False  # set once a verified update is switched in
        self.rx = None  # ota_rx.Receiver, once an update was offered

    def version(self):
        return self.state["ver"] if self.state else "factory"

    def trial(self):
        return bool(self.state and self.state["trial"])

    def on_link_up(self):
        """A session is up: a trial slot is now confirmed. Returns the status
        record to send (version, and how the last update ended)."""
        st = self.state
        if st and st["trial"]:
            st["trial"] = 0
            st["note"] = "updated"
            otaboot.write(st)
            platform.log("OTA confirmed version %s" % st["ver"])
        return {"t": "status", "ver": self.version(),
                "ota": (st.get("note") or "") if st else ""}

    def offer(self, obj):
        """The app's answer to an "ota" record: a "begin" it can take makes the
        board reboot into the update receiver (app/ota_mode.py: the app's heap
        has no room for it). Returns (reply or None, reboot?)."""
        if obj.get("op") != "begin":
            return {"t": "ota", "op": "fail", "id": obj.get("id"),
                    "why": "no such transfer"}, False
        if self.reboot:  # a resent begin: the reboot is under way
            return {"t": "ota", "op": "reboot", "id": obj.get("id")}, False
        if self.trial():
            return {"t": "ota", "op": "fail", "id": obj.get("id"),
                    "why": "not now (on trial)"}, False
        otaboot.request_rx()
        self.reboot = True
        platform.log("OTA offered id=%s version=%s: rebooting into the update receiver" % (
            obj.get("id"), obj.get("ver")))
        return {"t": "ota", "op": "reboot", "id": obj.get("id")}, True

    def handle(self, obj):
        """In the update receiver: an "ota" record -> the reply record, or None.
        The transfer code (app/ota_rx.py) is loaded for a transfer only."""
        op, tid, rx = obj.get("op"), obj.get("id"), self.rx
        try:
            if op == "begin" and rx is not None and rx.id == tid:  # a resent begin
                return rx.ack()
            if op == "begin":
                self._end(None)
                import gc

                gc.collect()  # room for the receiver, at a shallow stack
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
                self._unload()
            return reply
        except Exception as e:  # noqa: BLE001 - OtaError, OSError, bad fields: refuse it
            why = ("%s: %s" % (type(e).__name__, e))[:120]
            if self.rx is None:  # the begin itself was refused: nothing staged
                platform.log("OTA refused id=%s: %s; still running %s" % (
                    tid, why, self.version()))
            self._end(why)
            return {"t": "ota", "op": "fail", "id": tid, "why": why}

    def _end(self, why):
        rx, self.rx = self.rx, None
        if rx is not None:
            rx.drop(why or "replaced by a new transfer")
            self._unload()

    def _unload(self):
        import sys

        sys.modules.pop("app.ota_rx", None)  # its code's heap back

    async def reboot_after(self, delay_ms, why):
        """Reboot into the state otaboot will read (unix port: exit REBOOT_EXIT)."""
        import asyncio

        await asyncio.sleep_ms(delay_ms)
        platform.log("REBOOT (%s)" % why)
        platform.reset(otaboot.REBOOT_EXIT)

    async def trial_guard(self):
        """A trial slot that has not confirmed within TRIAL_MS reboots (and so rolls back)."""
        import asyncio

        await asyncio.sleep_ms(TRIAL_MS)
        if self.trial():
            await self.reboot_after(0, "OTA version %s unconfirmed after %d ms" % (
                self.version(), TRIAL_MS))
