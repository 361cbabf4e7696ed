"""The `meshlink` command line: the parser, and the one place that turns errors
into messages and exit codes.

Exit codes:
    0    ok
    1    the command ran and failed (a MeshLinkError other than ConfigError, e.g.
         no node running, a refused or undelivered send; an OSError such as a
         port already in use; a subcommand whose module cannot be imported)
    2    bad usage or configuration (argparse errors, ConfigError)
    130  interrupted (Ctrl-C), quietly
    141  stdout closed early (`meshlink recv | head`), quietly, as for SIGPIPE

Every error is one line on stderr, `meshlink: error: ...`. Anything else that
escapes a command is a bug and keeps its traceback.

The subcommand modules are imported explicitly below. node.py (keygen, node,
status, send, recv) is the core; board, gateway and sim are optional: if one
cannot be imported (a missing dependency), its subcommand is still listed and
running it says which module failed to import and why.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import shlex
import sys
from importlib import metadata
from types import ModuleType
from typing import Any

from meshlink.errors import ConfigError, MeshLinkError

from meshlink_gw.cli import mesh as mesh_cmds
from meshlink_gw.cli import node as node_cmds
from meshlink_gw.cli.common import setup_logging

log = logging.getLogger("meshlink.cli")

PROG = "meshlink"


class Unavailable:
    """Stands in for an optional subcommand module that failed to import."""

    def __init__(self, commands: tuple[str, ...], module: str, error: ImportError) -> None:
        self.commands = commands
        self.module = module
        self.reason = f"{type(error).__name__}: {error}"

    def add_parser(self, sub: Any) -> None:
        for name in self.commands:
            # no option prefix: every argument, --help included, is taken as is
            p = sub.add_parser(name, add_help=False, prefix_chars="\0",
                               help=f"(unavailable: importing {self.module} failed)")
            p.add_argument("args", nargs="*")
            p.set_defaults(func=self.run, command_name=name)

    def run(self, args: argparse.Namespace) -> int:
        raise MeshLinkError(f"`{PROG} {args.command_name}` is unavailable: importing "
                            f"{self.module} failed ({self.reason})")


_board: ModuleType | Unavailable
_gateway: ModuleType | Unavailable
_sim: ModuleType | Unavailable
try:
    from meshlink_gw.cli import board as _board
except ImportError as e:
    _board = Unavailable(("board",), "meshlink_gw.cli.board", e)
try:
    from meshlink_gw.cli import gateway as _gateway
except ImportError as e:
    _gateway = Unavailable(("gateway",), "meshlink_gw.cli.gateway", e)
try:
    from meshlink_gw.cli import sim as _sim
except ImportError as e:
    _sim = Unavailable(("sim",), "meshlink_gw.cli.sim", e)

OPTIONAL = (_sim, _gateway, _board)


def version() -> str:
    """meshlink's version from the installed package's metadata."""
    try:
        return metadata.version("meshlink")
    except metadata.PackageNotFoundError:
        return "unknown (not installed; run `make setup`)"


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=PROG, description="MeshLink post-quantum mesh")
    ap.add_argument("--version", action="version", version=f"{PROG} {version()}")
    sub = ap.add_subparsers(dest="command", required=True)
    node_cmds.add_parser(sub)
    mesh_cmds.add_parser(sub)
    for module in OPTIONAL:
        module.add_parser(sub)
    return ap


# errno -> what to do about it (appended to the system's own message)
_OS_HINTS = {
    errno.EADDRINUSE: "another program (or another meshlink) has that port: stop it, or "
                      "choose another port (port 0 picks a free one)",
    errno.EADDRNOTAVAIL: "no interface of this machine has that address: use 127.0.0.1, "
                         "0.0.0.0 or one of this machine's addresses",
    errno.EACCES: "permission denied: run as a user who may use it (ports below 1024 need "
                  "root), or choose another path or port",
    errno.EPERM: "operation not permitted: run as a user who may do it",
    errno.ENOTDIR: "a path component is a file, not a directory: check --data-dir",
    errno.ENOENT: "no such file or directory: check the path",
    errno.ENOSPC: "the disk is full",
    errno.EROFS: "the file system is read-only: choose another --data-dir",
}


def os_error_text(e: OSError) -> str:
    """One line for an OSError: what failed, and what to do about it."""
    text = str(e) if e.args else type(e).__name__
    hint = _OS_HINTS.get(e.errno or 0)
    return f"{text} ({hint})" if hint else text


def _error(message: str) -> None:
    print(f"{PROG}: error: {message}", file=sys.stderr, flush=True)


def _quiet_stdout() -> None:
    """After EPIPE: point stdout at /dev/null so the flush at exit does not raise again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def main(argv: list[str] | None = None) -> int:
    """Run one meshlink command; returns its exit code (see the module docstring)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv  # the command as typed (the simulator records it in its report)
    setup_logging(getattr(args, "verbose", 0))
    try:
        return int(args.func(args) or 0)
    except ConfigError as e:
        _error(str(e))
        return 2
    except MeshLinkError as e:
        _error(str(e))
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        _quiet_stdout()
        return 141
    except OSError as e:
        log.debug("%s %s failed", PROG, shlex.join(argv), exc_info=True)
        _error(os_error_text(e))
        return 1


if __name__ == "__main__":
    sys.exit(main())
