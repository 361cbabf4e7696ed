# Board configuration: load config.json and validate it once into a Config.
# Rules: every problem is a meshlink.errors.ConfigError whose text names the
# file, the key and what was expected, so the console message is readable
# without a traceback. Numbers given in units (rule values, sim parameters)
# become integer milli-units here: nothing downstream sees a float.
# Reference for every key: docs/FIRMWARE.md.
import json

from meshlink.errors import ConfigError
from meshlink.nodeid import is_id

BOARDS = ("esp32-devkitc", "esp32-s3", "esp32-c3", "unix")
TRANSPORTS = ("udp", "tcp", "serial", "ble")
SENSOR_TYPES = ("sim", "internal_temp", "adc", "dht22", "bme280")
OPS = (">", "<", ">=", "<=", "==")
ACTIONS = ("relay", "led", "log")
DEFAULT_UDP_PORT = 7410
DEFAULT_TCP_PORT = 7411
DEFAULT_DISCOVERY_PORT = 7399
# Every character of the strings a board encodes besides sensor names and
# units: record keys, "reading"/"ping"/"ack"/"broadcast", node and message
# IDs (lowercase hex and "-"), default units. See platform.intern_chars.
RECORD_CHARS = "0123456789abcdefghijklmnopqrstuvwxyz-_CV%RHhPa"

# Optional board-side tuning keys -> default. `meshlink board add` need not
# write them; tests use them to make timeouts short.
TUNING = {
    "discovery_port": DEFAULT_DISCOVERY_PORT,
    "discovery_timeout_ms": 5000,  # wait this long for a GatewayBeacon per attempt
    "hello_timeout_ms": 1000,  # first HELLO retransmission timeout, doubles per try
    "hello_tries": 4,  # HELLOs per connection attempt
    "backoff_min_ms": 1000,  # reconnect delay after the first failure
    "backoff_max_ms": 2000,  # reconnect delay cap: back within ~2 s of a gateway restart
    "ping_interval_ms": 15000,  # keepalive ping when idle
    "link_timeout_ms": 45000,  # no record from the gateway this long: reconnect
    "outbox_max": 8,  # readings kept while the link is down (oldest dropped)
    "watchdog_ms": 60000,  # machine.WDT timeout on a board; 0 = off
    "heap_report_ms": 60000,  # print a HEAP line this often; 0 = off
    "wifi_timeout_ms": 20000,  # WiFi association timeout per attempt
    # Sleeping boards (docs/BOARDS.md "Sleeping boards"): 0 = never sleep
    "sleep_ms": 0,  # deep sleep this long after each wake cycle
    "awake_max_ms": 30000,  # a wake cycle ends after this long whatever happened
    "sleep_resume": 1,  # 1: keep the session across sleep (PROTOCOL.md 6.7); 0: handshake
}
_KNOWN = ("name", "board", "board_id", "psk", "node_id", "transport", "serial", "ble", "gateway",
          "wifi",
          "sensors", "routes", "rules", "handlers", "heap_budget", "boot_counter_file",
          "sleep_state_file", "provision", "wifi_file")


class Config:
    """The validated board configuration. Attributes mirror config.json keys
    (set by from_obj); psk and board_id are bytes, the tuning keys are
    attributes too. No methods: main.py unloads this module after boot, and
    a method would keep the whole module alive through its globals.
    The annotations cost nothing at run time; they tell the type checker."""

    name: str
    board: str
    board_id: bytes
    psk: bytes
    node_id: str
    transport: str
    serial: "dict | None"
    ble: "dict | None"
    gateway: "tuple | None"
    wifi: "tuple | None"
    sensors: list
    routes: dict
    rules: list
    handlers: dict
    heap_budget: int
    boot_counter_file: str
    sleep_state_file: str
    provision: "dict | None"
    wifi_file: str
    sleep_ms: int  # tuning keys (TUNING) the module itself reads
    sleep_resume: int
    base_dir: str
    unknown_keys: list


