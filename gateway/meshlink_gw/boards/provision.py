"""`meshlink board provision`: WiFi credentials to a board over a serial line.

Rule: the protocol is meshlink.provision (sans-I/O, PROTOCOL.md §9 "Provisioning over serial"); this
module only moves its messages over transports.serial. The board says which
board it is (PROV_HELLO: board ID and a fresh nonce); credentials go only to
the board the operator named, sealed under that board's PSK, and count as
delivered only when the board proves it holds the same PSK (PROV_DONE).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from typing import Any

from meshlink import provision, serialframe
from meshlink.errors import AuthError, ConfigError, DecodeError, TransportError

from meshlink_gw.boards.registry import BoardRecord
from meshlink_gw.transports.serial import SerialTransport

log = logging.getLogger("meshlink.gateway")

RESEND_S = 2.0  # no answer to PROV_CREDS this long: send them again (a lost frame)


async def provision_board(rec: BoardRecord, port: str, ssid: str, password: str, *,
                          baudrate: int = 115_200, timeout_s: float = 30.0,
                          serial_factory: Any = None,
                          progress: Callable[[str], None] | None = None) -> dict:
    """Send board rec its WiFi credentials over the serial port -> a summary.

    Raises:
        ConfigError: the board on that port is another board.
        AuthError: the board refused them (its PSK is not rec's: another
            bundle was flashed), or its PROV_DONE does not verify.
        TransportError: the port cannot be opened, or no board answered in time.
        LocalProtocolError: SSID or password too long.
    """
    say = progress or (lambda _line: None)
    line = SerialTransport(port, baudrate=baudrate,
                           max_payload_bytes=serialframe.DEFAULT_MAX_PAYLOAD_BYTES,
                           serial_factory=serial_factory)
    await line.open()
    try:
        async with asyncio.timeout(timeout_s):
            return await _exchange(line, rec, port, ssid, password, say)
    except TimeoutError:
        raise TransportError(f"no answer from a board waiting for provisioning on {port} in "
                             f"{timeout_s:.0f} s (is it running, with no WiFi configured?)")
    finally:
        await line.close()


async def _exchange(line: SerialTransport, rec: BoardRecord, port: str, ssid: str,
                    password: str, say: Callable[[str], None]) -> dict:
    nb: bytes | None = None
    ng = b""
    sent_at = 0.0
    creds = b""
    frames = aiter(line)
    say(f"waiting for board {rec.name} on {port}")
    while True:
        wait = None if nb is None else max(0.05, sent_at + RESEND_S - time.monotonic())
        try:
            msg = await asyncio.wait_for(anext(frames), wait)
        except TimeoutError:
            await line.send(creds)  # lost on the way: the same bytes again
            sent_at = time.monotonic()
            continue
        except StopAsyncIteration:
            raise TransportError(f"{port} closed")
        kind = provision.kind(msg)
        if kind == provision.T_PROV_HELLO:
            try:
                board_id, hello_nb = provision.decode_hello(msg)
            except DecodeError:
                continue
            if board_id != rec.board_id:
                raise ConfigError(f"the board on {port} has board ID {board_id.hex()}, not "
                                  f"{rec.name}'s ({rec.board_id.hex()}): nothing sent")
            if hello_nb == nb:
                continue  # its periodic HELLO while our credentials are on the way
            nb, ng = hello_nb, os.urandom(provision.NONCE_BYTES)
            creds = provision.seal_creds(rec.psk, rec.board_id, nb, ng, ssid, password)
            await line.send(creds)
            sent_at = time.monotonic()
            say(f"board {rec.name} found; credentials sent (sealed under its key)")
        elif kind == provision.T_PROV_DONE and nb is not None:
            provision.check_done(rec.psk, rec.board_id, nb, ng, msg)
            log.info("board %s provisioned with WiFi %r over %s", rec.name, ssid, port)
            return {"name": rec.name, "board_id": rec.board_id.hex(), "ssid": ssid,
                    "port": port, "provisioned": True}
        elif kind == provision.T_PROV_REFUSED and nb is not None:
            reason = provision.decode_refused(msg)
            raise AuthError(f"board on {port} refused the credentials ("
                            + ("they do not verify under its key: is the bundle on it "
                               f"{rec.name}'s?" if reason == provision.REFUSED_TAG
                               else "malformed") + ")")
