"""Sleeping boards in the gateway's board service, in-process (real nodes on
loopback, a CPython stand-in board; the real firmware's wake cycles are in
tests/integration/test_boards_sleep.py): sleep_ok only once nothing is owed,
messages held while asleep and delivered on the resumed session, asleep then
offline after the grace, a bad sleep record refused."""

from __future__ import annotations

import asyncio

from helpers import DEADLINE_S, wait_until
from helpers.rigs import rig_for
from meshlink.boardlink_resume import resume_client, suspend_state
from meshlink_gw.runtime import now_ms


async def _next(b, t: str) -> dict:
    while True:
        obj = await b.recv(DEADLINE_S)
        if obj.get("t") == t:
            return obj


async def test_sleep_granted_only_when_nothing_is_owed_then_held_until_wake(tmp_path):
    async with rig_for(tmp_path, sleep_grace_ms=60_000) as rig:
        b = await rig.online()
        node_id = rig.recs["b1"].node_id
        _, fut1 = rig.peer.originate(node_id, b"before sleep")
        first = await b.recv_msg(ack=False)
        b.send({"t": "sleep", "ms": 5000})  # one message is in flight: no sleep_ok yet
        b.send({"t": "ack", "id": first["id"]})
        ok = await _next(b, "sleep_ok")
        assert ok["ms"] == 5000 and (await asyncio.wait_for(fut1, DEADLINE_S)).delivered
        row = rig.svc.board_rows()[0]
        assert row["asleep"] and not row["online"] and row["session"] is not None
        # the dashboard's node list (web/ is handed control.nodes) says so too
        from meshlink_gw.boards import control

        mine = [n for n in control.nodes(rig.svc, rig.gw_node.nodes())
                if n["node_id"] == node_id]
        assert mine and mine[0]["asleep"] and not mine[0]["online"], mine
        # queued while asleep: held, nothing sent to the sleeping board
        futs = [rig.peer.originate(node_id, b"m%d" % i)[1] for i in range(3)]
        await wait_until(lambda: len(rig.reg.queued("b1")) == 3)
        sends = rig.svc.stats["msg_sends"]
        await asyncio.sleep(0.5)  # 5 x retry_ms: a held queue sends nothing
        assert rig.svc.stats["msg_sends"] == sends and b.inbox.empty()
        # the board wakes on the same session (kept state, seqs continued)
        woke = resume_client(rig.recs["b1"].psk, rig.recs["b1"].board_id, 1,
                             suspend_state(b.client, now_ms()), now_ms())
        b.client = woke
        b.send({"t": "ping", "seq": 1})
        got = [(await b.recv_msg())["data"] for _ in range(3)]
        assert got == [b"m0", b"m1", b"m2"]
        assert all(r.delivered for r in await asyncio.wait_for(asyncio.gather(*futs),
                                                                DEADLINE_S))
        assert rig.svc.board_rows()[0]["online"]
        assert ("b1", False) not in rig.online_events  # asleep, never offline
        assert "replay" not in rig.svc.refusals


async def test_asleep_then_offline_after_deadline_and_grace(tmp_path):
    async with rig_for(tmp_path, sleep_grace_ms=300, offline_after_ms=100_000) as rig:
        b = await rig.online()
        asleep = []
        rig.svc.events.asleep_hooks.append(lambda rec: asleep.append(rec.name))
        b.send({"t": "sleep", "ms": 200})
        await _next(b, "sleep_ok")
        assert asleep == ["b1"] and rig.svc.board_rows()[0]["asleep"]
        await wait_until(lambda: rig.online_events[-1] == ("b1", False))
        row = rig.svc.board_rows()[0]
        assert not row["online"] and not row["asleep"]


async def test_a_bad_sleep_record_is_refused(tmp_path):
    async with rig_for(tmp_path, max_sleep_ms=1000) as rig:
        b = await rig.online()
        for bad in ({"t": "sleep"}, {"t": "sleep", "ms": 0}, {"t": "sleep", "ms": "1"},
                    {"t": "sleep", "ms": 1001}):
            b.send(bad)
        await wait_until(lambda: rig.svc.refusals["bad_payload"] == 4)
        assert rig.svc.board_rows()[0]["online"] and not rig.svc.board_rows()[0]["asleep"]
