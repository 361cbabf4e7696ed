# Over-the-air updates, the app's side (docs/BOARDS.md "Over-the-air
# updates"; records in docs/PROTOCOL.md §8.1). Rule: kept tiny, because the
# app's heap is nearly full: it reports the running version, confirms a new
# slot once a session is up, and answers an update offer by rebooting into
# the lean update receiver (app/ota_mode.py), which does the transfer.
import asyncio
import json
import os

from app import platform

REBOOT_EXIT = 3  # unix port: the exit code boards/simboot.py boots again on
TRIAL_MS = 60000  # a new slot must reach its gateway within this, or it reboots back
STATE_FILE = "ota.json"  # the format is in firmware/otaboot.py
rebooting = False
state = None  # ota.json as otaboot left it at this boot (None: never updated)
_base = ""  # config.json's directory, "" or ending in "/"
_loaded = False  # init() ran


def init(base_dir):
    """Read the state otaboot chose for this boot; base_dir: config.json's directory."""
    global _base, state, _loaded
    _loaded = True
    _base = "" if base_dir in ("", ".") else base_dir.rstrip("/") + "/"
    try:
        with open(_base + STATE_FILE) as f:
            state = json.loads(f.read())
    except (OSError, ValueError):
        state = None


def path(name):
    """A file beside config.json."""
    return _base + name


def write(st):
    """Persist st as ota.json (tmp file, then rename: never half-written)."""
    p = _base + STATE_FILE
    with open(p + ".tmp", "w") as f:
        f.write(json.dumps(st))
    try:
        os.rename(p + ".tmp", p)
    except OSError:  # FAT cannot rename over an existing file
        os.remove(p)
        os.rename(p + ".tmp", p)


def version():
    """The running firmware's version ("factory": USB-flashed, no update yet)."""
    return state["ver"] if state else "factory"


def trial():
    """True while the running slot is new and not yet confirmed."""
    return bool(state and state["trial"])


def request_rx():
    """Ask for the update receiver at the next boot: "rx" in ota.json (a board
    never updated gets a state that is only the request; otaboot takes it)."""
    st = dict(state) if state else {}
    st["rx"] = 1
    write(st)


def on_link_up():
    """A session is up: a trial slot is now confirmed. -> the status record
    (running version, and how the last update ended)."""
    st = state
    if st and st["trial"]:
        st["trial"] = 0
        st["note"] = "updated"
        write(st)
        platform.log("OTA confirmed version %s" % st["ver"])
    return {"t": "status", "ver": version(), "ota": (st.get("note") or "") if st else ""}


def offer(obj):
    """An "ota" record in the app -> (reply, reboot now?). A "begin" it can
    take reboots the board into the update receiver ("rx" in ota.json)."""
    global rebooting
    tid = obj.get("id")
    if obj.get("op") != "begin":
        return {"t": "ota", "op": "fail", "id": tid, "why": "no such transfer"}, False
    if rebooting:  # a resent begin: the reboot is under way
        return {"t": "ota", "op": "reboot", "id": tid}, False
    if trial():
        return {"t": "ota", "op": "fail", "id": tid, "why": "not now (on trial)"}, False
    request_rx()
    rebooting = True
    platform.log("OTA offered id=%s version=%s: rebooting into the update receiver" % (
        tid, obj.get("ver")))
    return {"t": "ota", "op": "reboot", "id": tid}, True


def attach(app):
    """An updated board (ota.json at boot; main.py calls this): wrap the app's
    link loop (the version line, the trial guard) and its sessions (confirm
    a trial, the status record). A board never updated skips this."""
    init(app.cfg.base_dir)
    loop, session = app._link_loop, app._session

    async def link_loop():
        platform.log("FIRMWARE version=%s trial=%d" % (version(), trial()))
        if trial():
            asyncio.create_task(trial_guard())
        await loop()

    async def on_session(bl):
        await bl.send(on_link_up())
        await session(bl)

    app._link_loop, app._session = link_loop, on_session


async def offered(bl, obj):
    """An "ota" record in the app: answer it; a "begin" it can take reboots
    the board into the update receiver."""
    if not _loaded:
        init(bl.cfg.base_dir)
    reply, reboot = offer(obj)
    await bl.send(reply)
    if reboot:
        asyncio.create_task(reboot_after(300, "into the update receiver"))


async def reboot_after(delay_ms, why):
    """Reboot into what otaboot will choose (unix port: exit REBOOT_EXIT)."""
    await asyncio.sleep_ms(delay_ms)
    platform.log("REBOOT (%s)" % why)
    platform.reset(REBOOT_EXIT)


async def trial_guard():
    """A trial slot that has not confirmed within TRIAL_MS reboots (and so rolls back)."""
    await asyncio.sleep_ms(TRIAL_MS)
    if trial():
        await reboot_after(0, "OTA version %s unconfirmed after %d ms" % (version(), TRIAL_MS))
