"""Run the dual-interpreter core tests (tests/shared/test_*.py) on the
MicroPython unix port under an ESP32-like heap.

Each test module runs in its own interpreter so one module's garbage cannot
hide another's heap use. Exits non-zero if any module fails.
"""

import argparse
import os
import pathlib
import shutil
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def find_micropython() -> str | None:
    venv_bin = pathlib.Path(sys.executable).parent / "micropython"
    if venv_bin.exists():
        return str(venv_bin)
    return shutil.which("micropython")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--heap", default="96K", help="MicroPython heap size (default 96K)")
    ap.add_argument("modules", nargs="*", help="test module names (default: all)")
    args = ap.parse_args()
    mpy = find_micropython()
    if mpy is None:
        print("micropython not found: run make setup (no aarch64 wheel exists)", file=sys.stderr)
        return 2
    test_dir = ROOT / "tests" / "shared"
    names = args.modules or sorted(p.stem for p in test_dir.glob("test_*.py"))
    env = dict(os.environ, MICROPYPATH=f"{ROOT / 'shared'}:{test_dir}")
    failures = 0
    for name in names:
        proc = subprocess.run(
            [mpy, "-X", f"heapsize={args.heap}", str(test_dir / "mpy_runner.py"), name],
            env=env, capture_output=True, text=True, timeout=600,
        )
        out = (proc.stdout + proc.stderr).strip()
        lines = [ln for ln in out.splitlines() if not ln.startswith("micropython:")]
        print("\n".join(lines))
        if proc.returncode != 0:
            failures += 1
    print(f"MicroPython ({args.heap} heap): {len(names) - failures}/{len(names)} modules passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