def _defaults(cfg):
    cfg.name = ""
    cfg.board = "unix"
    cfg.board_id = b""
    cfg.psk = b""
    cfg.node_id = ""
    cfg.transport = "udp"
    cfg.serial = None  # {"port": tty path or UART id, "baudrate", ["tx", "rx"]}
    cfg.ble = None  # {"name": advertised name} with "transport": "ble"
    cfg.gateway = None  # (host, port) or None: discover by beacon
    cfg.wifi = None  # (ssid, password) or None
    cfg.sensors = []  # dicts, see _sensor()
    cfg.routes = {}  # sensor name -> list of "to" values (None = gateway)
    cfg.rules = []  # dicts, see _rule()
    cfg.handlers = {}  # "relay"/"led" -> {"pin": int, ...}
    cfg.heap_budget = 112000
    cfg.boot_counter_file = "boot.cnt"
    cfg.sleep_state_file = "sleep.state"  # RTC memory on an ESP32; this file on the unix port
    cfg.provision = None  # {"port", "baudrate"}: take WiFi credentials over this line
    cfg.wifi_file = "wifi.json"  # where provisioned credentials are kept
    cfg.base_dir = "."  # directory of config.json: relative paths start here
    cfg.unknown_keys = []
    for key in TUNING:
        setattr(cfg, key, TUNING[key])


def _err(where, why):
    return ConfigError("%s: %s" % (where, why))


def _need(obj, key, where):
    if key not in obj:
        raise _err(where, "missing key '%s'" % key)
    return obj[key]


def _str(v, where, allow_empty=False):
    if type(v) is not str or (not v and not allow_empty):
        raise _err(where, "expected a non-empty string")
    return v


def _int(v, where, lo=0, hi=0x7FFFFFFF):
    if type(v) is not int or v < lo or v > hi:
        raise _err(where, "expected an integer in %d..%d" % (lo, hi))
    return v


def _milli(v, where):
    """A JSON number in units -> integer milli-units (rounded half to even)."""
    if type(v) is int:
        return v * 1000
    if type(v) is float:
        return int(round(v * 1000))
    raise _err(where, "expected a number")


def _hex(v, where, nbytes):
    if type(v) is not str or len(v) != 2 * nbytes:
        raise _err(where, "expected %d hex characters" % (2 * nbytes))
    try:
        return bytes.fromhex(v)
    except ValueError:
        raise _err(where, "expected %d hex characters" % (2 * nbytes))


def _list(v, where):
    if type(v) is not list:
        raise _err(where, "expected a list")
    return v


def _dict(v, where):
    if type(v) is not dict:
        raise _err(where, "expected an object")
    return v


def parse_hostport(v, where):
    """'HOST:PORT' -> (host, port). Raises ConfigError."""
    text = _str(v, where)
    i = text.rfind(":")
    if i <= 0:
        raise _err(where, "expected HOST:PORT")
    try:
        port = int(text[i + 1:])
    except ValueError:
        raise _err(where, "expected HOST:PORT")
    return text[:i], _int(port, where, 1, 65535)


def _pin(obj, key, where):
    return _int(_need(obj, key, where), where + "." + key, 0, 48)


def _sensor(s, where):
    s = _dict(s, where)
    for key, most in (("name", 32), ("unit", 16)):  # a reading record stays small
        if type(s.get(key)) is str and len(s[key]) > most:
            raise _err(where + "." + key, "at most %d characters" % most)
    out = {"name": _str(_need(s, "name", where), where + ".name"),
           "type": _need(s, "type", where),
           "interval_ms": _int(_need(s, "interval_ms", where), where + ".interval_ms",
                               10, 86400000),
           "unit": _str(s.get("unit", ""), where + ".unit", True)}
    kind = out["type"]
    if kind not in SENSOR_TYPES:
        raise _err(where + ".type", "expected one of %s" % ", ".join(SENSOR_TYPES))
    if kind == "sim":
        out["base_milli"] = _milli(s.get("base", 0), where + ".base")
        out["amplitude_milli"] = _milli(s.get("amplitude", 0), where + ".amplitude")
        out["noise_milli"] = abs(_milli(s.get("noise", 0), where + ".noise"))
        out["period_ms"] = _int(s.get("period_ms", 60000), where + ".period_ms", 1)
        out["seed"] = _int(s.get("seed", 1), where + ".seed", 0, 0xFFFFFFFF)
    elif kind in ("adc", "dht22"):
        out["pin"] = _pin(s, "pin", where)
    if kind in ("dht22", "bme280"):
        fields = ("temperature", "humidity") if kind == "dht22" else (
            "temperature", "humidity", "pressure")
        out["field"] = s.get("field", "temperature")
        if out["field"] not in fields:
            raise _err(where + ".field", "expected one of %s" % ", ".join(fields))
    if kind == "bme280":
        bus = _dict(_need(s, "i2c", where), where + ".i2c")
        out["scl"] = _pin(bus, "scl", where + ".i2c")
        out["sda"] = _pin(bus, "sda", where + ".i2c")
        out["address"] = _int(bus.get("address", 0x76), where + ".i2c.address", 0x76, 0x77)
    return out


