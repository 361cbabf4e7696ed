# Canonical JSON: the exact bytes both interpreters produce for a message.
# Rule: pure functions. Keys sorted, no spaces, UTF-8 text unescaped, only
# the types messages use (dict, list, str, int, bool, None). MicroPython's
# json has unordered dicts and no sort_keys, so it gets our own encoder;
# CPython uses the C encoder with settings that give identical bytes.
import json
import sys

from meshlink.errors import DecodeError, LocalProtocolError

_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t",
            "\b": "\\b", "\f": "\\f"}
_CPYTHON = sys.implementation.name == "cpython"


def _str(s):
    # Fast path: scan the UTF-8 bytes (ints, nothing allocated per character;
    # iterating a str on MicroPython interns every character it meets).
    for b in s.encode():
        if b < 0x20 or b == 0x22 or b == 0x5C:
            break
    else:
        return '"' + s + '"'
    out = []
    for ch in s:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20:
            out.append("\\u%04x" % ord(ch))
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _enc(v, out):
    if v is None:
        out.append("null")
    elif v is True:
        out.append("true")
    elif v is False:
        out.append("false")
    elif type(v) is int:
        out.append(str(v))
    elif type(v) is str:
        out.append(_str(v))
    elif type(v) is list or type(v) is tuple:
        out.append("[")
        for i in range(len(v)):
            if i:
                out.append(",")
            _enc(v[i], out)
        out.append("]")
    elif type(v) is dict:
        out.append("{")
        first = True
        for k in sorted(v):
            if type(k) is not str:
                raise LocalProtocolError("JSON keys must be str")
            if not first:
                out.append(",")
            first = False
            out.append(_str(k))
            out.append(":")
            _enc(v[k], out)
        out.append("}")
    else:
        raise LocalProtocolError("type not allowed in a message: %s" % type(v))


def _check(v):
    # The C encoder accepts floats and other types; keep both paths equal.
    t = type(v)
    if t is dict:
        for k in v:
            if type(k) is not str:
                raise LocalProtocolError("JSON keys must be str")
            _check(v[k])
    elif t is list or t is tuple:
        for x in v:
            _check(x)
    elif not (v is None or t is bool or t is int or t is str):
        raise LocalProtocolError("type not allowed in a message: %s" % t)


def dumps(value, check=True):
    """Encode value as canonical JSON bytes.

    check=False skips the CPython type walk when the caller already built
    value from validated fields (Message.to_obj does).

    Raises:
        LocalProtocolError: value holds a type messages may not carry.
    """
    if _CPYTHON:
        if check:
            _check(value)
        return json.dumps(value, sort_keys=True, separators=(",", ":"),
                          ensure_ascii=False).encode()
    out = []
    _enc(value, out)
    return "".join(out).encode()


def loads(data):
    """Decode JSON bytes into Python values.

    Raises:
        DecodeError: not UTF-8, not JSON, or nested too deeply.
    """
    try:
        text = bytes(data).decode()
        return json.loads(text)
    # RecursionError is a RuntimeError on CPython and absent on MicroPython.
    except (ValueError, TypeError, RuntimeError, KeyError, IndexError):
        raise DecodeError("not valid UTF-8 JSON")
    except MemoryError:
        # MicroPython's parser allocates per nesting level: a bracket bomb
        # exhausts a board's heap. It is the peer's fault, not ours.
        raise DecodeError("JSON too large or nested too deeply for this device")
