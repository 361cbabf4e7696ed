"""Bounded storage per source (issue 14): 200 broadcasts of 45 kB from one
node must not add 9 MB to the inbox of a real `meshlink node` process; its
inbox keeps that source's newest broadcasts within its byte quota, and an
honest node process's broadcast and directed message are stored as usual.
The flooder is an in-process node (the attacker may run anything)."""

from __future__ import annotations

import asyncio
import json

from helpers import run, wait_until
from helpers.procs import Node
from helpers.rigs import start_node

QUOTA = 256 * 1024
FLOOD = 200


def _size(item: dict) -> int:
    return len(item["text"].encode()) if "text" in item else len(item["data"]) // 2


def _broadcast_bytes(items: list[dict], src: str) -> int:
    return sum(_size(m) for m in items if m["from"] == src and m["to"] is None)


def test_broadcast_flood_is_bounded_by_bytes_per_source(tmp_path, procs):
    conf = tmp_path / "victim.toml"
    conf.write_text(f"[node]\ninbox_broadcast_max_bytes_per_source = {QUOTA}\n"
                    f"inbox_broadcast_max_bytes = {4 * QUOTA}\n")
    victim = Node(tmp_path / "victim", extra=("--config", str(conf)))
    procs.append(victim)
    victim.start()
    host, port = victim.listen.rsplit(":", 1)

    async def flood() -> str:
        flooder = await start_node(tmp_path, "flooder", peers=[(host, int(port))])
        await wait_until(lambda: flooder.peers.links)
        for i in range(FLOOD):
            await flooder.send(None, bytes([0x41 + i % 26]) * 45_000)
        last = chr(0x41 + (FLOOD - 1) % 26) * 45_000
        # the last broadcast arrived (TCP keeps order): the flood is over
        await asyncio.to_thread(victim.wait_inbox, lambda items: any(
            m["from"] == flooder.node_id and m.get("text") == last for m in items))
        await flooder.stop()
        return flooder.node_id

    flooder_id = run(flood())
    stored = _broadcast_bytes(victim.received(), flooder_id)
    assert 0 < stored <= QUOTA, stored
    honest = Node(tmp_path / "honest", peers=(victim.listen,))
    procs.append(honest)
    honest.start()
    honest.wait_peers(1)
    assert honest.cli("send", "--broadcast", "honest broadcast").returncode == 0
    out = honest.cli("send", "--json", "--to", victim.node_id, "honest direct")
    assert json.loads(out.stdout)["delivered"], out
    items = victim.wait_inbox(lambda items: {"honest broadcast", "honest direct"} <= {
        m.get("text") for m in items if m["from"] == honest.node_id})
    assert _broadcast_bytes(items, flooder_id) <= QUOTA
