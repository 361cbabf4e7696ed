# Helpers for tests/shared/test_router_served*.py: node X with neighbours A
# and B serving S. A module of its own so each test module compiles small
# (a 96K MicroPython heap also holds the router and its strategies).
from router_steps import MeshMessage, Router, uid

X, A, B, ORIG, S, S2, D = (uid(n) for n in ("X", "A", "B", "O", "S", "S2", "D"))


def _gateway(strategy="meshlink"):
    """Node X with neighbours A and B, serving S."""
    r = Router(X, strategy)
    r.peer_up(A, 0)
    r.peer_up(B, 0)
    r.serve(S)
    return r


def _msg(mid, src, dst, path, ttl=8):
    return MeshMessage(src=src, dst=dst, data=b"d", message_id=uid(mid), ttl=ttl, path=path)


def _sent(d):
    return [p for p, _m in d.forward]
