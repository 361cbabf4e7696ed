# Provisioning without baked WiFi secrets: a board whose config.json has no
# "wifi" but a "provision" line takes its WiFi credentials over that serial
# line from `meshlink board provision` (docs/BOARDS.md "Provisioning"),
# sealed under its own PSK (meshlink.provision, PROTOCOL.md §9.3), and keeps
# them in a file on its flash. Loaded only by boards that need it.
# Rules: the password is never printed. Credentials that fail their tag
# (another board's key, a replay, changed on the line) or are malformed are
# refused with PROV_REFUSED and one console line; the board keeps waiting.
# On the unix port the line is a tty (a pty in tests); on an ESP32 a UART.
# The ESP32 UART path and WiFi itself are UNTESTED ON HARDWARE.
import asyncio

from meshlink import cjson, provision
from meshlink.errors import AuthError, DecodeError, MeshLinkError, TransportError

from app import platform

_HELLO_EVERY_MS = 1000  # PROV_HELLO repeated: a host that attaches late sees one


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
    from app.serial_link import SerialTransport  # only boards that provision pay for it

    line = SerialTransport(cfg.provision)
    nb = platform.urandom(provision.NONCE_BYTES)  # this exchange's nonce: replays fail
    hello = provision.encode_hello(cfg.board_id, nb)
    platform.log("PROVISION waiting on %s board_id=%s" % (line.name, cfg.board_id.hex()))
    while True:
        try:
            await line.open()
            break
        except TransportError as e:
            platform.log("PROVISION cannot open the line (%s); retry" % e)
            await asyncio.sleep_ms(_HELLO_EVERY_MS)
    try:
        while True:
            await line.send(hello)
            try:
                msg = await asyncio.wait_for_ms(line.recv(), _HELLO_EVERY_MS)
            except asyncio.TimeoutError:  # noqa: UP041 (MicroPython: not the builtin)
                continue
            if provision.kind(msg) != provision.T_PROV_CREDS:
                continue  # our own HELLO echoed, noise, another message
            try:
                ssid, password, ng = provision.open_creds(cfg.psk, cfg.board_id, nb, msg)
            except AuthError:
                platform.log("PROVISION refused: the credentials' tag does not verify "
                             "(another board's key, a replay, or changed on the line)")
                await line.send(provision.encode_refused(provision.REFUSED_TAG))
                continue
            except DecodeError as e:
                platform.log("PROVISION refused: malformed credentials (%s)" % e)
                await line.send(provision.encode_refused(provision.REFUSED_MALFORMED))
                continue
            try:
                _store(path, ssid, password)
            except OSError as e:
                platform.log("PROVISION cannot store the credentials: %s" % e)
                continue
            await line.send(provision.encode_done(cfg.psk, cfg.board_id, nb, ng))
            platform.log("PROVISIONED wifi ssid=%s" % ssid)
            return ssid, password
    finally:
        await line.close()
