"""Deep sleep for a simulated board: `meshlink board run` of a board whose
config.json says sleep_ms.

Rule: the unix port has no deep sleep, so the firmware's
app/platform.deep_sleep exits with SLEEP_EXIT (all RAM lost, as on an ESP32)
after keeping its wake state in a file (an ESP32 keeps it in RTC memory);
this launcher starts the same command again after sleep_ms, as the ESP32's
RTC timer would. Any other exit ends the board. SIGTERM/SIGINT stop the
board at once, asleep or awake.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from pathlib import Path

SLEEP_EXIT = 4  # firmware/app/platform.py SLEEP_EXIT
_PR_SET_PDEATHSIG = 1


def _die_with_launcher() -> None:
    """In the child (Linux): SIGTERM when the launcher dies, even by SIGKILL,
    so a simulated board never outlives `meshlink board run`."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def run(argv: list[str], cwd: Path, env: dict[str, str], sleep_ms: int,
        max_wakes: int | None = None) -> int:
    """Run argv (the simulated board) in cwd; each SLEEP_EXIT is a deep sleep
    of sleep_ms, after which it runs again. Returns the board's last exit code
    (0 after a signal or max_wakes)."""
    stop = threading.Event()
    child: list[subprocess.Popen] = []

    def on_signal(signum, _frame) -> None:
        stop.set()
        if child and child[-1].poll() is None:
            child[-1].terminate()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    wakes = 0
    try:
        while not stop.is_set():
            child[:] = [subprocess.Popen(argv, cwd=cwd, env=env,
                                         preexec_fn=_die_with_launcher)]
            rc = child[0].wait()
            if stop.is_set():
                return 0
            if rc != SLEEP_EXIT:
                return rc
            wakes += 1
            if max_wakes is not None and wakes >= max_wakes:
                return 0
            print(f"(simulated deep sleep: {sleep_ms} ms, process ended)", file=sys.stderr,
                  flush=True)
            stop.wait(sleep_ms / 1000)
        return 0
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
