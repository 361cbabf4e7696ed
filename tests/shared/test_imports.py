# Every module of shared/meshlink imports on this interpreter (and, under the
# MicroPython runner, within the 96K heap), one at a time.
import gc
import os
import sys


def _module_names():
    """The core's modules where this interpreter loads them from (.py or .mpy)."""
    import meshlink

    core_dir = meshlink.__file__.rsplit("/", 1)[0]
    names = [n.rsplit(".", 1)[0] for n in os.listdir(core_dir)
             if n.endswith(".py") or n.endswith(".mpy")]
    return sorted("meshlink." + n for n in names if n != "__init__")


def _forget_new_modules(before):
    """Drop every module imported since `before`, and the package's references."""
    import meshlink

    for key in list(sys.modules):
        if key not in before:
            del sys.modules[key]
            sub = key.rsplit(".", 1)[-1]
            if key.startswith("meshlink.") and hasattr(meshlink, sub):
                delattr(meshlink, sub)
    gc.collect()


def import_each(router):
    """Import every core module that is (router=True) or is not a router
    module, each from the same heap. Boards never load the router modules
    (boards/bundle.py leaves them out), and tools/run_mpy_tests.py gives the
    router's test modules a larger heap (test_imports_router.py)."""
    import meshlink  # noqa: F401  (the package itself stays loaded)

    names = [n for n in _module_names() if n.startswith("meshlink.router") == router]
    assert names
    before = set(sys.modules)
    for name in names:
        __import__(name)
        assert name in sys.modules, name
        _forget_new_modules(before)  # the next import starts from the same heap
    return names


def test_every_core_module_a_board_may_load_imports():
    assert "meshlink.frames" in import_each(False)
