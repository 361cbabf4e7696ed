"""python -m meshlink_gw.sim: the `meshlink sim` command (make sim).

The command line itself lives in meshlink_gw/cli/sim.py, where cli/app.py
turns its errors into exit codes; this entry point is the only file of the
simulator that imports the CLI, and nothing imports it.
"""
import sys

from meshlink_gw.cli import main

sys.exit(main(["sim", *sys.argv[1:]]))
