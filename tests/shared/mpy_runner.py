# MicroPython-side runner: imports each named test module, runs every
# function whose name starts with test_, and prints one line per test.
# Exits 1 if any test failed. Run by tools/run_mpy_tests.py.
import gc
import sys


def run_module(name):
    failed = 0
    passed = 0
    mod = __import__(name)
    for attr in sorted(dir(mod)):
        if not attr.startswith("test_"):
            continue
        fn = getattr(mod, attr)
        gc.collect()
        try:
            fn()
            passed += 1
        except Exception as e:  # report and continue with the next test
            failed += 1
            print("FAIL %s.%s: %s: %s" % (name, attr, type(e).__name__, e))
            sys.print_exception(e)
    del sys.modules[name]
    gc.collect()
    return passed, failed


def main(names):
    total_passed = 0
    total_failed = 0
    for name in names:
        p, f = run_module(name)
        total_passed += p
        total_failed += f
        print("%-32s %3d passed %3d failed  (heap free %d)" % (name, p, f, gc.mem_free()))
    print("micropython: %d passed, %d failed" % (total_passed, total_failed))
    sys.exit(1 if total_failed else 0)


main(sys.argv[1:])
