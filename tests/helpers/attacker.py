"""An outsider on the node link, for tests against `meshlink node` processes: it
opens TCP connections from another loopback host (127.0.1.2: another /24), sends
first flights (replayed, garbage, or fresh from throw-away identities) and
reports what came back. Every flood here is bounded in count and in time."""

from __future__ import annotations

import asyncio
from collections import Counter

from meshlink import messages
from meshlink.errors import MeshLinkError
from meshlink.frames import encode_frame
from meshlink_gw.crypto.handshake import CookieRequired, Initiator
from meshlink_gw.crypto.identity import Identity

from helpers import DEADLINE_S

ATTACKER = "127.0.1.2"


def addr_of(listen: str) -> tuple[str, int]:
    host, port = listen.rsplit(":", 1)
    return host, int(port)


async def open_from(addr: tuple[str, int], source: str = ATTACKER
                    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(*addr, local_addr=(source, 0))


async def frame_or_close(r: asyncio.StreamReader, timeout_s: float = DEADLINE_S
                         ) -> bytes | None:
    """The next whole frame, or None once the peer closed the connection."""
    try:
        length = int.from_bytes(await asyncio.wait_for(r.readexactly(4), timeout_s), "big")
        return await asyncio.wait_for(r.readexactly(length), timeout_s)
    except (asyncio.IncompleteReadError, ConnectionError):
        return None


def reply_type(frame: bytes | None) -> str:
    """The type of a reply, "closed" for none, "garbage" if it does not decode."""
    if frame is None:
        return "closed"
    try:
        return messages.decode(frame).TYPE
    except MeshLinkError:
        return "garbage"


async def first_flights(addr: tuple[str, int], payloads: list[bytes], *,
                        concurrency: int = 8, time_cap_s: float = 2 * DEADLINE_S
                        ) -> Counter[str]:
    """Send each payload as the first frame of its own connection (at most
    `concurrency` at once) and count the reply types. Stops early, with what
    it has, once time_cap_s has passed."""
    loop = asyncio.get_running_loop()
    stop_at = loop.time() + time_cap_s
    seen: Counter[str] = Counter()
    todo = list(payloads)

    async def worker() -> None:
        while todo and loop.time() < stop_at:
            payload = todo.pop()
            try:
                r, w = await open_from(addr)
            except OSError:
                seen["connect_failed"] += 1
                continue
            w.write(encode_frame(payload))
            seen[reply_type(await frame_or_close(r))] += 1
            w.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return seen


async def throwaway_link(addr: tuple[str, int], source: str = ATTACKER
                         ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
    """A complete handshake with a fresh identity (taking a cookie if the node
    asks for one); the open connection, or None if the node refused it."""
    cookie = None
    for _ in range(2):
        init = Initiator(Identity.generate(), listen_port=0, cookie=cookie)
        r, w = await open_from(addr, source)
        w.write(encode_frame(init.start()))
        m2 = await frame_or_close(r)
        if m2 is None:
            w.close()
            return None
        try:
            w.write(encode_frame(init.receive(m2)))
        except CookieRequired as e:
            cookie = e.cookie
            w.close()
            continue
        await w.drain()
        return r, w
    return None
