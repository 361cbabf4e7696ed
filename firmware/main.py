# MeshLink board entry point: load config.json, build the app, run it.
# Everything else lives in app/ (docs/FIRMWARE.md). Unix port exit codes:
# 2 = configuration error, 1 = crash (a board resets itself instead),
# 3 = reboot (an OTA update, or a crash of an unconfirmed one: otaboot.py,
# boards/simboot.py in the gateway boots it again).
import gc
import os
import sys

OTA = 0  # docs/BOARDS.md §13, otaboot.choose: 0 never updated, 1 trial, 2 receive, 3 updated
e = (sys.argv[1:] or sys.argv or [""])[0]  # config.json (unix port) or main.py: ota.json's dir
e = e[:e.rfind("/") + 1]
try:  # a board never updated has no ota.json and loads no OTA code
    os.stat(e + "ota.json")
except OSError:
    e = None
if e is not None:  # the boot loader chooses the slot, before any app import
    import otaboot

    OTA = otaboot.choose(e)
    del otaboot, sys.modules["otaboot"]
del e
import app as app_pkg  # noqa: E402
from app import platform  # noqa: E402
from meshlink.errors import ConfigError  # noqa: E402


def load():
    """Validate config.json, intern what will be encoded, unload the validator."""
    gc.collect()  # import garbage out first: config parsing needs contiguous blocks
    from app import config

    try:
        cfg = config.load(platform.config_path())
        platform.intern_chars([config.RECORD_CHARS] + [s["name"] + s["unit"] for s in cfg.sensors])
        return cfg
    finally:
        del sys.modules["app.config"], app_pkg.config  # ~10 KB of heap back


def main():
    try:
        if OTA == 2:  # the gateway offered an update: the lean receiver, then a reboot
            from app import ota_mode

            ota_mode.run(load())
        from app.app import App

        app = App(load())
        if OTA & 1:  # an updated board: version line, trial, confirm (app/ota.py)
            from app import ota

            ota.attach(app)
        app.run()
    except ConfigError as e:  # a board stays at the REPL: no reboot loop
        platform.log("CONFIG ERROR: %s" % e)
        return 2
    except Exception as e:  # noqa: BLE001 - last resort: report, then restart
        sys.print_exception(e)  # type: ignore[attr-defined]
        platform.log("CRASH %s: %s" % (type(e).__name__, e))
        platform.reset(3 if OTA == 1 else 1)  # unconfirmed update: reboot, otaboot rolls back


if main() == 2 and not platform.ON_BOARD:
    sys.exit(2)
