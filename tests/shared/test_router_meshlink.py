# The MeshLink strategy: decision vectors and unit checks of its bounds.
# Runs on CPython and MicroPython. The bodies live in router_meshlink_cases:
# this module stays tiny so the strategy compiles on a clean 96K heap first.
import gc

gc.collect()
from meshlink.router import load_strategy  # noqa: E402

gc.collect()
load_strategy("meshlink")
gc.collect()

from router_meshlink_cases import (  # noqa: E402, F401
    test_full_path_keeps_origin_and_drops_oldest_relay,
    test_meshlink_vectors,
    test_peers_report_scores_and_eager_flag,
    test_pending_and_missing_are_bounded,
    test_route_table_is_bounded,
    test_unknown_option_and_strategy_refused,
)
