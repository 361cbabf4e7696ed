# Loads the JSON test vectors shared by pytest and the MicroPython runner.
# Works on both interpreters: no os.path, no pathlib.
import gc
import json

_here = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
VECTOR_DIR = _here + "/../vectors"


def load(name):
    """Return the parsed JSON of tests/vectors/<name>.json."""
    with open(VECTOR_DIR + "/" + name + ".json") as f:
        return json.load(f)


def iter_lines(name):
    """Yield the objects of tests/vectors/<name>.json's "lines", one at a time.

    Files in this layout hold one case per line after a one-line header, so a
    96K MicroPython heap never holds more than one parsed case.
    """
    with open(VECTOR_DIR + "/" + name + ".json") as f:
        f.readline()  # the header: {"comment": ...,
        while True:
            gc.collect()
            line = f.readline()
            if not line:
                return
            if not line.startswith("{"):
                continue
            line = line.rstrip()
            if line.endswith(","):
                line = line[:-1]
            obj = json.loads(line)
            line = None
            yield obj


def unhex(text):
    """Hex text -> bytes (binascii on both interpreters)."""
    import binascii
    return binascii.unhexlify(text)


def tohex(data):
    import binascii
    return binascii.hexlify(data).decode()


def expect_raises(exc_class, fn, *args):
    """Call fn(*args) and check it raises exc_class (or a subclass); return the error."""
    try:
        fn(*args)
    except exc_class as e:
        return e
    raise AssertionError("expected %s from %s" % (exc_class.__name__, fn))
