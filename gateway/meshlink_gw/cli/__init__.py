"""The `meshlink` command line (entry point `meshlink_gw.cli:main`).

    main.py     the parser; the one place that maps errors to exit codes
    common.py   argument helpers, data directory, node config, event loop
    node.py     keygen, node, status, send, recv
    gateway.py  gateway            (optional: board service)
    board.py    board ...          (optional: registry, bundles)
    sim.py      sim                (optional: the routing simulator)

Rule: subcommand modules import common.py, never main.py; nothing outside
cli/ imports cli/.
"""

from meshlink_gw.cli.main import main

__all__ = ["main"]
