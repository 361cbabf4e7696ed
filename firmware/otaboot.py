# Boot-time firmware slot choice for over-the-air updates (docs/BOARDS.md,
# "Over-the-air updates"). Rule: runs first, before anything of app/ or
# meshlink/ is imported, so it imports only os, sys and json. It is a boot
# file: USB flashing installs it (with main.py); an OTA bundle never replaces
# it, so a bad update cannot break the way back.
#
# The state file ota.json (beside config.json, replaced by write-then-rename):
#   {"slot": "ota/a" | "ota/b" | "", "ver": V, "prev": SLOT, "prev_ver": V,
#    "trial": 0 | 1 | 2, "note": TEXT}
# "" is the USB-flashed firmware at the root. trial 1: a new slot, never
# booted; this boot makes it 2. The app sets 0 once its first board-link
# session is up (app/ota.py). A boot that finds 2 (the new slot booted and
# never confirmed: it crashed, hung or could not reach the gateway) goes back
# to prev.
import json
import os
import sys

STATE_FILE = "ota.json"
RX_FLAG = "ota.rx"  # present: boot the lean update receiver (app/ota_mode.py) once
REBOOT_EXIT = 3  # unix port: exit code that asks the launcher to boot again

state = None  # the state in force for this boot (None: no OTA ever installed)
base = ""  # directory of config.json and ota.json, "" or ending in "/"


def _base():
    if sys.platform != "esp32" and len(sys.argv) > 1:
        path = sys.argv[1]
    else:
        path = sys.argv[0] if sys.argv else ""
    i = path.rfind("/")
    return path[:i + 1] if i >= 0 else ""


def write(st):
    """Persist st as the state (tmp file, then rename: never half-written)."""
    path = base + STATE_FILE
    with open(path + ".tmp", "w") as f:
        f.write(json.dumps(st))
    try:
        os.rename(path + ".tmp", path)
    except OSError:  # FAT cannot rename over an existing file
        os.remove(path)
        os.rename(path + ".tmp", path)


def version():
    """The running firmware's version ("factory": USB-flashed, no update yet)."""
    return state["ver"] if state else "factory"


def trial():
    """True while the running slot is new and not yet confirmed."""
    return bool(state and state["trial"])


def receive_mode():
    """True if the app asked to boot the update receiver (a gateway offered one)."""
    try:
        os.stat(base + RX_FLAG)
        return True
    except OSError:
        return False


def request_rx():
    """Ask for the update receiver at the next boot."""
    with open(base + RX_FLAG, "w") as f:
        f.write("1")


def clear_rx():
    try:
        os.remove(base + RX_FLAG)
    except OSError:
        pass


def _usable(slot):
    try:
        os.stat(base + slot + "/app")
        return True
    except OSError:
        return False


def select():
    """Choose this boot's firmware: put its slot first on sys.path.

    Returns the state in force (also in otaboot.state), or None.
    """
    global state, base
    base = _base()
    try:
        with open(base + STATE_FILE) as f:
            st = json.loads(f.read())
        st["slot"], st["trial"]  # noqa: B018 - a state without them is corrupt
    except (OSError, ValueError, KeyError, TypeError):
        return None  # no update ever installed (or a corrupt state: the root firmware)
    if st["trial"] == 2 or (st["slot"] and not _usable(st["slot"])):
        print("OTA rollback: version %s did not confirm; back to %s" % (
            st.get("ver"), st.get("prev_ver")))
        st = {"slot": st.get("prev", ""), "ver": st.get("prev_ver", "factory"),
              "prev": "", "prev_ver": "", "trial": 0,
              "note": "rolled back from %s" % st.get("ver")}
        write(st)
    elif st["trial"] == 1:
        st["trial"] = 2
        write(st)
    if st["slot"]:
        sys.path.insert(0, base + st["slot"])
    state = st
    return st

