# The wake state of a sleeping board (app/sleep.py): restored at wake,
# saved at sleep. Loaded only for those two moments (and unloaded after the
# wake): the link needs the heap in between.
# Rules (PROTOCOL.md §6.7): the session is saved only as the last act
# before sleep, and the state is erased on wake before it is used
# (platform.take_wake_state), so a seq is never sealed twice under one key.
# A malformed state is a cold start (one WARN line), never a crash.
# Besides app/platform.py, the one module that imports a board module
# (machine.RTC, machine.reset_cause): loaded only by sleeping boards.
import gc
import os
import sys

from meshlink import boardlink
from meshlink.errors import MeshLinkError

from app import platform

_STATE_VERSION = 1
_IDS_KEPT = 8  # message ids kept across sleep: a resent msg is acked, not run twice


# -- where the state is kept: the platform-specific part (BOARD ONLY: machine.RTC)
_RTC_MAX_BYTES = 2048  # MicroPython's esp32 RTC user memory


def save_wake_state(path, obj):
    """Keep obj (JSON-able: dicts, lists, str, int, None) through the coming
    deep sleep. On the unix port it is streamed to the file (json.dump): no
    copy of it in the heap.

    Raises:
        OSError: it could not be kept (the board then sleeps without it).
    """
    import json

    if platform.ON_BOARD:
        data = json.dumps(obj).encode()
        if len(data) > _RTC_MAX_BYTES:
            raise OSError("wake state of %d bytes over the RTC memory" % len(data))
        import machine

        machine.RTC().memory(data)
        return
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f)
    os.rename(tmp, path)


def take_wake_state(path):
    """The object kept by save_wake_state before the last deep sleep, or None
    (a cold boot, a reset, or no state). It is erased before it is returned:
    state is used by one boot at most, whatever happens after.

    Raises:
        ValueError: the kept state is not JSON (it is erased all the same).
    """
    import json

    if platform.ON_BOARD:
        import machine

        if machine.reset_cause() != machine.DEEPSLEEP_RESET:
            return None
        rtc = machine.RTC()
        data = rtc.memory()
        rtc.memory(b"")
        return json.loads(data) if data else None
    try:
        f = open(path)
    except OSError:
        return None
    try:
        os.remove(path)  # erased before use: never used twice
    except OSError:
        f.close()
        return None
    with f:
        return json.load(f)




def _path(cfg):
    return platform.data_path(cfg.base_dir, cfg.sleep_state_file)


def wake(sleeper):
    """Restore outbox, reading seq, recent ids and session into the app; WAKE."""
    app = sleeper.app
    cfg = app.cfg
    try:
        state = take_wake_state(_path(cfg))
    except ValueError:
        state = False
    if state is not None and (type(state) is not dict or state.get("v") != _STATE_VERSION):
        platform.log("WARN wake state unreadable: cold start")
        state = None
    if state is not None:
        try:
            seq = state.get("seq", 0)
            if type(seq) is not int or seq < 0:
                raise ValueError("seq")
            app.seq = seq
            app.outbox = [r for r in state.get("outbox", []) if type(r) is dict and "seq" in r]
            app.recent_ids = [i for i in state.get("ids", []) if type(i) is str]
            s = state.get("s")
            if s is not None and cfg.sleep_resume and cfg.transport == "udp":
                sleeper.resume = (s[0], bytes.fromhex(s[1]), s[2], s[3], s[4] + cfg.sleep_ms)
        except (TypeError, ValueError, IndexError, AttributeError):
            platform.log("WARN wake state malformed: session not resumed")
            sleeper.resume = None
    sleeper.seq_at_wake = app.seq
    warm = state is not None
    state = None  # garbage now
    gc.collect()
    if sleeper.resume is not None:  # now, at boot: the modules' heap comes back unfragmented
        sleeper.resume = _resumed(cfg, app.boot_ctr, sleeper.resume, app.clock.now_ms())
    platform.log("WAKE %s seq=%d outbox=%d session=%s" % (
        "warm" if warm else "cold", app.seq, len(app.outbox),
        "kept" if sleeper.resume is not None else "none"))
    _unload()


def _resumed(cfg, boot_ctr, state, now_ms):
    """A BoardClient resumed from state, or None (logged)."""
    from meshlink import boardlink_resume

    try:
        return boardlink_resume.resume_client(cfg.psk, cfg.board_id, boot_ctr, state, now_ms)
    except MeshLinkError as e:
        platform.log("WARN session not resumed: %s" % e)
        return None


def sleep(sleeper, bl, now_ms):
    """Save the state (with the session if bl holds a live one); SLEEP; deep sleep."""
    app = sleeper.app
    cfg = app.cfg
    gc.collect()
    session = None
    client = bl.client if bl is not None else None
    if client is not None and client.state == boardlink.ESTABLISHED and cfg.sleep_resume \
            and cfg.transport == "udp" and not client.needs_rekey(now_ms):
        from meshlink import boardlink_resume

        sid, transcript, tx_seq, rx_highest, age_ms = boardlink_resume.suspend_state(
            client, now_ms)
        session = [sid, transcript.hex(), tx_seq, rx_highest, age_ms]
    state = {"v": _STATE_VERSION, "seq": app.seq, "outbox": app.outbox,
             "ids": app.recent_ids[-_IDS_KEPT:], "s": session}
    try:
        save_wake_state(_path(cfg), state)
    except OSError as e:
        platform.log("WARN wake state not kept: %s" % e)
    radio_ms = now_ms - sleeper.radio_from_ms if sleeper.radio_from_ms >= 0 else 0
    platform.log("SLEEP ms=%d radio_on_ms=%d granted=%d session=%s outbox=%d peak=%d "
                 "budget=%d" % (cfg.sleep_ms, radio_ms, 1 if sleeper.granted else 0,
                                "kept" if session is not None else "none",
                                len(app.outbox), app.peak_alloc, cfg.heap_budget))
    platform.deep_sleep(cfg.sleep_ms)


def _unload():
    import meshlink

    import app as app_pkg

    for name in ("app.sleepstate", "meshlink.boardlink_resume"):
        if name in sys.modules:
            del sys.modules[name]
    for pkg, attr in ((app_pkg, "sleepstate"), (meshlink, "boardlink_resume")):
        if attr in pkg.__dict__:
            delattr(pkg, attr)
    gc.collect()
