"""The `meshlink` command line (entry point `meshlink_gw.cli:main`).

    app.py      the parser; the one place that maps errors to exit codes
    common.py   argument helpers, data directory, node config, event loop
    node.py     keygen, node, status, send, recv
    gateway.py  gateway            (optional: board service)
    board.py    board ...          (optional: registry, bundles)
    sim.py      sim                (optional: the routing simulator)

Rule: subcommand modules import common.py, never app.py; nothing outside
cli/ imports cli/.
"""



def main(argv: list[str] | None = None) -> int:
    """Run one meshlink command; returns its exit code.

    The command modules are imported here, not at the top: loading them
    (cryptography, asyncio, sqlite3) takes a noticeable moment, and a Ctrl-C
    then must end quietly with 130 like one during the command itself.
    """
    try:
        from meshlink_gw.cli.app import main as run

        return run(argv)
    except KeyboardInterrupt:
        return 130


__all__ = ["main"]
