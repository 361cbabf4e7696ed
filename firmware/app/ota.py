# Over-the-air updates, the app's side (docs/BOARDS.md "Over-the-air
# updates"; records in docs/PROTOCOL.md §8.1). Rule: kept tiny, because the
# app's heap is nearly full: it reports the running version, confirms a new
# slot once a session is up, and answers an update offer by rebooting into
# the lean update receiver (app/ota_mode.py), which does the transfer.
import asyncio

import otaboot

from app import platform

TRIAL_MS = 60000  # a new slot must reach its gateway within this, or it reboots back
rebooting = False


def on_link_up():
    """A session is up: a trial slot is now confirmed. -> the status record
    (running version, and how the last update ended)."""
    st = otaboot.state
    if st and st["trial"]:
        st["trial"] = 0
        st["note"] = "updated"
        otaboot.write(st)
        platform.log("OTA confirmed version %s" % st["ver"])
    return {"t": "status", "ver": otaboot.version(), "ota": (st.get("note") or "") if st else ""}


def offer(obj):
    """An "ota" record in the app -> (reply, reboot now?). A "begin" it can
    take reboots the board into the update receiver (otaboot.RX_FLAG)."""
    global rebooting
    tid = obj.get("id")
    if obj.get("op") != "begin":
        return {"t": "ota", "op": "fail", "id": tid, "why": "no such transfer"}, False
    if rebooting:  # a resent begin: the reboot is under way
        return {"t": "ota", "op": "reboot", "id": tid}, False
    if otaboot.trial():
        return {"t": "ota", "op": "fail", "id": tid, "why": "not now (on trial)"}, False
    otaboot.request_rx()
    rebooting = True
    platform.log("OTA offered id=%s version=%s: rebooting into the update receiver" % (
        tid, obj.get("ver")))
    return {"t": "ota", "op": "reboot", "id": tid}, True


async def reboot_after(delay_ms, why):
    """Reboot into what otaboot will choose (unix port: exit REBOOT_EXIT)."""
    await asyncio.sleep_ms(delay_ms)
    platform.log("REBOOT (%s)" % why)
    platform.reset(otaboot.REBOOT_EXIT)


async def trial_guard():
    """A trial slot that has not confirmed within TRIAL_MS reboots (and so rolls back)."""
    await asyncio.sleep_ms(TRIAL_MS)
    if otaboot.trial():
        await reboot_after(0, "OTA version %s unconfirmed after %d ms" % (otaboot.version(),
                                                                         TRIAL_MS))
