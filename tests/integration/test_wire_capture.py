"""What a passive observer of the TCP stream between two nodes sees.

A recording proxy keeps every byte both ways. The first flight must carry a
valid ML-KEM-768 encapsulation key (1184 bytes), and no message text may
appear anywhere in the stream, in clear or in base64.
"""

from __future__ import annotations

import base64

from cryptography.hazmat.primitives.asymmetric.mlkem import MLKEM768PublicKey
from helpers import run, wait_until
from helpers.rigs import start_node
from inproc import FrameProxy
from meshlink import messages

SECRET = "attack at dawn, bring the sensor logs"


def test_capture_shows_mlkem_key_and_no_plaintext(tmp_path):
    captured = {"c2s": [], "s2c": []}

    def record(direction, index, frame):
        captured[direction].append(frame)
        return [frame]

    async def main():
        b = await start_node(tmp_path, "b")
        proxy = await FrameProxy(b.listen_addr, record).start()
        a = await start_node(tmp_path, "a", peers=[proxy.addr])
        await wait_until(lambda: a.node_id in b.peers.links)
        res = await a.send(b.node_id, SECRET.encode())
        assert res.delivered
        await a.send(None, SECRET.encode())
        await wait_until(lambda: len(b.inbox.since(0)) == 2)
        await a.stop()
        await b.stop()
        await proxy.close()

    run(main())

    first = messages.decode(captured["c2s"][0])
    assert first.TYPE == "handshake"
    ek = first.body[32:32 + 1184]
    MLKEM768PublicKey.from_public_bytes(ek)  # raises unless a valid ML-KEM-768 key
    everything = b"".join(captured["c2s"]) + b"".join(captured["s2c"])
    assert len(captured["c2s"]) > 3  # handshake plus session records were captured
    for needle in (SECRET.encode(), base64.b64encode(SECRET.encode()), b"attack at dawn",
                   b"\"mesh\""):
        assert needle not in everything, needle
