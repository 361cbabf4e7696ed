"""Local control socket: how `meshlink status/send/recv` talk to a running node.

Rule: a Unix socket in the data directory (mode 0600), one JSON object per
line each way. Only the local user can reach it; it is not a network API.
Handlers are registered by command name so the gateway can add its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from meshlink.errors import LocalProtocolError, MeshLinkError, TransportError

log = logging.getLogger("meshlink.control")

Handler = Callable[[dict, asyncio.StreamWriter], Awaitable[Any]]
MAX_REQUEST_BYTES = 1 << 20


def _line(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


class ControlServer:
    """Serves registered commands on a Unix socket."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.handlers: dict[str, Handler] = {}
        self._server: asyncio.AbstractServer | None = None

    def register(self, cmd: str, handler: Handler) -> None:
        self.handlers[cmd] = handler

    async def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self._server = await asyncio.start_unix_server(self._serve, str(self.path),
                                                       limit=MAX_REQUEST_BYTES)
        os.chmod(self.path, 0o600)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await reader.readline()
            req = json.loads(line)
            cmd = req.get("cmd") if isinstance(req, dict) else None
            handler = self.handlers.get(cmd) if isinstance(cmd, str) else None
            if handler is None:
                raise LocalProtocolError(f"unknown command {req!r}")
            result = await handler(req, writer)
            if result is not None:
                writer.write(_line({"ok": True, "result": result}))
        except MeshLinkError as e:  # its text is the message for the user
            writer.write(_line({"ok": False, "error": str(e)}))
        except ValueError as e:
            writer.write(_line({"ok": False, "error": f"bad request: {e}"}))
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            # the node is stopping with a client attached (`recv --follow`): end
            # quietly; Python 3.11's stream callback logs a cancelled handler's
            # CancelledError with a traceback
            pass
        finally:
            with contextlib.suppress(OSError):
                await writer.drain()
                writer.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


async def request(path: Path, req: dict, timeout_s: float | None = 60.0) -> Any:
    """Send one command and return its result.

    Raises:
        TransportError: no node is running on this data directory.
        LocalProtocolError: the node refused the command.
    """
    async for item in stream(path, req, timeout_s):
        return item
    raise TransportError("node closed the control connection without an answer")


async def stream(path: Path, req: dict, timeout_s: float | None = None) -> AsyncIterator[Any]:
    """Send one command and yield each result line (for follow-style commands)."""
    try:
        reader, writer = await asyncio.open_unix_connection(str(path), limit=MAX_REQUEST_BYTES)
    except (FileNotFoundError, ConnectionRefusedError, NotADirectoryError):
        raise TransportError(f"no node is running with control socket {path} (start one "
                             "with `meshlink node` or `meshlink gateway`, or give the "
                             "--data-dir it runs with)")
    except PermissionError:
        raise TransportError(f"cannot open the control socket {path}: permission denied "
                             "(run as the user the node runs as)")
    try:
        writer.write(_line(req))
        await writer.drain()
        while True:
            line = await asyncio.wait_for(reader.readline(), timeout_s)
            if not line:
                return
            reply = json.loads(line)
            if not reply.get("ok"):
                raise LocalProtocolError(reply.get("error", "refused"))
            yield reply["result"]
    finally:
        writer.close()


def attach_node_commands(server: ControlServer, node) -> None:
    """Register status, nodes, resolve, probe, send and recv for a Node."""

    async def status(req: dict, w: asyncio.StreamWriter) -> Any:
        return node.status()

    async def nodes(req: dict, w: asyncio.StreamWriter) -> Any:
        return node.nodes()

    async def resolve(req: dict, w: asyncio.StreamWriter) -> Any:
        return {"node_id": await node.resolve_reachable(str(req.get("node", "")))}

    async def probe(req: dict, w: asyncio.StreamWriter) -> Any:
        timeout_s = req.get("timeout_s", 5.0)
        if type(timeout_s) not in (int, float) or not 0 < timeout_s <= 600:
            raise LocalProtocolError("timeout_s must be a number in (0, 600]")
        node_id = await node.resolve_reachable(str(req.get("to", "")), float(timeout_s))
        return await node.probe(node_id, bool(req.get("trace")), float(timeout_s))

    async def send(req: dict, w: asyncio.StreamWriter) -> Any:
        data = bytes.fromhex(req["data_hex"]) if "data_hex" in req else \
            str(req.get("text", "")).encode()
        dst = req.get("to")
        sent_unix_ms = int(time.time() * 1000)
        msg, fut = node.originate(dst, data)
        if fut is None:
            return {"message_id": msg.message_id, "broadcast": True,
                    "sent_unix_ms": sent_unix_ms}
        res = await fut
        return {"message_id": res.message_id, "delivered": res.delivered, "rtt_ms": res.rtt_ms,
                "attempts": res.attempts, "reason": res.reason, "sent_unix_ms": sent_unix_ms}

    async def recv(req: dict, w: asyncio.StreamWriter) -> Any:
        after = int(req.get("after", 0))
        while True:
            changed = node.inbox_changed
            for rec in node.inbox.since(after):
                w.write(_line({"ok": True, "result": rec.to_json()}))
                after = rec.seq
            await w.drain()
            if not req.get("follow"):
                return None
            await changed.wait()

    server.register("status", status)
    server.register("nodes", nodes)
    server.register("resolve", resolve)
    server.register("probe", probe)
    server.register("send", send)
    server.register("recv", recv)
