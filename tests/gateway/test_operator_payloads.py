"""Node announcements and probe payloads (docs/PROTOCOL.md §12) against the
exact bytes in tests/vectors/operator.json; the parsers refuse every variant
the spec excludes; names and prefixes resolve as `meshlink` promises."""

from __future__ import annotations

import json

import pytest
from helpers import ROOT
from meshlink.errors import ConfigError, LocalProtocolError
from meshlink.messages import MeshMessage
from meshlink.nodeid import is_name
from meshlink_gw.announce import node_announce_data, parse_node_announce
from meshlink_gw.config import NodeConfig, override
from meshlink_gw.node.directory import Directory
from meshlink_gw.probes import parse_probe, parse_trace, probe_data, trace_data

V = json.loads((ROOT / "tests/vectors/operator.json").read_text())


def test_payloads_match_the_vectors_byte_for_byte():
    a = V["node_announce"]
    assert node_announce_data(a["name"], a["role"], a["node_id"]) == a["data"].encode()
    assert parse_node_announce(a["node_id"], None, a["data"].encode()) == \
        {"name": a["name"], "role": a["role"]}
    for key in ("probe", "ping"):
        p = V[key]
        assert probe_data(p["nonce"], p["trace"]) == p["data"].encode()
        assert parse_probe(p["data"].encode()) == {"nonce": p["nonce"], "trace": p["trace"]}
    t = V["trace_reply"]
    assert trace_data(t["nonce"], t["path"]) == t["data"].encode()
    assert parse_trace(t["data"].encode()) == {"nonce": t["nonce"], "path": t["path"]}


def test_announcement_is_an_ordinary_mesh_broadcast():
    m = V["node_announce_message"]
    msg = MeshMessage(src=m["src"], dst=None, data=V["node_announce"]["data"].encode(),
                      message_id=m["message_id"], ttl=m["ttl"], path=m["path"])
    assert msg.encode() == m["encoded"].encode()


@pytest.mark.parametrize("case", V["invalid"], ids=[c["why"] for c in V["invalid"]])
def test_invalid_payloads_are_not_recognised(case):
    data = case["data"].encode()
    assert parse_node_announce(case["src"], None, data) is None
    assert parse_probe(data) is None and parse_trace(data) is None


def test_a_directed_announcement_is_not_one():
    a = V["node_announce"]
    assert parse_node_announce(a["node_id"], a["node_id"], a["data"].encode()) is None


def test_names():
    assert is_name("gw-1.garden_2") and is_name("A") and is_name("x" * 32)
    for bad in ("", "-x", ".x", "x" * 33, "a b", "é", "<b>", "a\x1b[31m"):
        assert not is_name(bad)
    assert override(NodeConfig(), {"name": "alpha"}).name == "alpha"
    with pytest.raises(ConfigError, match="--name"):
        override(NodeConfig(), {"name": "not a name"})


def test_resolution_by_id_name_and_prefix():
    ids = {"7ce7ce28-bb14-679b-3deb-bd33a1878a66": "alpha",
           "7ce70000-0000-4000-8000-000000000000": "beta",
           "a9338914-2de2-3f97-1252-efda123ca991": "twin",
           "c98179e8-aab7-4ada-26eb-0ff58581e00d": "twin"}
    d = Directory()
    assert d.resolve("alpha", ids) == "7ce7ce28-bb14-679b-3deb-bd33a1878a66"
    assert d.resolve("7ce7ce28", ids) == "7ce7ce28-bb14-679b-3deb-bd33a1878a66"
    assert d.resolve("7CE7CE28BB", ids) == "7ce7ce28-bb14-679b-3deb-bd33a1878a66"
    assert d.resolve("a9338914-2de2-3f97-1252-efda123ca991", ids).startswith("a933")
    for text, why in (("7ce7", "matches 2 nodes"), ("twin", "2 nodes are named"),
                      ("zzz", "no known node"), ("", "empty"),
                      ("00000000-0000-4000-8000-000000000000", "unknown node")):
        with pytest.raises(LocalProtocolError, match=why):
            d.resolve(text, ids)


def test_directory_is_bounded_and_evicts_the_longest_unheard():
    d = Directory(max_entries=2)
    d.heard("n1", 1, 100)
    d.heard("n2", 1, 50)
    d.heard("n3", 1, 200)
    assert set(d.known) == {"n1", "n3"}
