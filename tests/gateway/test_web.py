"""The node's web port in process: the token guards every data endpoint,
bad requests get a 4xx and the server keeps serving, /metrics is valid
Prometheus text exposition with the counters `status` shows."""

from __future__ import annotations

import asyncio
import json
import re

import pytest
from helpers import TEST_TIMEOUT_S
from meshlink_gw.web.metrics import render
from meshlink_gw.web.server import WebServer

NODE = "7ce7ce28-bb14-679b-3deb-bd33a1878a66"
STATE = {
    "status": {
        "node_id": NODE, "name": 'gw"1', "listen": "127.0.0.1:7400", "router": "meshlink",
        "routing": {"strategy": "meshlink", "sent": 12, "delivered": 3, "originated": 4,
                    "received": 9, "routes": 2, "drops": {"ttl": 2, "duplicate": 5}},
        "peers": [{"node_id": "x"}], "pending": 1,
        "stats": {"relayed": 7, "delivered": 3, "duplicates": 1, "announces": 2,
                  "probes_answered": 4, "handshakes_failed": 0, "records_rejected": 0},
        "gateway": {"boards": 2, "online": 1, "half_open": 0, "queued": 3,
                    "refusals": {"bad_tag": 1}, "stats": {"readings": 10},
                    "mqtt": {"broker": "h:1883", "connected": True, "outbox": 5,
                             "stats": {"published": 8}}},
    },
    "nodes": [{"node_id": NODE, "reachable": True}, {"node_id": "y", "reachable": False}],
    "links": [], "messages": [],
}
LABEL = r'[a-z_]+="(?:[^"\\]|\\.)*"'
SAMPLE = re.compile(rf"^meshlink_[a-z_]+(\{{{LABEL}(,{LABEL})*\}})? -?[0-9.e+]+$")


def test_metrics_text_exposition():
    text = render(STATE)
    assert text.endswith("\n")
    types: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert name not in types  # one TYPE per metric
            types[name] = kind
        elif not line.startswith("# HELP "):
            assert SAMPLE.match(line), line
    assert all(name.endswith("_total") == (kind == "counter") for name, kind in types.items())
    values = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
              for line in text.splitlines() if not line.startswith("#")}
    assert values["meshlink_peers"] == 1 and values["meshlink_pending_sends"] == 1
    assert values["meshlink_node_relayed_total"] == 7
    assert values["meshlink_node_delivered_total"] == 3
    assert values["meshlink_router_sent_total"] == 12 and values["meshlink_router_routes"] == 2
    assert values['meshlink_router_dropped_total{reason="ttl"}'] == 2
    assert values['meshlink_nodes_known{reachable="false"}'] == 1
    assert values["meshlink_node_handshakes_failed_total"] == 0
    assert values["meshlink_gateway_boards_online"] == 1
    assert values['meshlink_gateway_refusals_total{reason="bad_tag"}'] == 1
    assert values["meshlink_mqtt_outbox"] == 5 and values["meshlink_mqtt_connected"] == 1
    assert values["meshlink_mqtt_published_total"] == 8
    info = next(k for k in values if k.startswith("meshlink_info{"))
    assert 'name="gw\\"1"' in info  # escaped


async def _get(port: int, raw: bytes) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    await writer.drain()
    data = await reader.read()
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body


@pytest.mark.timeout(TEST_TIMEOUT_S)
def test_token_guards_data_and_bad_requests_get_4xx():
    async def main() -> None:
        traced: list[str] = []

        async def trace(node: str) -> dict:
            traced.append(node)
            return {"ok": True, "path": [NODE], "rtt_ms": 0, "reason": ""}

        web = WebServer(("127.0.0.1", 0), "s3cret", lambda: STATE, trace)
        await web.start()
        port = web.bound[1]
        try:
            assert web.url == f"http://127.0.0.1:{port}/?token=s3cret"

            def get(path: bytes, extra: bytes = b""):
                return _get(port, b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n" + extra + b"\r\n")
            for path in (b"/", b"/api/state", b"/metrics", b"/api/trace?node=a"):
                assert (await get(path))[0] == 401
                assert (await get(path + (b"&" if b"?" in path else b"?") + b"token=nope"))[0] \
                    == 401
            assert (await get(b"/app.js"))[0] == 200  # static: no data, no token
            status, body = await get(b"/api/state", b"Authorization: Bearer s3cret\r\n")
            assert status == 200 and json.loads(body) == STATE
            status, body = await get(b"/metrics?token=s3cret")
            assert status == 200 and b"meshlink_peers 1" in body
            status, body = await get(b"/?token=s3cret")
            assert status == 200 and b'<script src="/app.js">' in body
            status, body = await get(b"/api/trace?node=alpha&token=s3cret")
            assert status == 200 and json.loads(body)["ok"] and traced == ["alpha"]
            assert (await get(b"/nothing?token=s3cret"))[0] == 404
            assert (await _get(port, b"POST / HTTP/1.1\r\n\r\n"))[0] == 405
            assert (await _get(port, b"garbage\r\n\r\n"))[0] == 400
            # the server still serves after all of that
            assert (await get(b"/metrics", b"Authorization: Bearer s3cret\r\n"))[0] == 200
        finally:
            await web.close()

    asyncio.run(main())
