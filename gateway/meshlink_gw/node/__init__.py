"""The mesh node runtime: the asyncio adapter around the sans-I/O cores.

node.py     Node: feeds meshlink.router and meshlink.delivery, sleeps until their deadlines
peers.py    PeerTable: accept/dial with backoff, one link per neighbour, heartbeats
link.py     PeerConnection: one TCP link (handshake, sealed records, frames)
discovery.py  UDP beacons on the LAN
control.py  the local control socket (status/send/recv)
store.py    the SQLite inbox
"""

from meshlink_gw.node.node import Node, SendResult, hops_travelled

__all__ = ["Node", "SendResult", "hops_travelled"]
