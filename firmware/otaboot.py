# The boot loader for over-the-air updates (docs/BOARDS.md §13). main.py
# imports it only when ota.json exists (a never-updated board loads nothing
# of OTA: every module interns its names for good) and unloads it right after.
# Rule: runs before anything of app/ or meshlink/ is imported, so it imports
# only os, sys and json. A boot file: USB flashing installs it; an OTA bundle
# never replaces it, so a bad update cannot break the way back. app/ota.py
# reads and writes the same file later.
#
# The state file ota.json (beside config.json, replaced by write-then-rename):
#   {"slot": "ota/a" | "ota/b" | "", "ver": V, "prev": SLOT, "prev_ver": V,
#    "trial": 0 | 1 | 2, "note": TEXT, "rx": 1 (optional)}
# "" is the USB-flashed firmware at the root. trial 1: a new slot, never
# booted; this boot makes it 2. The app sets 0 once its first board-link
# session is up. A boot that finds 2 (the new slot booted and never
# confirmed: it crashed, hung or could not reach the gateway) goes back to
# prev. "rx": 1 asks for the update receiver (app/ota_mode.py) once; a state
# that is only that request ({"rx": 1}, a board never updated) is removed.
import json
import os
import sys


def _write(path, st):
    with open(path + ".tmp", "w") as f:
        f.write(json.dumps(st))
    try:
        os.rename(path + ".tmp", path)
    except OSError:  # FAT cannot rename over an existing file
        os.remove(path)
        os.rename(path + ".tmp", path)


def choose(base):
    """Choose this boot's firmware: put its slot first on sys.path. base:
    config.json's directory ("" or ending in "/").

    Returns 0 (no OTA state: the USB-flashed firmware), 1 (an unconfirmed
    slot: a crash reboots, and the next boot rolls back), 2 (boot the update
    receiver) or 3 (an updated board: the app loads app/ota.py).
    """
    p = base + "ota.json"
    try:
        with open(p) as f:
            st = json.loads(f.read())
        rx = st.pop("rx", 0)
        if "slot" not in st:  # only a receive request: the board was never updated
            os.remove(p)
            return 2 if rx else 0
        slot, trial = st["slot"], st["trial"]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return 0  # a corrupt state: the root
    try:
        if slot:
            os.stat(base + slot + "/app")
    except OSError:
        trial = 2  # the slot is gone: back to prev
    if trial == 2:
        print("OTA rollback: version %s did not confirm; back to %s" % (
            st.get("ver"), st.get("prev_ver")))
        slot, trial, rx = st.get("prev", ""), 0, 0
        st = {"slot": slot, "ver": st.get("prev_ver", "factory"), "prev": "", "prev_ver": "",
              "trial": 0, "note": "rolled back from %s" % st.get("ver")}
        _write(p, st)
    elif trial == 1:
        st["trial"] = trial = 2
        rx = 0
        _write(p, st)
    elif rx:
        _write(p, st)  # the request is taken: whatever happens, the next boot is normal
    if slot:
        sys.path.insert(0, base + slot)
    return 1 if trial else (2 if rx else 3)
