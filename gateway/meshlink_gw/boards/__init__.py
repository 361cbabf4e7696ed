"""Boards: the gateway's board service and the tools around it (docs/BOARDS.md).

    service.py   BoardService: orchestration, acting for boards in the mesh
    sessions.py  per-board board-link sessions, handshakes, rate limiting
    udp.py       UDP listener (and the GatewayBeacon)
    tcp.py       TCP listener
    queue.py     the durable per-board queue and in-order delivery
    records.py   record plaintext encode/decode
    refusals.py  counted, throttled refusal logs
    control.py   control-socket commands and status
    registry.py  boards.db: boards, PSKs, identities, queues (SQLite)
    bundle.py    deploy bundles: build, flash (mpremote), run (unix port)

Stand-in boards and process harnesses for the demo, tests and bench live
outside the package, in examples/.
"""
