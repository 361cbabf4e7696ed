# OTA boot check (docs/BOARDS.md §13): imported first by main.py and unloaded
# right after. A board that was never updated has neither ota.json nor ota.rx
# and pays only for this file: the boot loader (otaslot.py) is imported when
# one exists. A boot file, installed by USB flashing only.
import os
import sys


def select():
    """-> (boot the update receiver?, running an unconfirmed update?)."""
    if sys.platform != "esp32" and len(sys.argv) > 1:
        path = sys.argv[1]  # config.json's path: the OTA files sit beside it
    else:
        path = sys.argv[0] if sys.argv else ""
    base = path[:path.rfind("/") + 1]
    for name in ("ota.json", "ota.rx"):
        try:
            os.stat(base + name)
        except OSError:
            continue
        import otaslot

        del sys.modules["otaslot"]
        return otaslot.choose(base)
    return False, False
