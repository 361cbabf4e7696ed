# Served IDs for meshlink.router: node IDs a node acts for (a gateway's
# boards), kept in Router.served by Router.serve/unserve. Imported on first
# use, so nodes that serve nothing (and boards) never compile it.
# Rule: sans-I/O, like the router; only Router's own helpers are used.
#
#  * A MeshMessage or Ack FOR a served ID goes through the strategy's normal
#    receive path as one for this node (loop check, route learning from its
#    path, duplicate check), is delivered (mode "served") and never forwarded.
#  * One FROM a served ID enters the mesh as if the served ID were a
#    neighbour one hop behind this node: a copy with path [served ID] and TTL
#    default_ttl goes through the strategy's receive path, which appends this
#    node when it relays, so every node it reaches learns "served ID via this
#    node" from the path. from_peer is None (no link brought it), so nothing
#    is learned here and nothing is delivered here. One for this node or
#    another served ID is only delivered (mode "served"): the runtime hands
#    it over locally.
from meshlink.errors import LocalProtocolError
from meshlink.router_core import Decision, relay_copy

MAX_SERVED = 16384  # served IDs per router (a gateway's boards); serve() refuses more


def serve(r, node_id):
    """Router.serve. Raises LocalProtocolError (own ID, max_served reached)."""
    if node_id == r.node_id:
        raise LocalProtocolError("serve: that is this node's own ID")
    if node_id not in r.served and len(r.served) >= MAX_SERVED:
        raise LocalProtocolError("serve: already %d served IDs" % MAX_SERVED)
    r.served.add(node_id)


def receive(r, msg, from_peer, now_ms):
    """Router.receive of a MeshMessage or Ack whose dst is served -> Decision."""
    mine = relay_copy(msg, msg.ttl, msg.path)
    mine.dst = r.node_id  # to the strategy: a message for this node
    d = r.strategy.receive(mine, from_peer, now_ms)
    d.forward = []
    if d.deliver:
        d.mode = "served"
    return d


def originate(r, msg, now_ms):
    """Router.originate of a MeshMessage or Ack whose src is not this node.

    Raises:
        LocalProtocolError: src is not served, or the path is not [] or [src].
    """
    src = msg.src
    if src not in r.served:
        raise LocalProtocolError("originate: src must be this node or a served ID")
    if msg.path and msg.path != [src]:
        raise LocalProtocolError("originate: path must be [] or [src]")
    r.counters["originated"] += 1
    dst = msg.dst
    if dst is not None and (dst == r.node_id or dst in r.served):
        r.dedup.add(msg.message_id, now_ms)
        d = Decision(deliver=True, mode="served")
    else:
        d = r.strategy.receive(relay_copy(msg, r.default_ttl, [src]), None, now_ms)
        d.deliver = False
    r._account(d)
    if r.log is not None:
        r._log_decision("originate", msg, None, d, now_ms)
    return d
