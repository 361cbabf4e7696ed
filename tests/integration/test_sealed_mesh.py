"""Issue 13 against real `meshlink node` processes on a line A - R - C, where
R is an insider relay (tests/helpers/insider.py: real handshakes with both,
so it decrypts every link record, exactly what a relay sees). R forwards
every routed message; the payload of an A->C message never appears in what
R decrypts, C gets it intact, a flipped ciphertext bit is dropped at C
without a proof, a forged key record is refused, and a restarted C (same
identity, fresh keys) is reached again (docs/PROTOCOL.md §13)."""

from __future__ import annotations

import asyncio
import base64
import json

from helpers import DEADLINE_S, poll_until, run
from helpers.insider import Insider, new_id
from meshlink import messages
from meshlink_gw.crypto.kem import get_backend
from meshlink_gw.crypto.seal import new_key_pair
from meshlink_gw.node.e2e import KEYS_REPLY
from meshlink_gw.node.node import _control

FAST = "[node]\nretry_interval_ms = 300\ndelivery_timeout_ms = 3000\n"
SECRET = "sensor 7: the back door is open"


class Relay:
    """One insider identity linked to two nodes; forwards routed messages
    between them and keeps every mesh message it decrypted."""

    def __init__(self) -> None:
        self.left = Insider()
        self.right = Insider()
        self.right.identity, self.right.node_id = self.left.identity, self.left.node_id
        self.right.auth = self.left.auth
        self.seen: list[messages.MeshMessage] = []
        self.flip = False  # flip a bit of every sealed payload it forwards
        self._tasks: list[asyncio.Task] = []

    async def link(self, a_listen: str, c_listen: str) -> None:
        for ins, listen in ((self.left, a_listen), (self.right, c_listen)):
            host, port = listen.rsplit(":", 1)
            await ins.connect(host, int(port))
        self._tasks = [asyncio.create_task(self._pump(self.left, lambda: self.right)),
                       asyncio.create_task(self._pump(self.right, lambda: self.left))]

    async def relink_right(self, c_listen: str) -> None:
        fresh = Insider()
        fresh.identity, fresh.node_id = self.left.identity, self.left.node_id
        host, port = c_listen.rsplit(":", 1)
        await fresh.connect(host, int(port))
        old, self.right = self.right, fresh  # swapped only once it is linked
        await old.close()
        self._tasks.append(asyncio.create_task(self._pump(self.right, lambda: self.left)))

    async def _pump(self, src: Insider, dst) -> None:
        done = 0
        while True:
            await asyncio.sleep(0.01)
            if src.writer.is_closing():
                return
            fresh, done = src.received[done:], len(src.received)
            for msg in fresh:
                if msg.TYPE == "mesh":
                    self.seen.append(msg)
                    if self.flip and msg.data[:1] in (b"\x01", b"\x02"):
                        msg.data = msg.data[:-1] + bytes((msg.data[-1] ^ 1,))
                if msg.TYPE in ("mesh", "ack", "routes"):
                    if hasattr(msg, "path"):
                        msg.path = list(msg.path) + [self.left.node_id]
                    try:
                        dst().send(msg)
                    except (ConnectionError, RuntimeError):
                        pass

    async def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        await self.left.close()
        await self.right.close()


def _send(node, dst: str, text: str) -> dict:
    out = node.cli("send", "--json", "--to", dst, text)
    return json.loads(out.stdout) if out.stdout.strip() else {"delivered": False}


def _stat(node, key: str) -> int:
    return node.status()["stats"].get(key, 0)


def _config(tmp_path) -> tuple[str, ...]:
    path = tmp_path / "fast.toml"
    path.write_text(FAST)
    return ("--config", str(path))


def test_relay_sees_no_payload_and_tampering_is_dropped(spawn, tmp_path):
    a = spawn("a", extra=_config(tmp_path))
    c = spawn("c", extra=_config(tmp_path))

    async def main() -> None:
        r = Relay()
        await r.link(a.listen, c.listen)
        await asyncio.to_thread(a.wait_peers, 1)
        res = await asyncio.to_thread(_send, a, c.node_id, SECRET)
        assert res["delivered"] is True, res
        got = await asyncio.to_thread(c.wait_received, res["message_id"])
        assert got["from"] == a.node_id
        assert SECRET in json.dumps(got)
        # everything R decrypted from its links: no plaintext, in clear or base64
        to_c = [m for m in r.seen if m.src == a.node_id and m.dst == c.node_id]
        assert any(m.data[:1] == b"\x01" for m in to_c), "no sealed setup went through R"
        user = [m for m in to_c if not _control(m.data)]
        assert user and all(m.data[:1] in (b"\x01", b"\x02") for m in user)
        wire = b"".join(m.encode() for m in r.seen)
        assert SECRET.encode() not in wire
        assert base64.b64encode(SECRET.encode())[:24] not in wire

        # a relay that flips a ciphertext bit: C drops it, A gets no proof
        r.flip = True
        forged0 = await asyncio.to_thread(_stat, c, "forged_messages")
        res = await asyncio.to_thread(_send, a, c.node_id, "tampered on the way")
        assert res["delivered"] is False, res
        assert await asyncio.to_thread(_stat, c, "forged_messages") > forged0
        assert not [i for i in await asyncio.to_thread(c.received)
                    if "tampered" in json.dumps(i)]
        r.flip = False

        # a forged key record: R's own record with a key swapped after signing
        pair = new_key_pair(get_backend(), r.left.node_id, 1, lambda n: bytes(n))
        rec = pair.sign(r.left.identity.public_bytes, r.left.identity.sign)
        rec.x25519 = bytes(31) + b"\x09"
        bad = messages.MeshMessage(src=r.left.node_id, dst=a.node_id,
                                   data=KEYS_REPLY + rec.encode(), message_id=new_id(),
                                   ttl=8, path=[])
        r.left.send(r.left.auth.sign_mesh(bad))
        await asyncio.to_thread(poll_until, lambda: _stat(a, "records_refused") >= 1 or None,
                                DEADLINE_S, what="forged record refused")
        await r.close()

    run(main())


def test_restarted_destination_gets_new_sessions(spawn, tmp_path):
    a = spawn("a", extra=_config(tmp_path))
    c = spawn("c", extra=_config(tmp_path))

    async def main() -> None:
        r = Relay()
        await r.link(a.listen, c.listen)
        await asyncio.to_thread(a.wait_peers, 1)
        first = await asyncio.to_thread(_send, a, c.node_id, "before the restart")
        assert first["delivered"] is True, first
        c.stop()
        c2 = spawn("c", extra=_config(tmp_path))  # same data directory: same identity
        assert c2.node_id == c.node_id
        await r.relink_right(c2.listen)
        await asyncio.to_thread(c2.wait_peers, 1)

        def delivered() -> dict | None:
            res = _send(a, c2.node_id, "after the restart")
            return res if res["delivered"] else None

        res = await asyncio.to_thread(poll_until, delivered, 4 * DEADLINE_S,
                                      what="delivery after C restarted")
        await asyncio.to_thread(c2.wait_received, res["message_id"])
        await r.close()

    run(main())
