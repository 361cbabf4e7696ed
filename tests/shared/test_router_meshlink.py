# The MeshLink strategy's decision vectors (tests/vectors/router_meshlink.json).
# Runs on CPython and MicroPython. The bounds checks live in
# test_router_meshlink_bounds and announcements in test_router_dv: one
# module each, so every one runs on a clean 96K heap.
import gc

gc.collect()
from meshlink.router import load_strategy  # noqa: E402

gc.collect()
load_strategy("meshlink")
gc.collect()
from router_steps import run_file  # noqa: E402

gc.collect()


def test_meshlink_vectors():
    run_file("router_meshlink")
