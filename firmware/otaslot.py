# The boot loader for over-the-air updates (docs/BOARDS.md §13), imported by
# otaboot.py only on a board that has an OTA state or a receive request.
# Rule: runs before anything of app/ or meshlink/ is imported, so it imports
# only os, sys and json; main.py unloads it right after (heap). A boot file:
# USB flashing installs it; an OTA bundle never replaces it, so a bad update
# cannot break the way back. app/ota.py reads and writes the same files later.
#
# The state file ota.json (beside config.json, replaced by write-then-rename):
#   {"slot": "ota/a" | "ota/b" | "", "ver": V, "prev": SLOT, "prev_ver": V,
#    "trial": 0 | 1 | 2, "note": TEXT}
# "" is the USB-flashed firmware at the root. trial 1: a new slot, never
# booted; this boot makes it 2. The app sets 0 once its first board-link
# session is up. A boot that finds 2 (the new slot booted and never
# confirmed: it crashed, hung or could not reach the gateway) goes back to
# prev. A file ota.rx asks for the update receiver (app/ota_mode.py) once.
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


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def choose(base):
    """Choose this boot's firmware: put its slot first on sys.path. base:
    config.json's directory ("" or ending in "/").

    Returns (receive: boot the update receiver?, trial: an unconfirmed slot?).
    """
    receive = _exists(base + "ota.rx")
    try:
        with open(base + "ota.json") as f:
            st = json.loads(f.read())
        slot, trial = st["slot"], st["trial"]
    except (OSError, ValueError, KeyError, TypeError):
        return receive, False  # no update ever installed (or a corrupt state: the root)
    if trial == 2 or (slot and not _exists(base + slot + "/app")):
        print("OTA rollback: version %s did not confirm; back to %s" % (
            st.get("ver"), st.get("prev_ver")))
        slot, trial = st.get("prev", ""), 0
        _write(base + "ota.json", {"slot": slot, "ver": st.get("prev_ver", "factory"),
                                   "prev": "", "prev_ver": "", "trial": 0,
                                   "note": "rolled back from %s" % st.get("ver")})
    elif trial == 1:
        st["trial"] = trial = 2
        _write(base + "ota.json", st)
    if slot:
        sys.path.insert(0, base + slot)
    return receive and not trial, trial != 0
