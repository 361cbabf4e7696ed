"""MeshLink routing simulator: a heapq discrete-event loop in virtual time that
drives the shared meshlink.router code (see docs/ROUTING.md).

Library use (the tests do this):

    from meshlink_gw.sim import run_one, scenario
    summary = run_one(scenario("x", topology="line", nodes=8), "meshlink", seed=1)["summary"]
"""

from .runner import run_jobs, run_one
from .scenarios import DEFAULTS, KNOBS, PRESETS, scenario

__all__ = ["run_one", "run_jobs", "scenario", "DEFAULTS", "KNOBS", "PRESETS"]
