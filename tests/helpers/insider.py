"""An insider: a peer that completes a real PQMESH/1 handshake with a node (the
project's own Initiator, so it is admitted like any neighbour) and then sends
whatever a test makes it forge. It answers Pings so its link stays up, and
keeps every routed message it receives for the test to look at."""

from __future__ import annotations

import asyncio
import os

from meshlink import messages
from meshlink.auth import Auth
from meshlink.frames import Deframer, encode_frame
from meshlink.nodeid import new_message_id
from meshlink_gw.crypto.handshake import Initiator
from meshlink_gw.crypto.identity import Identity, verify

from helpers import DEADLINE_S, wait_until


def new_id() -> str:
    return new_message_id(os.urandom(16))


class Insider:
    """One hostile neighbour with a genuine identity of its own."""

    def __init__(self) -> None:
        self.identity = Identity.generate()
        self.node_id = self.identity.node_id
        self.auth = Auth(verify)  # signs as itself only: it holds no one else's key
        self.auth.add_signer(self.node_id, self.identity.public_bytes, self.identity.sign)
        self.received: list[messages.Message] = []
        self._task: asyncio.Task | None = None
        self._closing = False

    async def connect(self, host: str, port: int) -> Insider:
        self.reader, self.writer = await asyncio.open_connection(host, port)
        self.deframer = Deframer()
        self.pending: list[bytes] = []
        init = Initiator(self.identity, listen_port=1)
        self.writer.write(encode_frame(init.start()))
        m2 = await asyncio.wait_for(self._frame(), DEADLINE_S)
        self.writer.write(encode_frame(init.receive(m2, now_ms=0)))
        self.session = init.session
        self._task = asyncio.create_task(self._read_loop())
        return self

    async def _frame(self) -> bytes:
        while not self.pending:
            chunk = await self.reader.read(65536)
            if not chunk:
                raise EOFError("closed by the node")
            self.pending.extend(self.deframer.feed(chunk))
        return self.pending.pop(0)

    async def _read_loop(self) -> None:
        try:
            while True:
                msg = messages.decode(self.session.open(await self._frame()))
                if msg.TYPE == "ping":
                    if not self._closing:  # nothing may be written after write_eof()
                        self.send(messages.Pong(seq=msg.seq, sent_ms=msg.sent_ms))
                else:
                    self.received.append(msg)
        except (EOFError, ConnectionError):
            return

    def send(self, msg: messages.Message) -> None:
        """Seal and send one message (encoded as is: forgeries need not validate)."""
        self.writer.write(encode_frame(self.session.seal(msg.encode(check=False))))

    async def wait_for(self, pred, timeout_s: float = DEADLINE_S) -> messages.Message:
        """The first received message for which pred holds (waiting for it)."""
        await wait_until(lambda: any(pred(m) for m in self.received), timeout_s)
        return next(m for m in self.received if pred(m))

    def mesh(self, src: str, dst: str | None, data: bytes, signed_by_me: bool = True
             ) -> messages.MeshMessage:
        """A mesh message claiming origin src, signed with the insider's own key
        (or left unsigned): it cannot sign as anyone else."""
        msg = messages.MeshMessage(src=src, dst=dst, data=data, message_id=new_id(), ttl=8,
                                   path=[self.node_id])
        if signed_by_me:
            msg.key = self.identity.public_bytes
            msg.sig = self.identity.sign(b"any bytes it likes")
        return msg

    async def close(self) -> None:
        """Half-close, then read until the node closes its side. Closing at
        once would leave what the node sent unread in our socket, so the
        kernel would answer with a RST, and the node would lose what it had
        not yet read of ours (a reset stream raises before its buffer):
        forgeries the test then waits for would never be counted."""
        self._closing = True
        try:
            await self.writer.drain()
            self.writer.write_eof()
            if self._task is not None:
                await asyncio.wait({self._task}, timeout=DEADLINE_S)
        except OSError:
            pass
        finally:
            if self._task is not None:
                self._task.cancel()
            self.writer.close()