def _to(v, where):
    """A route or rule target: None for the gateway only, "broadcast" or a node ID."""
    if v is None or v == "gateway":
        return None
    if v == "broadcast" or is_id(v):
        return v
    raise _err(where, "expected a node ID (lowercase UUID), \"broadcast\" or \"gateway\"")


def _rule(r, where):
    r = _dict(r, where)
    src = _need(r, "from", where)
    if src != "*" and not is_id(src):
        raise _err(where + ".from", "expected a node ID (lowercase UUID) or \"*\"")
    op = _need(r, "op", where)
    if op not in OPS:
        raise _err(where + ".op", "expected one of %s" % " ".join(OPS))
    action = _need(r, "action", where)
    if action not in ACTIONS:
        raise _err(where + ".action", "expected one of %s" % ", ".join(ACTIONS))
    arg = r.get("arg", 1 if action != "log" else "")
    if type(arg) is not (str if action == "log" else int):
        raise _err(where + ".arg", "expected %s" % (
            "a string" if action == "log" else "an integer (0 = off, 1 = on)"))
    return {"from": src, "sensor": _str(_need(r, "sensor", where), where + ".sensor"),
            "op": op, "value_milli": _milli(_need(r, "value", where), where + ".value"),
            "action": action, "arg": arg}


def _serial(s, where):
    """The "serial" object: port (a tty path, or a UART id 0..2), baudrate, tx/rx pins."""
    s = _dict(s, where)
    port = _need(s, "port", where)
    if type(port) is int:
        _int(port, where + ".port", 0, 2)
    else:
        _str(port, where + ".port")
    out = {"port": port,
           "baudrate": _int(s.get("baudrate", 115200), where + ".baudrate", 300, 5000000)}
    for key in ("tx", "rx"):
        if key in s:
            out[key] = _pin(s, key, where)
    return out


def _ble(b, name, where):
    """The optional "ble" object: name, the advertised local name (default: the board's)."""
    b = _dict(b, where)
    adv = _str(b.get("name", name), where + ".name")
    if len(adv.encode()) > 28:  # aioble moves it into the 31-byte scan response
        raise _err(where + ".name", "at most 28 bytes (the board name is the default)")
    return {"name": adv}


def _fill_links(cfg, obj, where):
    cfg.transport = obj.get("transport", "udp")
    if cfg.transport not in TRANSPORTS:
        raise _err(where + ".transport", "expected \"udp\", \"tcp\", \"serial\" or \"ble\"")
    if cfg.transport == "serial":
        cfg.serial = _serial(_need(obj, "serial", where), where + ".serial")
    if cfg.transport == "ble":
        cfg.ble = _ble(obj.get("ble", {}), cfg.name, where + ".ble")
    if obj.get("gateway") is not None:
        cfg.gateway = parse_hostport(obj["gateway"], where + ".gateway")
    if obj.get("provision") is not None:
        cfg.provision = _serial(obj["provision"], where + ".provision")
    cfg.wifi_file = _str(obj.get("wifi_file", cfg.wifi_file), where + ".wifi_file")
    wifi = obj.get("wifi")
    if wifi is not None:
        wifi = _dict(wifi, where + ".wifi")
        cfg.wifi = (_str(_need(wifi, "ssid", where + ".wifi"), where + ".wifi.ssid"),
                    _str(wifi.get("password", ""), where + ".wifi.password", True))


