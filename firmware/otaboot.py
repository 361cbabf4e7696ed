# OTA boot check (docs/BOARDS.md §13), imported first by main.py. A board that
# was never updated has no ota.json and pays for this file alone; otherwise
# the boot loader otaslot.py chooses the firmware slot, and runs the update
# receiver or selects the updated app. A boot file, installed by USB flashing
# only. Heap: every name and string constant of a loaded module is interned
# for good, and a new qstr pool costs KBs on a nearly full heap, so this file
# uses names the firmware interns anyway and builds its file names at run time.
import os
import sys

if sys.platform != "esp32" and len(sys.argv) > 1:
    path = sys.argv[1]  # config.json's path: the OTA files sit beside it
else:
    path = sys.argv[0] if sys.argv else ""
base = path[:path.rfind("/") + 1]
try:
    os.stat(base + "ota" + "." + "json")
    path = None
except OSError:
    pass
if path is None:
    __import__("ota" + "slot").boot(base)
del path, base
sys.modules.pop("otaboot", None)  # nothing of it stays but its names
