# MeshLink board entry point: load config.json, build the app, run it.
# Everything else lives in app/ (docs/FIRMWARE.md). Unix port exit codes:
# 2 = configuration error, 1 = crash. A board drops to the REPL on a config
# error (no reboot loop) and resets itself after a crash.
import sys

import app as app_pkg
from app import platform

platform.intern_ascii()  # before the heap fragments (see its docstring)
from meshlink.errors import ConfigError  # noqa: E402


def load():
    """Validate config.json, then unload the validator (~10 KB of heap)."""
    from app import config

    try:
        return config.load(platform.config_path())
    finally:
        del sys.modules["app.config"]
        del app_pkg.config


def main():
    try:
        cfg = load()
        from app.app import App

        app = App(cfg)
    except ConfigError as e:
        platform.log("CONFIG ERROR: %s" % e)
        return 2
    try:
        app.run()
    except KeyboardInterrupt:
        if app.watchdog is not None:
            app.watchdog.keep_fed()  # let mpremote copy files without a reset
        platform.log("STOPPED (Ctrl-C)")
        return 0
    except Exception as e:  # noqa: BLE001 - last resort: report, then restart
        sys.print_exception(e)  # type: ignore[attr-defined]
        platform.log("CRASH %s: %s" % (type(e).__name__, e))
        platform.reset(1)
    return 0


exit_code = main()
if exit_code and not platform.ON_BOARD:
    sys.exit(exit_code)
