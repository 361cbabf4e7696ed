"""A flood of refused input cannot fill a node's log (issue 14): a real
`meshlink node` process, with refusal lines limited to one per kind per 10
minutes, gets 300 forged mesh messages from an insider and 30 garbage first
flights from another host. Its counters see every one; its log has one line
per kind. Every flood is bounded in count."""

from __future__ import annotations

import asyncio
import os

from helpers import poll_until, run
from helpers.attacker import addr_of, first_flights
from helpers.insider import Insider
from helpers.procs import Node
from meshlink.nodeid import format_id

FORGED = 300
GARBAGE = 30


def test_forged_and_garbage_floods_cost_a_counter_not_the_log(tmp_path, procs):
    conf = tmp_path / "victim.toml"
    conf.write_text("[node]\nrefusal_log_interval_ms = 600000\n"
                    "handshake_attempts_per_s = 1000\nhandshake_attempt_burst = 1000\n")
    victim = Node(tmp_path / "victim", extra=("--config", str(conf)))
    procs.append(victim)
    victim.start()

    async def main():
        insider = await Insider().connect(*addr_of(victim.listen))
        for i in range(FORGED):  # claims origins it cannot sign for
            insider.send(insider.mesh(format_id(os.urandom(16)), victim.node_id,
                                      b"forged %d" % i, signed_by_me=False))
            if i % 50 == 0:
                await asyncio.sleep(0)
        seen = await first_flights(addr_of(victim.listen),
                                   [os.urandom(200) for _ in range(GARBAGE)])
        await asyncio.to_thread(poll_until, lambda: victim.status()["stats"][
            "forged_messages"] >= FORGED, what=f"{FORGED} forged messages counted")
        await insider.close()
        return seen

    seen = run(main())
    assert seen["closed"] == GARBAGE, seen
    st = victim.status()["stats"]
    assert st["forged_messages"] == FORGED and st["handshakes_failed"] >= GARBAGE, st
    log_text = victim.log_path.read_text()
    assert log_text.count("not signed by its origin") == 1
    assert log_text.count("refused: DecodeError") == 1
