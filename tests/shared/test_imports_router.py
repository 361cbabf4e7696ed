# Every router module of shared/meshlink imports on this interpreter (under
# the MicroPython runner: within the router modules' heap, tools/run_mpy_tests.py).
from test_imports import import_each


def test_every_router_module_imports():
    names = import_each(True)
    assert "meshlink.router" in names and "meshlink.router_hop" in names
