# Options of the meshlink strategy (DEFAULTS) and their parsing. A module
# of its own so each piece compiles within a 96K MicroPython heap; the
# MicroPython defaults are smaller (a board's tables). See
# docs/PROTOCOL.md §7 for the meaning of every option.
import sys

from meshlink.errors import ConfigError

_SMALL = sys.implementation.name == "micropython"

DEFAULTS = {
    "max_routes": 32 if _SMALL else 4096,  # destinations in the route table
    "candidates": 3,  # next hops kept per destination
    "route_ttl_ms": 300000,  # a route not confirmed for this long is unused
    "refresh_ms": 30000,  # a longer path via the same hop replaces a shorter, older one
    "hysteresis": 0.15,  # switch next hop only if more than 15 % cheaper
    "explore": 0.02,  # share of routed messages sent to the runner-up
    "explore_ratio": 1.5,  # ... if it costs at most this times the best
    "max_fails": 2,  # unacknowledged messages before a next hop is dropped
    "peer_max_fails": 4,  # ... in a row through one neighbour, any destination: all its routes
    "peer_route_share": 0.5,  # share of max_routes the destinations one neighbour brought may fill
    "ttl_margin": 4,  # hops added to a learned distance
    "discover_via": "eager",  # discovery copies go to "eager" (tree) peers or "all"
    "discover_lazy": 0,  # ... plus this many random lazy peers, on a first attempt
    "retry_lazy": 1,  # ... and on a retry (origin_id != message_id): the widening
    "ack_fresh_ms": 2000,  # an Ack goes the way its destination's copy came, if this recent
    "learn_hops": 8,  # routes from a copy: its origin and last 8 hops, ...
    "learn_all": 0.0,  # ... or all of them for this share of copies (announcements cover the rest)
    "lazy_fanout": 4,  # IHave recipients per broadcast
    "ihave_ms": 500,  # IHave batching interval
    "graft_ms": 1000,  # wait after an IHave before asking for the payload
    "cache_ms": 30000,  # broadcast payloads kept to answer Grafts ...
    "cache_max": 16 if _SMALL else 1024,  # ... at most this many
    "missing_max": 16 if _SMALL else 512,
    "max_pending": 16 if _SMALL else 1024,  # our unacknowledged messages
    "neg_min_ms": 5000,  # no route and discovery failed (or dst retracted): no new discovery
    "neg_max_ms": 60000,  # ... for this long, doubling per failed discovery up to neg_max_ms
    "announce_ms": 0 if _SMALL else 300000,  # destination announcements: own seq period (0 = off)
    "announce_flush_ms": 3000,  # ... changed routes are sent in batches this often
    "announce_slack": 2,  # ... a route may be up to this many hops longer than announced before
    "announce_seq0": 0,  # ... first sequence number (a runtime passes wall-clock seconds)
    "announce_auth": None,  # ... meshlink.auth.Auth: sign ours, check theirs (None: no proofs)
    "seq_requests": not _SMALL,  # ... a starved route asks dst for a newer seq (router_dv_req)
    "hop_ack_ms": 0 if _SMALL else 500,  # a copy sent to one neighbour without its HopAck
    # this long goes another way (0 = no hop acks: router_hop)
    "hop_avoid_ms": 2000,  # ... and that neighbour is no next hop for this long
}


def parse_options(options):
    """DEFAULTS overridden by options (a dict). Raises ConfigError on unknown keys."""
    opts = {}
    for k in DEFAULTS:
        opts[k] = options.get(k, DEFAULTS[k])
    for k in options:
        if k not in DEFAULTS:
            raise ConfigError("unknown meshlink option %r" % k)
    return opts
