"""Order across a gateway restart (issue 15), real processes: a sender node
streams 50 directed messages to a board (the real firmware on the MicroPython
unix port, over UDP) through a gateway that is SIGKILLed (or stopped with
SIGTERM) mid-stream and restarted. Asserts that every send is acknowledged, and that the board runs
every message exactly once, in the order they were sent. Never speed.

The sender keeps sending while the gateway is down, so its unacknowledged
messages sit in its retry backoff when the gateway comes back, sealed for key
records the restarted gateway no longer holds: only resending them all, oldest
first, when the link comes up again and when the new record arrives
(Delivery.retry_now) keeps later sends from overtaking them. Through a relay
the sender's own link never goes down: the new record alone triggers it.
"""

from __future__ import annotations

import asyncio
import json
import threading

import pytest
from boards_harness import FAST_BOARD, FirmwareBoard, GatewayProcess, add_board
from helpers import DEADLINE_S, free_port, have_micropython, poll_until
from helpers.procs import Node

pytestmark = pytest.mark.skipif(not have_micropython(), reason="no MicroPython unix port")

COUNT = 50
# FAST_BOARD without a liveness timeout within the test: the gateway's STALE
# reply brings the board back
BOARD = tuple(s for s in FAST_BOARD if not s.startswith("link_timeout_ms")) + (
    "link_timeout_ms=3600000",)
# the sender outlasts the outage; its reconnect backoff is long, so the
# restarted gateway dialling it (peers.json) re-links them
SENDER_TOML = """[node]
retry_interval_ms = 1000
delivery_timeout_ms = 300000
reconnect_min_ms = 600000
reconnect_max_ms = 600000
"""


class Sender:
    """Directed sends through a node's control socket, many in flight at once,
    from one asyncio loop in a thread; results by text."""

    def __init__(self, node: Node) -> None:
        self.sock = node.data_dir / "control.sock"
        self.results: dict[str, dict] = {}
        self.pending: list = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def send(self, to: str, text: str) -> None:
        """Submit one send; returns once its request is written (the node
        serves requests in the order they arrive)."""
        taken = threading.Event()

        async def one() -> None:
            try:
                reader, writer = await asyncio.open_unix_connection(str(self.sock))
                writer.write(json.dumps({"cmd": "send", "to": to, "text": text}).encode()
                             + b"\n")
                await writer.drain()
                taken.set()
                reply = json.loads(await reader.readline())
                writer.close()
                self.results[text] = reply["result"] if reply.get("ok") else {
                    "delivered": False, "reason": reply.get("error")}
            except (OSError, ValueError) as e:
                self.results[text] = {"delivered": False, "reason": repr(e)}
            finally:
                taken.set()
        # held: the loop keeps only weak references to its tasks
        self.pending.append(asyncio.run_coroutine_threadsafe(one(), self.loop))
        taken.wait(DEADLINE_S)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.mark.parametrize("how,path", [("kill", "direct"), ("stop", "direct"),
                                      ("kill", "via a relay")])
def test_messages_to_a_board_keep_their_order_across_a_gateway_restart(
        tmp_path, procs, how, path):
    conf = tmp_path / "sender.toml"
    conf.write_text(SENDER_TOML)
    listen = f"127.0.0.1:{free_port()}"
    relay = None
    if path == "via a relay":  # sender -> relay <- gateway: the sender's link stays up
        relay = Node(tmp_path / "r", listen=listen)
        procs.append(relay)
        relay.start()
        gw = GatewayProcess(tmp_path / "gw", peers=(listen,))
    else:
        gw = GatewayProcess(tmp_path / "gw", listen=listen)
    procs.append(gw)
    gw.start()
    sender = Node(tmp_path / "s", peers=(listen,), extra=("--config", str(conf)))
    procs.append(sender)
    sender.start()
    sender.wait_peers(1)
    info = add_board(gw.data_dir, "q1", gateway=gw.board_udp, sets=BOARD)
    board = FirmwareBoard(gw.data_dir, "q1")
    procs.append(board)
    board.wait_for(r"LINK up udp .* session=1$")
    gw.wait_board("q1", lambda r: r["online"])
    udp = gw.board_udp
    out = Sender(sender)
    try:
        texts = [f"q-{i:04d}" for i in range(COUNT)]
        for t in texts[:5]:
            out.send(info["node_id"], t)
        board.wait_for(r"TEXT from \S+: q-0002")
        for t in texts[5:15]:  # the stream goes on; the gateway dies under it
            out.send(info["node_id"], t)
        gw.kill() if how == "kill" else gw.stop()
        for t in texts[15:30]:  # while it is down: retried with backoff
            out.send(info["node_id"], t)
        if relay is None:
            gw2 = GatewayProcess(tmp_path / "gw", listen=listen, udp=udp)
            procs.append(gw2)
            gw2.start()
            sender.wait_peers(1)  # gw2 dialled it (the sender's own redial is 10 min away)
        else:
            gw2 = GatewayProcess(tmp_path / "gw", peers=(listen,), udp=udp)
            procs.append(gw2)
            gw2.start()
            relay.wait_peers(2)
        for t in texts[30:]:
            out.send(info["node_id"], t)
        try:
            poll_until(lambda: len(out.results) == COUNT or None, 2 * DEADLINE_S,
                       what="every send answered")
        except AssertionError as e:
            raise AssertionError("%s; unanswered: %s" % (
                e, [t for t in texts if t not in out.results])) from None
        failed = {t: r for t, r in out.results.items() if not r.get("delivered")}
        assert not failed, failed
    finally:
        out.close()
    got = [m.group(1) for m in board.wait_for(r"TEXT from \S+: (q-\d{4})$", count=COUNT)]
    assert len(got) == len(set(got)), "a message ran twice on the board"
    assert got == texts, "out of order: %s" % got
    assert gw2.boards()["q1"]["queued"] == 0
