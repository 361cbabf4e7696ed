"""Issue 14, storage abuse in route tables, against a real `meshlink node`: an
insider (a genuine neighbour, tests/helpers/insider.py) announces 4096 fake
destinations, each with a valid proof signed by a throw-away identity of its
own. The node keeps at most its per-neighbour share of the route table
(`peer_route_share` of `max_routes`, docs/PROTOCOL.md §7.4), and a node that
joins afterwards behind an honest neighbour still gets a route and its
messages (docs/PROTOCOL.md §11.4 for the proofs)."""

from __future__ import annotations

import asyncio
import json

from helpers import DEADLINE_S, poll_until, run
from helpers.insider import Insider
from meshlink import messages
from meshlink._compat import b64encode
from meshlink.auth import announce_signed_bytes
from meshlink.router_opts import DEFAULTS
from meshlink_gw.crypto.identity import Identity

FAKES = 4096
PER_MESSAGE = 80  # MAX_ROUTES entries per Routes message
QUOTA = int(DEFAULTS["max_routes"] * DEFAULTS["peer_route_share"])


def _fake_entries(count: int) -> list[list]:
    """[dst, seq, hops, proof] for count fresh identities, each proving its own entry."""
    out = []
    for _ in range(count):
        ident = Identity.generate()
        sig = ident.sign(announce_signed_bytes(ident.node_id, 1))
        out.append([ident.node_id, 1, 0, b64encode(ident.public_bytes + sig)])
    return out


def _known(node) -> dict[str, dict]:
    out = node.cli("nodes", "--json")
    assert out.returncode == 0, out.stderr
    return {row["node_id"]: row for row in json.loads(out.stdout)}


def test_one_neighbour_cannot_fill_the_route_table(spawn):
    assert QUOTA < FAKES <= DEFAULTS["max_routes"]
    m = spawn("m")
    v = spawn("v", peers=(m.listen,))
    v.wait_peers(1)
    entries = _fake_entries(FAKES)
    fakes = {e[0] for e in entries}

    async def main() -> None:
        host, port = v.listen.rsplit(":", 1)
        ins = await Insider().connect(host, int(port))
        await asyncio.to_thread(
            poll_until, lambda: ins.node_id in {p["node_id"] for p in v.status()["peers"]},
            DEADLINE_S, what="insider admitted")
        for i in range(0, FAKES, PER_MESSAGE):
            ins.send(messages.Routes(routes=entries[i:i + PER_MESSAGE]))
            await ins.writer.drain()

        def at_quota() -> bool | None:
            held = [n for n in _known(v) if n in fakes]
            assert len(held) <= QUOTA, len(held)
            return len(held) == QUOTA or None

        # the insider's share fills up to the quota, and never past it
        await asyncio.to_thread(poll_until, at_quota, DEADLINE_S, what="insider share full")

        # a node that joins later, behind the honest neighbour, is still routed to
        late = await asyncio.to_thread(spawn, "late", peers=(m.listen,))
        await asyncio.to_thread(
            poll_until, lambda: _known(v).get(late.node_id, {}).get("reachable") or None,
            DEADLINE_S, what="route to the late node")
        out = await asyncio.to_thread(v.cli, "send", "--json", "--to", late.node_id, "hello")
        res = json.loads(out.stdout)
        assert out.returncode == 0 and res["delivered"] is True, res
        await asyncio.to_thread(late.wait_received, res["message_id"])
        held = [n for n in _known(v) if n in fakes]
        assert len(held) == QUOTA
        await ins.close()

    run(main())
