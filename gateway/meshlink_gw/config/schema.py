"""The config engine: declarative settings, one validator for every TOML table.

Rule: a table's frozen dataclass declares each key once (integer(), number(),
flag(), text(), setting()): how a TOML value is read, its bounds or choices,
its default and one doc line; the unit is in the name (_ms, _s, _bytes,
_per_s). parse_table() and override() are the only ways a value from a file
or a flag gets in. Both raise ConfigError naming the place ("node.listen",
"serial[0].board", "--listen") and what was expected. Derive a changed copy
with override() (raw values, validated) or dataclasses.replace() (values the
program computed itself). Building a dataclass directly checks nothing.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar, Protocol, TypeVar

from meshlink.errors import ConfigError
from meshlink.nodeid import is_id

_MISSING: Any = dataclasses.MISSING


# -- kinds: how one TOML (or command-line) value becomes a field value ------------------
@dataclasses.dataclass(frozen=True)
class Kind:
    """expected names the accepted values in messages; parse(value, loc)
    returns the field value or raises ConfigError."""

    expected: str
    parse: Callable[[Any, str], Any]


def wrong_type(loc: str, value: Any, expected: str) -> ConfigError:
    return ConfigError(f"{loc}: wrong type {type(value).__name__}, expected {expected}, "
                       f"got {value!r}")


def bad_value(loc: str, value: Any, expected: str) -> ConfigError:
    return ConfigError(f"{loc}: expected {expected}, got {value!r}")


def _typed(expected: str, ok: Callable[[Any], bool], convert: Callable[[Any], Any] = lambda v: v
           ) -> Kind:
    def parse(value: Any, loc: str) -> Any:
        if not ok(value):
            raise wrong_type(loc, value, expected)
        return convert(value)
    return Kind(expected, parse)


INT = _typed("an integer", lambda v: type(v) is int)
FLOAT = _typed("a number", lambda v: type(v) in (int, float), float)
BOOL = _typed("true or false", lambda v: type(v) is bool)
STR = _typed("a string", lambda v: isinstance(v, str))
OPTIONAL_STR = _typed("a string", lambda v: v is None or isinstance(v, str))
STR_LIST = _typed("a list of strings",
                  lambda v: isinstance(v, list | tuple) and all(isinstance(x, str) for x in v),
                  tuple)


def _name(value: Any, loc: str) -> str:
    if not isinstance(value, str):
        raise wrong_type(loc, value, "a non-empty string")
    if not value:
        raise bad_value(loc, value, "a non-empty string")
    return value


NAME = Kind("a non-empty string", _name)


def _path(value: Any, loc: str) -> pathlib.Path:
    if not isinstance(value, str | os.PathLike):
        raise wrong_type(loc, value, "a path")
    if not str(value):
        raise bad_value(loc, value, "a path")
    return pathlib.Path(value).expanduser()


PATH = Kind("a path", _path)


def parse_hostport(text: Any, *, what: str) -> tuple[str, int]:
    """'HOST:PORT' -> (host, port); [v6]:port loses its brackets. Raises ConfigError."""
    host, sep, port_text = str(text).rpartition(":")
    if not sep or not host or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ConfigError(f"{what}: expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port_text)


HOSTPORT = Kind("HOST:PORT", lambda v, loc: parse_hostport(v, what=loc))
def _hostport_or_off(value: Any, loc: str) -> tuple[str, int] | None:
    if value is None or value is False or value in ("", "off"):
        return None
    return parse_hostport(value, what=loc)


HOSTPORT_OR_OFF = Kind("HOST:PORT or \"off\"", _hostport_or_off)


class PeerAddr(tuple[str, int]):
    """A static peer's (host, port), equal to that plain tuple, plus the node
    ID it is pinned to (None: pinned on first use)."""

    node_id: str | None

    def __new__(cls, host: str, port: int, node_id: str | None = None) -> PeerAddr:
        self = super().__new__(cls, (host, port))
        self.node_id = node_id
        return self

    def __repr__(self) -> str:
        where = "%s:%d" % self
        return f"{self.node_id}@{where}" if self.node_id else where


def parse_peer(text: Any, *, what: str) -> PeerAddr:
    """'HOST:PORT' or 'NODE_ID@HOST:PORT' -> PeerAddr. Raises ConfigError."""
    node_id, at, rest = str(text).rpartition("@")
    if at and not is_id(node_id):
        raise ConfigError(f"{what}: expected NODE_ID@HOST:PORT with a node ID in UUID "
                          f"form, got {text!r}")
    host, port = parse_hostport(rest, what=what)
    return PeerAddr(host, port, node_id or None)


def _peer_list(value: Any, loc: str) -> tuple[PeerAddr, ...]:
    if not isinstance(value, list | tuple):
        raise wrong_type(loc, value, "a list of '[NODE_ID@]HOST:PORT' strings")
    return tuple(parse_peer(v, what=f"{loc}[{i}]") for i, v in enumerate(value))


PEER_LIST = Kind("a list of '[NODE_ID@]HOST:PORT' strings", _peer_list)


# -- settings --------------------------------------------------------------------------
Choices = tuple[Any, ...] | Callable[[], Iterable[Any]]


@dataclasses.dataclass(frozen=True)
class Setting:
    """One key of a table: its kind, bounds or choices, and its doc line."""

    kind: Kind
    doc: str
    ge: float | None = None  # value >= ge
    gt: float | None = None  # value > gt
    le: float | None = None  # value <= le
    choices: Choices | None = None  # a tuple, or a callable giving them (lazy imports)
    table: str | None = None  # for a dataclass that spans tables: the one this key is in

    def bounds(self) -> str | None:
        """The accepted range in words, or None when unbounded."""
        lo = f"{_num(self.ge)}.." if self.ge is not None else None
        if self.gt is not None:
            return f"in ({_num(self.gt)}, {_num(self.le)}]" if self.le is not None \
                else f"greater than {_num(self.gt)}"
        if lo and self.le is not None:
            return f"in {lo}{_num(self.le)}"
        if lo:
            return f"at least {_num(self.ge)}"
        return None if self.le is None else f"at most {_num(self.le)}"

    def check(self, value: Any, loc: str) -> None:
        """Bounds and choices of a parsed value. Raises ConfigError."""
        if self.choices is not None:
            known = tuple(self.choices() if callable(self.choices) else self.choices)
            if value not in known:
                raise ConfigError(f"{loc} must be {_alternatives(known)}, got {value!r}")
        if isinstance(value, int | float) and not isinstance(value, bool) and (
                (self.ge is not None and value < self.ge)
                or (self.gt is not None and value <= self.gt)
                or (self.le is not None and value > self.le)):
            raise ConfigError(f"{loc} must be {self.bounds()}, got {value!r}")

    def parse(self, value: Any, loc: str) -> Any:
        parsed = self.kind.parse(value, loc)
        self.check(parsed, loc)
        return parsed


def _num(x: float | None) -> str:
    return str(int(x)) if x is not None and float(x).is_integer() else str(x)


def _alternatives(known: tuple[Any, ...]) -> str:
    items = [repr(k) for k in sorted(known, key=str)]
    if len(items) <= 2:
        return " or ".join(items)
    return "one of " + ", ".join(items)


def setting(default: Any = _MISSING, doc: str = "", *, kind: Kind, factory: Any = _MISSING,
            ge: float | None = None, gt: float | None = None, le: float | None = None,
            choices: Choices | None = None, table: str | None = None) -> Any:
    """A dataclass field that is a TOML key. No default and no factory: required."""
    meta = {"setting": Setting(kind, doc, ge, gt, le, choices, table)}
    if factory is not _MISSING:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def integer(default: Any = _MISSING, doc: str = "", *, ge: float | None = 0,
            le: float | None = None, **kw: Any) -> Any:
    """An integer key, non-negative unless ge says otherwise."""
    return setting(default, doc, kind=INT, ge=ge, le=le, **kw)


def number(default: Any = _MISSING, doc: str = "", *, gt: float | None = 0,
           le: float | None = None, **kw: Any) -> Any:
    """A number key (int or float in the file, float in the object), > 0 by default."""
    return setting(default, doc, kind=FLOAT, gt=gt, le=le, **kw)


def flag(default: bool, doc: str = "", **kw: Any) -> Any:
    return setting(default, doc, kind=BOOL, **kw)


def text(default: Any = _MISSING, doc: str = "", *, kind: Kind = NAME, **kw: Any) -> Any:
    """A string key, non-empty unless kind=STR."""
    return setting(default, doc, kind=kind, **kw)


def settings(cls: type) -> dict[str, Setting]:
    """The TOML keys of a config dataclass (fields without a Setting are not keys)."""
    return {f.name: f.metadata["setting"] for f in dataclasses.fields(cls)
            if "setting" in f.metadata}


# -- tables ----------------------------------------------------------------------------
class ConfigTable(Protocol):
    TABLE: ClassVar[str]  # where its keys live, for messages ("node", "mqtt", "serial")


T = TypeVar("T")


def loc_of(where: str, key: str) -> str:
    """'node' + 'listen' -> 'node.listen'; '--' + 'board_udp' -> '--board-udp'."""
    return "--" + key.replace("_", "-") if where == "--" else f"{where}.{key}"


def read_table(cls: type, table: Any, where: str) -> dict[str, Any]:
    """Validate one TOML table against cls's keys that live in [where]; the parsed
    values by field name. Raises ConfigError: not a table, unknown key, a key
    of another table, wrong type, out of range."""
    if not isinstance(table, dict):
        raise ConfigError(f"[{where}] must be a table")
    known = settings(cls)
    base = where.split("[", 1)[0]  # "serial[2]" -> "serial"
    values: dict[str, Any] = {}
    for key, value in table.items():
        spec = known.get(key)
        if spec is None:
            mine = sorted(k for k, s in known.items() if s.table in (None, base))
            raise ConfigError(f"{where}: unknown key {key!r} (known: {', '.join(mine)})")
        if spec.table not in (None, base):
            raise ConfigError(f"{where}.{key}: belongs in the [{spec.table}] table")
        values[key] = spec.parse(value, loc_of(where, key))
    return values


def make(cls: type[T], values: Mapping[str, Any], where: str) -> T:
    """cls from parsed values: required keys present, then the class's own
    cross-key checks (a finish(where) method, which may return a derived copy)."""
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name not in values and f.default is _MISSING and f.default_factory is _MISSING:
            doc = f.metadata["setting"].doc if "setting" in f.metadata else ""
            raise ConfigError(f"{where}.{f.name}: missing" + (f" ({doc})" if doc else ""))
    obj = cls(**values)
    finish = getattr(obj, "finish", None)
    return finish(where) if finish is not None else obj


def parse_table(cls: type[T], table: Any, where: str | None = None) -> T:
    """One TOML table (a dict from tomllib) into a validated cls.
    where: its name in messages; default cls.TABLE."""
    where = where or cls.TABLE  # type: ignore[attr-defined]
    return make(cls, read_table(cls, table, where), where)


def override(obj: T, values: Mapping[str, Any], where: str = "--") -> T:
    """A validated copy of obj with raw values (command-line flags, tests) set.

    A None value is skipped (a flag not given). Keys are field names of any of
    the object's tables; where "--" names them as flags ("--board-udp").

    Raises:
        ConfigError: unknown key, wrong type, out of range, or a failed
            cross-key check of the result.
    """
    known = settings(type(obj))
    parsed: dict[str, Any] = {}
    for key, value in values.items():
        if value is None:
            continue
        if key not in known:
            raise ConfigError(f"{loc_of(where, key)}: unknown setting")
        parsed[key] = known[key].parse(value, loc_of(where, key))
    new = dataclasses.replace(obj, **parsed)  # type: ignore[type-var]
    finish = getattr(new, "finish", None)
    return finish(type(obj).TABLE) if finish is not None else new  # type: ignore[attr-defined]
