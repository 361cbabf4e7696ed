"""The relay fast path encodes exactly what canonical JSON does, for any valid
routed message; and decode(encode(m)) == m."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from meshlink import messages
from meshlink.nodeid import format_id

ids = st.binary(min_size=16, max_size=16).map(format_id)
paths = st.lists(ids, max_size=messages.MAX_PATH_NODES)
ttls = st.integers(min_value=0, max_value=messages.MAX_TTL)


@given(ids, st.none() | ids, st.binary(max_size=600), ids, ids, ttls, paths)
def test_mesh_fast_path_is_canonical(src, dst, data, mid, origin, ttl, path):
    m = messages.MeshMessage(src=src, dst=dst, data=data, message_id=mid, origin_id=origin,
                             ttl=ttl, path=path)
    assert m.encode(check=False) == m.encode()
    assert messages.decode(m.encode(check=False)) == m


@given(ids, ids, ids, ids, ttls, paths)
def test_ack_fast_path_is_canonical(src, dst, ack_for, mid, ttl, path):
    a = messages.Ack(src=src, dst=dst, ack_for=ack_for, message_id=mid, ttl=ttl, path=path)
    assert a.encode(check=False) == a.encode()
    assert messages.decode(a.encode(check=False)) == a
