"""Announcements: a gateway's "this board's node ID is reached via me", and a
node's "my name is ..." (docs/PROTOCOL.md §12).

Rule: pure functions, no I/O. A board announcement is a mesh broadcast from the
board's own node ID whose data is exactly the canonical JSON
{"board":NAME,"gateway":GATEWAY_NODE_ID,"kind":"announce","node_id":BOARD_NODE_ID}
(docs/BOARDS.md, "Announce"); a node announcement is a mesh broadcast from the
node itself, exactly {"kind":"node","name":NAME,"node_id":NODE_ID,"role":ROLE}.
Both are ordinary mesh messages from their subject, so the origin signature
of the authenticated mesh covers the name. Routers learn the reverse path
from them like from any message; nodes relay them but do not store them in
their inbox, and no deliver hook (board fan-out, MQTT) sees them.
"""

from __future__ import annotations

from meshlink import cjson
from meshlink.errors import DecodeError
from meshlink.nodeid import is_id, is_name

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


_NODE_KEYS = ["kind", "name", "node_id", "role"]
_NODE_MARK = b'"kind":"node"'
ROLES = ("node", "gateway")


def node_announce_data(name: str, role: str, node_id: str) -> bytes:
    """The data of a node's name announcement (sent from node_id)."""
    return cjson.dumps({"kind": "node", "name": name, "node_id": node_id, "role": role})


def parse_node_announce(src: str, dst: str | None, data: bytes) -> dict | None:
    """{"name", "role"} if a mesh message is a node announcement of src, else None."""
    if dst is not None or _NODE_MARK not in data:
        return None
    try:
        obj = cjson.loads(data)
    except DecodeError:
        return None
    if (type(obj) is not dict or sorted(obj) != _NODE_KEYS or obj["kind"] != "node"
            or obj["node_id"] != src or obj["role"] not in ROLES
            or not is_name(obj["name"])):
        return None
    return {"name": obj["name"], "role": obj["role"]}


def parse_board_announce(src: str, dst: str | None, data: bytes) -> dict | None:
    """{"name", "gateway"} if a mesh message is a board announcement, else None."""
    if not is_announce(src, dst, data):
        return None
    obj = cjson.loads(data)
    return {"name": obj["board"], "gateway": obj["gateway"]}
