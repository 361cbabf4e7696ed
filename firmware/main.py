# MeshLink board entry point: load config.json, build the app, run it.
# Everything else lives in app/ (docs/FIRMWARE.md). Unix port exit codes:
# 2 = configuration error, 1 = crash (a board resets itself instead).
import gc
import sys

import otaboot  # noqa: F401 - OTA (docs/BOARDS.md §13): picks the firmware, before app/

# isort: split
import app as app_pkg
from app import platform
from meshlink.errors import ConfigError


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
        from app.app import App

        App(load()).run()
    except ConfigError as e:  # a board stays at the REPL: no reboot loop
        platform.log("CONFIG ERROR: %s" % e)
        return 2
    except Exception as e:  # noqa: BLE001 - last resort: report, then restart
        sys.print_exception(e)  # type: ignore[attr-defined]
        platform.log("CRASH %s: %s" % (type(e).__name__, e))
        platform.reset(1)


if main() == 2 and not platform.ON_BOARD:
    sys.exit(2)
