# Provisioning without baked WiFi secrets: a board whose config.json has no
# "wifi" but a "provision" line takes its WiFi credentials over that serial
# line from `meshlink board provision` (docs/BOARDS.md "Provisioning"),
# sealed under its own PSK (meshlink.provision; PROTOCOL.md §9, "Provisioning
# over serial"), and keeps them in a file on its flash. Loaded only by boards that need it.
# Rules: the password is never printed. Credentials that fail their tag
# (another board's key, a replay, changed on the line) or are malformed are
# refused with PROV_REFUSED and one console line; the board keeps waiting.
# On the unix port the line is a tty (a pty in tests); on an ESP32 a UART.
# The ESP32 UART path and WiFi itself are UNTESTED ON HARDWARE.
import asyncio

from meshlink import cjson, provision
from meshlink.errors import AuthError, DecodeError, MeshLinkError

from app import platform

_HELLO_EVERY_MS = 1000  # PROV_HELLO repeated: a host that attaches late sees one
_POLL_MS = 50


def unload():
    """Drop the provisioning modules once done: their heap goes back to the
    link (a 112K heap cannot keep them and still find 1 KB in one piece)."""
    import sys

    import app as app_pkg

    for name in ("app.provision", "meshlink.provision", "app.serial_link",
                 "meshlink.serialframe"):
        if name in sys.modules:
            del sys.modules[name]
    import meshlink

    for pkg, attr in ((app_pkg, "provision"), (app_pkg, "serial_link"),
                      (meshlink, "provision"), (meshlink, "serialframe")):
        if attr in pkg.__dict__:
            delattr(pkg, attr)


def load(path):
    """(ssid, password) stored by an earlier provisioning, or None."""
    try:
        with open(path, "rb") as f:
            obj = cjson.loads(f.read())
    except (OSError, MeshLinkError):
        return None
    if type(obj) is not dict or type(obj.get("ssid")) is not str \
            or type(obj.get("password")) is not str:
        return None
    return obj["ssid"], obj["password"]


def _store(path, ssid, password):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(cjson.dumps({"password": password, "ssid": ssid}))
    import os

    os.rename(tmp, path)


async def wifi(cfg, clock):
    """The board's WiFi credentials: stored ones, else wait on the provisioning
    line until valid ones arrive. Returns (ssid, password)."""
    path = platform.data_path(cfg.base_dir, cfg.wifi_file)
    stored = load(path)
    if stored is not None:
        platform.log("PROVISIONED earlier: wifi ssid=%s" % stored[0])
        return stored
    from app import serial_link  # only boards that provision pay for it

    spec = cfg.provision
    name = "serial:%s" % (spec["port"],)
    nb = platform.urandom(provision.NONCE_BYTES)  # this exchange's nonce: replays fail
    hello = provision.encode_hello(cfg.board_id, nb)
    platform.log("PROVISION waiting on %s board_id=%s" % (name, cfg.board_id.hex()))
    while True:
        try:
            if type(spec["port"]) is int:
                stream = serial_link.open_uart(spec["port"], spec["baudrate"], spec.get("tx"),
                                               spec.get("rx"))
            else:
                stream = serial_link.open_tty(spec["port"])
            break
        except OSError as e:
            platform.log("PROVISION cannot open %s (%s); retry" % (name, e))
            await asyncio.sleep_ms(_HELLO_EVERY_MS)
    line = serial_link.SerialLink(stream, 512)
    pending = []
    try:
        next_hello_ms = 0
        while True:
            now = clock.now_ms()
            if now >= next_hello_ms:
                line.send(hello)
                next_hello_ms = now + _HELLO_EVERY_MS
            # poll, not a cancelled read: a cancelled StreamReader read leaves the
            # stream registered to a dead task on MicroPython (the next never wakes)
            if not pending:
                pending = line.poll()
                if not pending:
                    await asyncio.sleep_ms(_POLL_MS)
                    continue
            msg = pending.pop(0)
            if provision.kind(msg) != provision.T_PROV_CREDS:
                continue  # our own HELLO echoed, noise, another message
            try:
                ssid, password, ng = provision.open_creds(cfg.psk, cfg.board_id, nb, msg)
            except AuthError:
                platform.log("PROVISION refused: the credentials' tag does not verify "
                             "(another board's key, a replay, or changed on the line)")
                line.send(provision.encode_refused(provision.REFUSED_TAG))
                continue
            except DecodeError as e:
                platform.log("PROVISION refused: malformed credentials (%s)" % e)
                line.send(provision.encode_refused(provision.REFUSED_MALFORMED))
                continue
            try:
                _store(path, ssid, password)
            except OSError as e:
                platform.log("PROVISION cannot store the credentials: %s" % e)
                continue
            line.send(provision.encode_done(cfg.psk, cfg.board_id, nb, ng))
            platform.log("PROVISIONED wifi ssid=%s" % ssid)
            return ssid, password
    finally:
        try:
            stream.close()
        except OSError:
            pass
