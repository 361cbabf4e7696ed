"""Node config validation at the edge: out-of-range values are refused by name."""

import pytest
from meshlink.errors import ConfigError
from meshlink_gw.config import MIN_FRAME_BYTES, parse_config


def test_frames_must_hold_a_full_routes_announcement():
    from meshlink.messages import MAX_PROOF_CHARS, MAX_ROUTES, MAX_UINT, Routes

    entry = ["6f1c2a3b-0d4e-4f50-8a61-72839405a6b7", MAX_UINT, 255, "A" * MAX_PROOF_CHARS]
    biggest = len(Routes(routes=[entry] * MAX_ROUTES).encode())
    # + session record overhead (sequence number, AEAD tag) and the frame header
    assert biggest + 64 <= MIN_FRAME_BYTES
    with pytest.raises(ConfigError, match="max_frame_bytes"):
        parse_config({"node": {"max_frame_bytes": MIN_FRAME_BYTES - 1}})
    assert parse_config({"node": {"max_frame_bytes": MIN_FRAME_BYTES}}).node.max_frame_bytes \
        == MIN_FRAME_BYTES
