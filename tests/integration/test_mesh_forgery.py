"""Issue 12 against real `meshlink node` processes: an insider that completed a
real handshake (tests/helpers/insider.py) forges a source, a broadcast, a
fresher announcement and delivery proofs. Each forgery is refused and
counted, and honest traffic around it keeps flowing (docs/PROTOCOL.md §11)."""

from __future__ import annotations

import asyncio
import json

from helpers import DEADLINE_S, poll_until, run
from helpers.insider import Insider, new_id
from meshlink import messages
from meshlink._compat import b64encode
from meshlink.auth import announce_signed_bytes
from meshlink.messages import MAX_UINT
from meshlink_gw.crypto.identity import Identity

FAST = "[node]\nretry_interval_ms = 500\ndelivery_timeout_ms = 3000\n"


def _config(tmp_path) -> tuple[str, ...]:
    path = tmp_path / "fast.toml"
    path.write_text(FAST)
    return ("--config", str(path))


def _send(node, *args) -> tuple[int, dict]:
    out = node.cli("send", "--json", *args)
    return out.returncode, json.loads(out.stdout)


def _stat(node, key: str) -> int:
    return node.status()["stats"][key]


def _wait_stat(node, key: str, at_least: int) -> None:
    poll_until(lambda: _stat(node, key) >= at_least or None, DEADLINE_S,
               what=f"{key} >= {at_least}")


async def _insider_of(node) -> Insider:
    host, port = node.listen.rsplit(":", 1)
    ins = await Insider().connect(host, int(port))

    def admitted() -> bool:
        return ins.node_id in {p["node_id"] for p in node.status()["peers"]}

    await asyncio.to_thread(poll_until, admitted, DEADLINE_S, what="insider admitted")
    return ins


def _ids(items: list[dict]) -> set[str]:
    return {i["message_id"] for i in items} | {i.get("origin_id") for i in items}


def test_forged_sources_broadcasts_and_announcements_refused(spawn, tmp_path):
    # H - M - V - I: H is two hops from V, so an announcement is what routes to it
    h = spawn("h")
    m = spawn("m", peers=(h.listen,))
    v = spawn("v", peers=(m.listen,), extra=_config(tmp_path))
    m.wait_peers(2)

    async def main() -> None:
        ins = await _insider_of(v)
        # 1. "from H" in V's inbox: signed with the insider's key, and unsigned
        forged_src = [ins.mesh(h.node_id, v.node_id, b"from H, honest"),
                      ins.mesh(h.node_id, v.node_id, b"from H", signed_by_me=False)]
        for msg in forged_src:
            ins.send(msg)
        # 2. a broadcast "from H"
        forged_bcast = ins.mesh(h.node_id, None, b"everyone: H says")
        ins.send(forged_bcast)
        await asyncio.to_thread(_wait_stat, v, "forged_messages", 3)
        # 3. a fresher route to H than H ever announced: bare (no proof, a pair
        # V never verified: refused as unproven, PROTOCOL §11.4), and signed by us
        mine = ins.identity.sign(announce_signed_bytes(h.node_id, MAX_UINT))
        ours = b64encode(ins.identity.public_bytes + mine)
        ins.send(messages.Routes(routes=[[h.node_id, MAX_UINT, 0, ""],
                                         [h.node_id, MAX_UINT, 0, ours]]))
        await asyncio.to_thread(_wait_stat, v, "forged_routes", 1)
        await asyncio.to_thread(_wait_stat, v, "announce_unproven", 1)

        # honest traffic keeps flowing, and through M, not into the insider
        rc, to_h = await asyncio.to_thread(_send, v, "--to", h.node_id, "to H, for real")
        assert rc == 0 and to_h["delivered"] is True, to_h
        rc, res = await asyncio.to_thread(_send, h, "--to", v.node_id, "from H, for real")
        assert rc == 0 and res["delivered"] is True, res
        got = await asyncio.to_thread(v.wait_received, res["message_id"])
        assert got["from"] == h.node_id
        rc, bres = await asyncio.to_thread(_send, h, "--broadcast", "H to everyone")
        assert rc == 0
        await asyncio.to_thread(v.wait_received, bres["message_id"])
        await asyncio.to_thread(m.wait_received, bres["message_id"])

        # none of the forgeries was stored, here or further on
        forged = {x.message_id for x in forged_src} | {forged_bcast.message_id}
        for node in (v, m, h):
            items = await asyncio.to_thread(node.received)
            assert not forged & _ids(items), node.node_id
            assert all(i["from"] != ins.node_id for i in items)
        # V's route to H still leads through M: no attempt went to the insider
        assert not [x for x in ins.received if x.TYPE == "mesh"
                    and x.origin_id == to_h["message_id"]]
        await ins.close()

    run(main())


def test_forged_delivery_proofs_refused(spawn, tmp_path):
    # V's neighbours: an honest M and the insider; D exists but is never connected
    m = spawn("m")
    v = spawn("v", peers=(m.listen,), extra=_config(tmp_path))
    v.wait_peers(1)
    absent = Identity.generate().node_id

    async def main() -> None:
        ins = await _insider_of(v)
        sending = asyncio.create_task(asyncio.to_thread(v.cli, "send", "--json", "--to", absent,
                                                        "to D"))
        attempt = await ins.wait_for(lambda x: x.TYPE == "mesh" and x.dst == absent)
        # an Ack "from D" carrying the insider's own key and a signature of it
        as_d = messages.Ack(src=absent, dst=v.node_id, ack_for=attempt.message_id,
                            message_id=new_id(), ttl=8, path=[ins.node_id])
        as_d.key, as_d.sig = ins.identity.public_bytes, ins.identity.sign(b"D got it")
        # an Ack from the insider itself, validly signed by it
        as_me = ins.auth.sign_ack(messages.Ack(
            src=ins.node_id, dst=v.node_id, ack_for=attempt.message_id,
            message_id=new_id(), ttl=8, path=[]))
        ins.send(as_d)
        ins.send(as_me)
        # D is unknown, so `send` probes it first (docs/PROTOCOL.md §12.2) and
        # the forged Acks answer that probe: it must still fail as unanswered
        out = await sending
        assert out.returncode != 0 and "unknown node" in out.stderr, out
        assert _stat(v, "forged_acks") >= 2
        # honest delivery still works, proven by M
        rc, res = await asyncio.to_thread(_send, v, "--to", m.node_id, "to M")
        assert rc == 0 and res["delivered"] is True, res
        await ins.close()

    run(main())
