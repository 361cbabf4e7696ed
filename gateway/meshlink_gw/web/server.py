"""A small HTTP/1.1 server on asyncio streams: the dashboard page, its JSON
state, an on-demand trace and Prometheus /metrics.

Rule: one request per connection (Connection: close); request line and
headers bounded (MAX_HEAD_BYTES, HEAD_TIMEOUT_S); every data endpoint needs
the token (`Authorization: Bearer TOKEN` or `?token=TOKEN`), compared in
constant time; static files carry no data and need none. A bad request gets
a 4xx and one debug log line; nothing here can end the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from meshlink.errors import MeshLinkError

from meshlink_gw.web.metrics import render

log = logging.getLogger("meshlink.web")

STATIC = Path(__file__).with_name("static")
FILES = {"/": ("index.html", "text/html; charset=utf-8"),
         "/app.js": ("app.js", "text/javascript; charset=utf-8"),
         "/style.css": ("style.css", "text/css; charset=utf-8")}
MAX_HEAD_BYTES = 16384
HEAD_TIMEOUT_S = 10.0
REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
           405: "Method Not Allowed", 502: "Bad Gateway"}

Snapshot = Callable[[], dict]
Trace = Callable[[str], Awaitable[dict]]


class HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def new_token() -> str:
    return secrets.token_urlsafe(24)


class WebServer:
    """Serves the dashboard for snapshot() (and trace(node) if given) on addr."""

    def __init__(self, addr: tuple[str, int], token: str, snapshot: Snapshot,
                 trace: Trace | None = None) -> None:
        self.addr = addr
        self.token = token
        self.snapshot = snapshot
        self.trace = trace
        self.bound: tuple[str, int] = addr
        self._server: asyncio.AbstractServer | None = None

    @property
    def url(self) -> str:
        """The page's address, token included (what the CLI prints)."""
        host = self.bound[0]
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.bound[1]}/?token={quote(self.token)}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.addr[0], self.addr[1],
                                                  reuse_address=True, limit=MAX_HEAD_BYTES)
        sock = self._server.sockets[0].getsockname()
        self.bound = (sock[0], sock[1])
        log.info("dashboard on http://%s:%d/ (token required)", *self.bound)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT_S)
            status, ctype, body = await self._respond(head)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError,
                ConnectionError):
            writer.close()
            return
        except HttpError as e:
            log.debug("web: %d %s", e.status, e)
            status, ctype, body = e.status, "text/plain; charset=utf-8", (str(e) + "\n").encode()
        writer.write(f"HTTP/1.1 {status} {REASONS.get(status, '')}\r\n"
                     f"Content-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                     "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n"
                     "Content-Security-Policy: default-src 'self'\r\n"
                     "Connection: close\r\n\r\n".encode() + body)
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()

    async def _respond(self, head: bytes) -> tuple[int, str, bytes]:
        if len(head) > MAX_HEAD_BYTES:
            raise HttpError(400, "request head too large")
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise HttpError(400, "bad request line")
        method, target = parts[0], urlsplit(parts[1])
        if method != "GET":
            raise HttpError(405, "only GET")
        query = parse_qs(target.query)
        headers = {k.strip().lower(): v.strip() for k, _, v in
                   (ln.partition(":") for ln in lines[1:] if ln)}
        path = target.path
        if path in FILES and path != "/":
            name, ctype = FILES[path]
            return 200, ctype, (STATIC / name).read_bytes()
        self._authorize(headers, query)
        if path == "/":
            name, ctype = FILES[path]
            return 200, ctype, (STATIC / name).read_bytes()
        if path == "/metrics":
            return 200, "text/plain; version=0.0.4; charset=utf-8", \
                render(self.snapshot()).encode()
        if path == "/api/state":
            return 200, "application/json", json.dumps(self.snapshot()).encode()
        if path == "/api/trace" and self.trace is not None:
            return 200, "application/json", json.dumps(await self._trace(query)).encode()
        raise HttpError(404, "not found")

    def _authorize(self, headers: dict[str, str], query: dict[str, list[str]]) -> None:
        given = ""
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            given = auth[7:].strip()
        elif query.get("token"):
            given = query["token"][0]
        if not hmac.compare_digest(given.encode(), self.token.encode()):
            raise HttpError(401, "a valid token is required: open the address `meshlink "
                                 "node` or `meshlink gateway` printed at start "
                                 "(…/?token=...), or send Authorization: Bearer TOKEN")

    async def _trace(self, query: dict[str, list[str]]) -> dict[str, Any]:
        node = (query.get("node") or [""])[0]
        assert self.trace is not None
        try:
            return await self.trace(node)
        except MeshLinkError as e:
            return {"ok": False, "reason": str(e), "path": None, "rtt_ms": None}