def _fill_app(cfg, obj, where):
    names = []
    for i, s in enumerate(_list(obj.get("sensors", []), where + ".sensors")):
        sensor = _sensor(s, "%s.sensors[%d]" % (where, i))
        if sensor["name"] in names:
            raise _err("%s.sensors[%d].name" % (where, i), "duplicate sensor name")
        names.append(sensor["name"])
        cfg.sensors.append(sensor)
    for i, r in enumerate(_list(obj.get("routes", []), where + ".routes")):
        w = "%s.routes[%d]" % (where, i)
        r = _dict(r, w)
        name = _str(_need(r, "sensor", w), w + ".sensor")
        if name not in names:
            raise _err(w + ".sensor", "no sensor named '%s'" % name)
        cfg.routes.setdefault(name, []).append(_to(_need(r, "to", w), w + ".to"))
    for i, r in enumerate(_list(obj.get("rules", []), where + ".rules")):
        cfg.rules.append(_rule(r, "%s.rules[%d]" % (where, i)))
    handlers = _dict(obj.get("handlers", {}), where + ".handlers")
    for key in handlers:
        if key not in ("relay", "led"):
            raise _err(where + ".handlers", "unknown handler '%s'" % key)
        w = where + ".handlers." + key
        h = _dict(handlers[key], w)
        _pin(h, "pin", w)
        if h.get("kind", "gpio") not in ("gpio", "ws2812"):
            raise _err(w + ".kind", "expected \"gpio\" or \"ws2812\"")
        if type(h.get("active_low", False)) is not bool:
            raise _err(w + ".active_low", "expected true or false")
        cfg.handlers[key] = h


def from_obj(obj, where="config.json"):
    """Validate a decoded config.json object -> Config. Raises ConfigError."""
    obj = _dict(obj, where)
    cfg = Config()
    _defaults(cfg)
    cfg.name = _str(_need(obj, "name", where), where + ".name")
    cfg.board = _need(obj, "board", where)
    if cfg.board not in BOARDS:
        raise _err(where + ".board", "expected one of %s" % ", ".join(BOARDS))
    cfg.board_id = _hex(_need(obj, "board_id", where), where + ".board_id", 8)
    cfg.psk = _hex(_need(obj, "psk", where), where + ".psk", 32)
    cfg.node_id = _need(obj, "node_id", where)
    if not is_id(cfg.node_id):
        raise _err(where + ".node_id", "expected a node ID (lowercase UUID)")
    _fill_links(cfg, obj, where)
    _fill_app(cfg, obj, where)
    cfg.heap_budget = _int(obj.get("heap_budget", cfg.heap_budget), where + ".heap_budget",
                           16384)
    cfg.boot_counter_file = _str(obj.get("boot_counter_file", cfg.boot_counter_file),
                                 where + ".boot_counter_file")
    cfg.sleep_state_file = _str(obj.get("sleep_state_file", cfg.sleep_state_file),
                                where + ".sleep_state_file")
    for key in TUNING:
        if key in obj:
            setattr(cfg, key, _int(obj[key], where + "." + key))
    if cfg.sleep_ms and cfg.sleep_ms < 100:
        raise _err(where + ".sleep_ms", "expected 0 (never sleep) or at least 100")
    if cfg.sleep_resume > 1:
        raise _err(where + ".sleep_resume", "expected 0 or 1")
    cfg.unknown_keys = [k for k in obj if k not in _KNOWN and k not in TUNING]
    return cfg


def load(path):
    """Read and validate config.json at path -> Config.

    Raises:
        ConfigError: the file is missing, not JSON, or a key is missing,
            of the wrong type or out of range.
    """
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        raise _err(path, "cannot read the file")
    try:
        obj = json.loads(text)
    except ValueError:
        raise _err(path, "not valid JSON")
    cfg = from_obj(obj, path)
    i = path.rfind("/")
    cfg.base_dir = path[:i] if i > 0 else ("/" if i == 0 else ".")
    return cfg
