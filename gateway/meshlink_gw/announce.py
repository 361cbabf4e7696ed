"""Board announcements: a gateway's "this board's node ID is reached via me".

Rule: pure functions, no I/O. An announcement is a mesh broadcast from the
board's own node ID whose data is exactly the canonical JSON
{"board":NAME,"gateway":GATEWAY_NODE_ID,"kind":"announce","node_id":BOARD_NODE_ID}
(docs/BOARDS.md, "Announce"). Routers learn the reverse path from it like
from any message; nodes relay it but do not store it in their inbox, and no
deliver hook (board fan-out, MQTT) sees it.
"""

from __future__ import annotations

from meshlink import cjson
from meshlink.errors import DecodeError
from meshlink.nodeid import is_id

_KEYS = ["board", "gateway", "kind", "node_id"]
_MARK = b'"kind":"announce"'


def announce_data(board: str, gateway_node_id: str, board_node_id: str) -> bytes:
    """The data of board's announcement (sent from board_node_id)."""
    return cjson.dumps({"kind": "announce", "gateway": gateway_node_id, "board": board,
                        "node_id": board_node_id})


def is_announce(src: str, dst: str | None, data: bytes) -> bool:
    """True if a mesh message is a board announcement (see the module rule)."""
    if dst is not None or _MARK not in data:
        return False
    try:
        obj = cjson.loads(data)
    except DecodeError:
        return False
    return (type(obj) is dict and sorted(obj) == _KEYS and obj["kind"] == "announce"
            and obj["node_id"] == src and is_id(obj["gateway"])
            and type(obj["board"]) is str)
