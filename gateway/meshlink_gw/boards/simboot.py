"""The simulated board's power supply: `meshlink board run` runs the firmware
as a child process and boots it again when it asks for a reboot.

Rule: a board resets itself (machine.reset()) after an over-the-air update
or when an unconfirmed update crashes; on the unix port the firmware exits
with REBOOT_EXIT instead (firmware/otaboot.py), and this loop starts it
again in the same directory, as the board's boot ROM would. Any other exit
ends the run with that code. The child dies with this process (Linux
PR_SET_PDEATHSIG), so killing `board run` is the simulated board losing power.
"""

from __future__ import annotations

import contextlib
import ctypes
import signal
import subprocess
import sys

REBOOT_EXIT = 3  # = firmware/app/ota.py REBOOT_EXIT
MAX_REBOOTS = 1000  # a firmware that reboots forever is a bug: stop after this many
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def run_rebooting(argv: list[str], cwd: str, env: dict[str, str]) -> int:
    """Run argv in cwd until it exits with something other than REBOOT_EXIT -> that code
    (a signal n as 128 + n). SIGTERM and SIGINT are passed on to the running firmware."""
    child: subprocess.Popen | None = None

    def forward(signum, _frame):
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    old = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        for _ in range(MAX_REBOOTS):
            sys.stdout.flush()
            child = subprocess.Popen(argv, cwd=cwd, env=env, preexec_fn=_die_with_parent)
            rc = child.wait()
            if rc != REBOOT_EXIT:
                return 128 - rc if rc < 0 else rc
        print(f"board run: {MAX_REBOOTS} reboots in a row; stopped", file=sys.stderr)
        return 1
    finally:
        for s, h in old.items():
            signal.signal(s, h)
