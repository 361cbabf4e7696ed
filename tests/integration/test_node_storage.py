"""Bounded storage per source (issue 14): 200 broadcasts of 45 kB from one
node must not add 9 MB to every inbox; the inbox keeps that source's newest
broadcasts within its byte quota, and another source's broadcast and directed
messages are stored as usual."""

from __future__ import annotations

from helpers import run, wait_until
from helpers.rigs import start_node

QUOTA = 256 * 1024


def _broadcast_bytes(node, src: str) -> int:
    return sum(len(r.data) for r in node.inbox.since(0) if r.src == src and r.dst is None)


def test_broadcast_flood_is_bounded_by_bytes_per_source(tmp_path):
    async def main():
        victim = await start_node(tmp_path, "victim", inbox_broadcast_max_bytes_per_source=QUOTA,
                                  inbox_broadcast_max_bytes=4 * QUOTA)
        flooder = await start_node(tmp_path, "flooder", peers=[victim.listen_addr])
        honest = await start_node(tmp_path, "honest", peers=[victim.listen_addr])
        await wait_until(lambda: len(victim.peers.links) == 2)
        for i in range(200):
            await flooder.send(None, bytes([i % 251]) * 45_000)
        # the last broadcast arrived (TCP keeps order): the flood is over
        await wait_until(lambda: any(r.src == flooder.node_id and r.data[:1] == bytes([199 % 251])
                                     for r in victim.inbox.since(0)))
        stored = _broadcast_bytes(victim, flooder.node_id)
        assert 0 < stored <= QUOTA, stored
        await honest.send(None, b"honest broadcast")
        assert (await honest.send(victim.node_id, b"honest direct")).delivered
        await wait_until(lambda: {b"honest broadcast", b"honest direct"} <= {
            r.data for r in victim.inbox.since(0) if r.src == honest.node_id})
        assert _broadcast_bytes(victim, flooder.node_id) <= QUOTA
        for n in (honest, flooder, victim):
            await n.stop()

    run(main())
