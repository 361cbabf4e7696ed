"""The peer table (the whitepaper's PeerManager): accepting, dialing with
backoff, one live link per neighbour, heartbeats and liveness.

Rule: every link is owned here from accept/connect to close; the node only
asks for a link by peer ID. The table never sees the node: it reports links
up and down, RTTs, lost pings and messages through LinkEvents, and answers
link-level messages (ping, pong, close, error) itself.

Duplicate links between the same two nodes are resolved the same way on
both sides: the link initiated by the lower node ID wins, and among those
the newest (that is how a rekey replaces a session).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from meshlink import liveness, messages
from meshlink.errors import ProtocolError, TransportError

from meshlink_gw.config import NodeConfig
from meshlink_gw.node.admission import Admission, LoadGate
from meshlink_gw.node.known_peers import KnownPeers
from meshlink_gw.node.link import LinkParams, PeerConnection
from meshlink_gw.node.pins import PinStore
from meshlink_gw.runtime import Backoff, LogLimiter, now_ms
from meshlink_gw.tasks import TaskSet

log = logging.getLogger("meshlink.peers")

STABLE_LINK_MS = 10_000  # a link that lasts this long resets its dialer's backoff
DISCOVERY_DIAL_TRIES = 3  # failed dials in a row before a suggested address is dropped
# a peer's cookie (PROTOCOL.md §5.3.1) is valid 120 to 240 s after it was made: reuse it
# for dials to the same address for a little less than the shortest of those
COOKIE_REUSE_MS = 110_000
MAX_COOKIES = 256  # addresses whose cookie we keep

_LINK_ERRORS = (ProtocolError, TransportError, OSError, EOFError, asyncio.IncompleteReadError,
                asyncio.TimeoutError)


class _PeerState:
    def __init__(self, live: liveness.Liveness) -> None:
        self.ping_seq = 0
        self.ping_outstanding: tuple[int, float] | None = None  # (seq, perf_counter s)
        self.rtt_ms: float | None = None
        self.live = live  # the link's heartbeat (meshlink.liveness), also conn.liveness


@dataclass(frozen=True)
class LinkEvents:
    """What the peer table reports to its owner (all called synchronously)."""

    on_message: Callable[[str, messages.Message], None]  # (peer_id, message)
    on_peer_up: Callable[[str, int], None]  # (peer_id, now_ms)
    on_peer_down: Callable[[str, int], None]  # (peer_id, now_ms)
    on_rtt: Callable[[str, float, int], None]  # (peer_id, rtt_ms, now_ms)
    on_ping_lost: Callable[[str, int], None]  # (peer_id, now_ms)


class PeerTable:
    """Live links by peer node ID, plus the dialers that keep them up.

    Args:
        config: the node's limits and timers (max_peers, idle_ping_ms, ...).
        node_id: ours, for the duplicate-link tie-break and rekey roles.
        params: what each link needs for its handshake.
        events: where link events go.
        is_local: True for an ID this node answers for (never a neighbour).
        pins: where static peers' node IDs are pinned (None: no pinning).
    """

    def __init__(self, config: NodeConfig, node_id: str, params: LinkParams,
                 events: LinkEvents, is_local: Callable[[str], bool],
                 pins: PinStore | None = None) -> None:
        self.config = config
        self.node_id = node_id
        # refused input: one line per interval per kind (a flood must not fill the log)
        self.log_limit = LogLimiter(log, config.refusal_log_interval_ms)
        self.params = dataclasses.replace(params, load_gate=LoadGate(  # cookies: §5.3.1
            params.network_key, config.cookie_load_half_open,
            config.cookie_load_attempts_per_s, lambda: self.half_open, now_ms()),
            refusal_log=LogLimiter(logging.getLogger("meshlink.conn"),
                                   config.refusal_log_interval_ms))
        self.events = events
        self.is_local = is_local
        self.pins = pins
        self.tasks = TaskSet()
        self.closing = False
        self.stats = {"handshakes_failed": 0, "records_rejected": 0,
                      "connections_refused": 0, "links_evicted": 0, "flaps": 0,
                      "links_established": 0, "links_silent": 0, "probes": 0,
                      # cookies (§5.3.1): M2s sent (each an encapsulation and a signature),
                      # cookie replies sent instead (no KEM work), cookies we were sent
                      "handshakes_answered": 0, "cookie_replies": 0, "cookies_received": 0}
        self.admission = Admission(config.max_half_open_per_host,
                                   config.handshake_attempts_per_s,
                                   config.handshake_attempt_burst)
        self._expected_ids: set[str] = set()  # node IDs our static dialers expect
        self._static_addrs: set[tuple[str, int]] = set()
        self._suggested: set[tuple[str, int]] = set()  # discovery dialers (bounded)
        self._suggested_most = 0  # the most discovery dialers ever running at once
        self.links: dict[str, PeerConnection] = {}
        self.state: dict[str, _PeerState] = {}
        self.half_open = 0
        self.known_addrs: dict[tuple[str, int], str] = {}  # dial address -> node ID
        self._dialing: set[tuple[str, int]] = set()
        self._lost: dict[tuple[str, int], asyncio.Event] = {}
        # set when the peer at a dialer's address linked to us while the dialer
        # waited out its backoff: the wait ends and the backoff starts afresh
        self._back: dict[tuple[str, int], asyncio.Event] = {}
        self._rekeying: set[str] = set()  # peers with a rekey dial in progress
        self._beat: asyncio.TimerHandle | None = None  # the heartbeat timer
        self._beat_due: int | None = None
        self._went_silent: set[str] = set()  # peers whose last link ended by silence
        self._draining = 0  # readers held back for backpressure (their peers' frames wait)
        self._drained_ms = -1 << 62  # when that last ended
        self._cookies: dict[tuple[str, int], tuple[bytes, int]] = {}  # addr -> (cookie, ms)
        self.known = KnownPeers(config.data_dir)

    def get(self, peer_id: str) -> PeerConnection | None:
        return self.links.get(peer_id)

    def set_listen_port(self, port: int) -> None:
        """The port we announce in handshakes, once the listener is bound."""
        self.params = dataclasses.replace(self.params, listen_port=port)

    def records_rejected(self) -> int:
        """Records that failed to open, on closed and live links."""
        return self.stats["records_rejected"] + sum(c.records_rejected
                                                    for c in self.links.values())

    # -- establishing ------------------------------------------------------
    async def accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """asyncio server callback for an inbound TCP connection."""
        if self.closing:
            writer.close()
            return
        peer = writer.get_extra_info("peername")
        host = str(peer[0]) if peer else "?"
        why = "too many handshakes in progress" \
            if self.half_open >= self.config.max_half_open else \
            self.admission.admit(host, now_ms())
        if why is not None:
            # before any crypto: a flood costs an accept() and a close()
            self.stats["connections_refused"] += 1
            self._log_refusal(host, why)
            writer.close()
            return
        try:
            conn = PeerConnection(self.params, reader, writer, outbound=False)
            await self._establish(conn)
        finally:
            self.admission.done(host)

    def _log_refusal(self, host: str, why: str) -> None:
        """One line per refusal_log_interval_ms at most (a flood must not flood the log)."""
        self.log_limit.warning("connection refused", "refusing connection from %s: %s "
                               "(%d refused so far)", host, why,
                               self.stats["connections_refused"])

    async def connect(self, addr: tuple[str, int], expected_node_id: str | None = None,
                      cookie: bytes | None = None) -> PeerConnection | None:
        """Dial addr once and run the handshake; None if it failed (logged). A
        peer under load answers with a cookie: then dial once more, with it.
        A cookie is kept per address for COOKIE_REUSE_MS and sent with the
        next dials there (a peer not under load ignores it)."""
        retry = cookie is not None
        if cookie is None:
            cookie = self._cookie_for(addr)
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(addr[0], addr[1], limit=1 << 20),
                self.config.handshake_timeout_ms / 1000)
        except (TimeoutError, OSError) as e:
            log.debug("dial %s:%d failed: %s", addr[0], addr[1], e)
            return None
        conn = PeerConnection(self.params, reader, writer, outbound=True, dial_addr=addr,
                              expected_node_id=expected_node_id, cookie=cookie)
        established = await self._establish(conn)
        if conn.cookie_received is not None:
            self._remember_cookie(addr, conn.cookie_received)
            if not retry:
                return await self.connect(addr, expected_node_id, conn.cookie_received)
            self.log_limit.warning("cookie again", "dial %s:%d: the peer asked for a cookie "
                                   "again (under load?); the dial failed", *addr)
        return established

    def _cookie_for(self, addr: tuple[str, int]) -> bytes | None:
        got = self._cookies.get(addr)
        if got is None or now_ms() - got[1] >= COOKIE_REUSE_MS:
            return None
        return got[0]

    def _remember_cookie(self, addr: tuple[str, int], cookie: bytes) -> None:
        self._cookies.pop(addr, None)
        self._cookies[addr] = (cookie, now_ms())
        while len(self._cookies) > MAX_COOKIES:
            del self._cookies[next(iter(self._cookies))]  # the oldest first

    async def _establish(self, conn: PeerConnection) -> PeerConnection | None:
        self.half_open += 1
        try:
            await conn.handshake()
        except _LINK_ERRORS as e:
            self.stats["handshakes_failed"] += 1
            kind = "deadline" if isinstance(e, asyncio.TimeoutError) else type(e).__name__
            why = "deadline passed" if kind == "deadline" else f"{kind}: {e}"
            self.log_limit.warning("handshake refused " + kind, "handshake with %s:%d "
                                   "refused: %s", *conn.remote_addr, why)
            await conn.close()
            return None
        finally:
            self.half_open -= 1
            self.stats["handshakes_answered"] += conn.m2_sent
        if conn.session is None:  # a cookie, sent (we are under load) or received
            self.stats["cookie_replies" if conn.cookie_sent else "cookies_received"] += 1
            await conn.close()
            return None
        refused = self._register(conn)
        if refused is not None:
            await conn.close(refused)
            return None
        self.stats["links_established"] += 1
        self.tasks.spawn(self._run(conn), f"link-{conn.peer_node_id}")
        return conn

    def _wins(self, new: PeerConnection, old: PeerConnection) -> bool:
        me = self.node_id

        def initiated_by_lower(c: PeerConnection) -> bool:
            initiator = me if c.outbound else c.peer_node_id
            other = c.peer_node_id if c.outbound else me
            return str(initiator) < str(other)

        return (initiated_by_lower(new), new.established_ms) >= \
            (initiated_by_lower(old), old.established_ms)

    def _register(self, conn: PeerConnection) -> str | None:
        """Make conn the link to its peer; None, or why it is refused (its close reason)."""
        peer = conn.peer_node_id
        assert peer is not None
        if self.closing:  # a handshake that finished after close_all(): no zombie link
            return "shutdown"
        if self.is_local(peer):
            log.info("dropping a link to ourselves (%s:%d)", *conn.remote_addr)
            return "duplicate link"
        if conn.dial_addr:
            self.known_addrs[conn.dial_addr] = peer
        old = self.links.get(peer)
        if old is not None:
            if not self._wins(conn, old):
                return "duplicate link"
            self.links[peer] = conn  # replace first so old's teardown keeps the peer up
            st = self.state.get(peer)
            if st is not None:
                self._watch(conn, st.live)
            self.tasks.spawn(old.close("replaced by a newer link"), "close-old")
        else:
            if len(self.links) >= self.config.max_peers and not self._make_slot(conn):
                self.log_limit.warning("slots full", "refusing %s at %s:%d: all %d peer "
                                       "slots taken", peer, *conn.remote_addr,
                                       self.config.max_peers)
                return "peer slots full"
            self.links[peer] = conn
            live = liveness.Liveness(now_ms(), self.config.probe_interval_ms,
                                     self.config.probe_misses, self.config.idle_ping_ms)
            self.state[peer] = _PeerState(live)
            self._watch(conn, live)
            self.events.on_peer_up(peer, now_ms())
            self._heartbeat(peer, conn, now_ms())  # first RTT sample right away
            for a, pid in self.known_addrs.items():
                if pid == peer and a in self._back:
                    self._back[a].set()
            self._arm_beat()
            addr = conn.dial_addr or ((conn.remote_addr[0], conn.peer_listen_port)
                                      if conn.peer_listen_port else None)
            if addr is not None:
                self.known.remember(peer, addr)
        log.info("peer up %s at %s:%d (%s)", peer, *conn.remote_addr,
                 "outbound" if conn.outbound else "inbound")
        return None

    def _known(self, conn: PeerConnection) -> bool:
        """A static peer: one we dial from the configuration, or whose node ID
        a static dialer expects or has met there (never one a beacon suggested)."""
        if conn.dial_addr is not None and conn.dial_addr in self._static_addrs:
            return True
        pid = conn.peer_node_id
        if self.pins is not None and pid in self.pins.load().values():
            return True
        return pid in self._expected_ids or any(
            self.known_addrs.get(a) == pid for a in self._static_addrs)

    def _make_slot(self, conn: PeerConnection) -> bool:
        """All slots are taken: a known peer takes the slot of the newest
        inbound link of an unknown identity; an unknown one gets nothing (so
        throw-away identities can never lock known peers out)."""
        if not self._known(conn):
            return False
        unknown = [c for c in self.links.values() if not self._known(c)]
        if not unknown:
            return False
        victim = max(unknown, key=lambda c: c.established_ms)
        log.warning("peer slots full: dropping unproven inbound peer %s for %s",
                    victim.peer_node_id, conn.peer_node_id)
        self.stats["links_evicted"] += 1
        if victim.peer_node_id is not None:
            self.links.pop(victim.peer_node_id, None)
            self.state.pop(victim.peer_node_id, None)
            self.events.on_peer_down(victim.peer_node_id, now_ms())
        self.tasks.spawn(victim.close("peer slots full"), "close-evicted")
        return True

    async def _run(self, conn: PeerConnection) -> None:
        try:
            await conn.read_loop(self._on_message, self._relieve_backpressure)
        except _LINK_ERRORS as e:
            if not conn.closed:
                log.info("link to %s ended: %s: %s", conn.peer_node_id, type(e).__name__, e)
        finally:
            await conn.close()
            self._unregister(conn)
            self.stats["records_rejected"] += conn.records_rejected
            conn.records_rejected = 0

    def _unregister(self, conn: PeerConnection) -> None:
        peer = conn.peer_node_id
        if peer is None or self.links.get(peer) is not conn:
            return
        del self.links[peer]
        self.state.pop(peer, None)
        self.events.on_peer_down(peer, now_ms())
        log.info("peer down %s", peer)
        for addr, pid in self.known_addrs.items():
            if pid == peer and addr in self._lost:
                self._lost[addr].set()

    # -- dialing with backoff ------------------------------------------------
    def dial_known(self) -> None:
        """Dial once, at once, every neighbour known from an earlier run that
        no dialer covers: after a restart they are re-linked without waiting
        for their own reconnect backoff."""
        for node_id, addr in list(self.known.addrs.items()):
            if node_id not in self.links and addr not in self._dialing:
                self.tasks.spawn(self.connect(addr, node_id), f"redial-{addr[0]}:{addr[1]}")

    def dial_forever(self, addr: tuple[str, int], expected_node_id: str | None = None) -> None:
        """Keep a link to a static peer at addr up: redial with exponential
        backoff and jitter, for as long as the node runs."""
        if addr in self._dialing:
            return
        self._dialing.add(addr)
        self._static_addrs.add(addr)
        if expected_node_id is not None:
            self._expected_ids.add(expected_node_id)
        self.tasks.spawn(self._dialer(addr, expected_node_id, None),
                         f"dial-{addr[0]}:{addr[1]}")

    def dial_suggested(self, addr: tuple[str, int], node_id: str) -> bool:
        """Dial an address a beacon suggested, for node_id. The set of such
        dialers is bounded (max_discovery_dials) and decays: a dialer gives up
        after DISCOVERY_DIAL_TRIES failed dials in a row, until a beacon
        suggests the address again. False if it was not started (full)."""
        if addr in self._dialing:
            return True
        if len(self._suggested) >= self.config.max_discovery_dials:
            return False
        self._dialing.add(addr)
        self._suggested.add(addr)
        self._suggested_most = max(self._suggested_most, len(self._suggested))
        self.tasks.spawn(self._dialer(addr, node_id, DISCOVERY_DIAL_TRIES),
                         f"dial-{addr[0]}:{addr[1]}")
        return True

    def suggested_dials(self) -> int:
        return len(self._suggested)

    def admission_status(self, discovery: Any) -> dict[str, int]:
        """What unauthenticated senders hold (status "admission"); discovery: the
        node's Discovery or None."""
        return {"half_open": self.half_open, "sources": self.admission.sources(),
                "discovery_dials": len(self._suggested),
                "discovery_dials_most": self._suggested_most,
                "beacons_heard": discovery.heard if discovery is not None else 0,
                "beacon_ids": len(discovery.seen) if discovery is not None else 0,
                "peers": len(self.links),
                "max_peers": self.config.max_peers}

    async def _dialer(self, addr: tuple[str, int], expected: str | None,
                      max_failures: int | None) -> None:
        backoff = Backoff(self.config.reconnect_min_ms, self.config.reconnect_max_ms)
        failures = 0
        try:
            while not self.closing:
                known = self.known_addrs.get(addr)
                if known is not None and known in self.links:
                    lost = self._lost.setdefault(addr, asyncio.Event())
                    lost.clear()
                    up_ms = now_ms()
                    await lost.wait()
                    failures = 0
                    await self._after_loss(addr, now_ms() - up_ms, backoff)
                    continue
                want = expected
                if want is None and max_failures is None and self.pins is not None:
                    want = self.pins.get(addr)  # re-read: an operator may reset it
                conn = await self.connect(addr, want)
                if conn is not None:
                    if want is None and max_failures is None and self.pins is not None \
                            and conn.peer_node_id:
                        self.pins.pin(addr, conn.peer_node_id)  # trust on first use
                    failures = 0  # the backoff is reset once the link proves stable
                    continue
                if self.known_addrs.get(addr) in self.links:
                    continue  # the peer dialed us meanwhile
                failures += 1
                if max_failures is not None and failures >= max_failures:
                    log.info("giving up on suggested address %s:%d for now", *addr)
                    return
                await self._backoff_wait(addr, backoff.next_ms(), backoff)
        finally:
            self._dialing.discard(addr)
            self._suggested.discard(addr)
            self._back.pop(addr, None)

    async def _backoff_wait(self, addr: tuple[str, int], wait_ms: int, backoff: Backoff) -> None:
        """Sleep wait_ms, unless the peer at addr links to us first (it
        restarted and dialled us): then reset the backoff and return at once,
        so that the next loss of the link is redialled from the shortest delay."""
        back = self._back.setdefault(addr, asyncio.Event())
        back.clear()
        try:
            await asyncio.wait_for(back.wait(), wait_ms / 1000)
        except TimeoutError:
            return
        backoff.reset()
        log.info("%s at %s:%d linked to us during our redial wait: redial backoff reset",
                 self.known_addrs.get(addr), *addr)

    async def _after_loss(self, addr: tuple[str, int], lived_ms: int, backoff: Backoff) -> None:
        """A link that lived STABLE_LINK_MS resets the backoff; a shorter one
        (a flapping peer, or another process with our identity taking the link
        over at the peer) makes the dialer wait as after a failed dial, so two
        such processes slow down instead of fighting with handshakes."""
        silent = self.known_addrs.get(addr) in self._went_silent
        self._went_silent.discard(self.known_addrs.get(addr, ""))
        if lived_ms >= STABLE_LINK_MS:
            backoff.reset()
            return
        wait_ms = backoff.next_ms()
        self.stats["flaps"] += 1
        if silent:  # already logged as silent: not another process with our identity
            log.info("redialing silent peer at %s:%d in %d ms", addr[0], addr[1], wait_ms)
        elif self.stats["flaps"] % 10 == 1:  # one line per ten flaps
            log.warning("link via %s:%d lasted %d ms (another process with our identity?): "
                        "redialing in %d ms", addr[0], addr[1], lived_ms, wait_ms)
        await self._backoff_wait(addr, wait_ms, backoff)

    # -- heartbeats -------------------------------------------------------------
    # One timer for every link, armed for the earliest liveness deadline
    # (meshlink.liveness): an idle link is pinged every idle_ping_ms; one that
    # owes us an answer is probed every probe_interval_ms and, silent for
    # probe_misses probes, declared down at once (the router hears it now).
    def start(self) -> None:
        """Start the heartbeats (links come from accept() and dial_forever())."""
        self._arm_beat()

    def _watch(self, conn: PeerConnection, live: liveness.Liveness) -> None:
        conn.liveness = live
        conn.on_suspect = self._arm_beat

    def _arm_beat(self) -> None:
        """(Re)arm the heartbeat timer for the earliest deadline of any link."""
        if self.closing:
            return
        due = min((st.live.next_deadline() for st in self.state.values()),
                  default=now_ms() + self.config.idle_ping_ms)
        if self._beat is not None and self._beat_due is not None and self._beat_due <= due:
            return
        if self._beat is not None:
            self._beat.cancel()
        self._beat_due = due
        self._beat = asyncio.get_running_loop().call_later(max(0, due - now_ms()) / 1000,
                                                           self._on_beat)

    def _on_beat(self) -> None:
        due, self._beat, self._beat_due = self._beat_due, None, None
        now = now_ms()
        # Our loop ran late (a stalled process) or our readers were held back:
        # the peers' frames may sit unread, so their silence proves nothing yet.
        excused = self._draining > 0 or \
            now - self._drained_ms < self.config.probe_interval_ms or \
            (due is not None and now - due > self.config.probe_interval_ms)
        for peer, conn in list(self.links.items()):
            st = self.state.get(peer)
            if excused and st is not None:
                st.live.excuse(now)
            self._heartbeat(peer, conn, now)
        self._arm_beat()

    def _heartbeat(self, peer: str, conn: PeerConnection, now: int) -> None:
        cfg = self.config
        st = self.state.get(peer)
        if st is None:
            return
        what = st.live.poll(now)
        if what == liveness.NOTHING:
            return
        if what == liveness.DOWN:
            # once more after this loop iteration: frames that arrived with the
            # timer are read first (the reader's task step runs after this callback)
            asyncio.get_running_loop().call_soon(self._confirm_silent, peer, conn)
            return
        if st.ping_outstanding is not None:
            self.events.on_ping_lost(peer, now)
        if now - conn.last_rx_ms > cfg.idle_timeout_ms:
            log.warning("peer %s sent nothing for %d ms: closing link", peer,
                        now - conn.last_rx_ms)
            self.tasks.spawn(conn.close("heartbeat timeout"), "close-silent")
            return
        if conn.session is not None and conn.session.expired(now):
            # no rekey in time (a peer that ignores it, or cannot be dialed): the key
            # is never used past its limit; the link ends and the dialer redials
            log.warning("session with %s expired before a rekey: closing link", peer)
            self.tasks.spawn(conn.close("session expired"), "close-expired")
            return
        if conn.session is not None and conn.session.needs_rekey(now):
            self._rekey(peer, conn)
        probes = st.live.probes
        st.ping_seq += 1
        # RTT is timed locally with a fine clock; sent_ms on the wire is for the peer
        st.ping_outstanding = (st.ping_seq, time.perf_counter())
        conn.send(messages.Ping(seq=st.ping_seq, sent_ms=now))
        st.live.pinged(now)
        self.stats["probes"] += st.live.probes - probes

    def _confirm_silent(self, peer: str, conn: PeerConnection) -> None:
        st = self.state.get(peer)
        if self.closing or st is None or self.links.get(peer) is not conn:
            return
        now = now_ms()
        if st.live.poll(now) == liveness.DOWN:
            self._silent(peer, conn, st, now)
        else:
            self._arm_beat()

    def _silent(self, peer: str, conn: PeerConnection, st: _PeerState, now: int) -> None:
        """The neighbour answered none of our probes: down now, the socket dropped
        (a frozen peer would never read our Close, nor let a polite close finish)."""
        since = st.live.waiting_since_ms
        log.warning("peer %s silent: %d probes unanswered, nothing received for %d ms: "
                    "link down", peer, st.live.unanswered,
                    now - since if since is not None else -1)
        self.stats["links_silent"] += 1
        if len(self._went_silent) >= 4 * self.config.max_peers:
            self._went_silent.clear()  # only a log line's wording depends on it
        self._went_silent.add(peer)
        conn.abort()
        self._unregister(conn)

    def _rekey(self, peer: str, conn: PeerConnection) -> None:
        """A fresh handshake on a new connection replaces the session (PROTOCOL.md §5.4).

        The lower node ID dials it if it knows where to; otherwise (the peer
        announced listen_port 0 and dialed us) the higher one does, since it
        dialed the old link. The side that does not dial sends error{rekey}.
        """
        addr = self._redial_addr(conn)
        peer_can_dial = not conn.outbound or self.params.listen_port != 0
        if addr is not None and (self.node_id < peer or not peer_can_dial):
            if peer in self._rekeying:
                return  # one rekey dial at a time per peer
            log.info("rekeying link to %s", peer)
            self._rekeying.add(peer)
            self.tasks.spawn(self._rekey_dial(peer, addr), f"rekey-{peer}")
        else:
            conn.send(messages.Error(code="rekey", reason="session limit reached"))

    @staticmethod
    def _redial_addr(conn: PeerConnection) -> tuple[str, int] | None:
        if conn.dial_addr is not None:
            return conn.dial_addr
        if conn.peer_listen_port:
            return (conn.remote_addr[0], conn.peer_listen_port)
        return None

    async def _rekey_dial(self, peer: str, addr: tuple[str, int]) -> None:
        try:
            await self.connect(addr, peer)
        finally:
            self._rekeying.discard(peer)

    # -- link-level messages ----------------------------------------------------
    def _on_message(self, conn: PeerConnection, msg: messages.Message) -> None:
        """Answer link-level messages here; pass the rest to the owner."""
        t = msg.TYPE
        if t == "ping":
            conn.send(messages.Pong(seq=msg.seq, sent_ms=msg.sent_ms))
        elif t == "pong":
            self._on_pong(conn, msg)
        elif t == "close":
            log.info("peer=%s closed: %s", conn.peer_node_id, msg.reason)
            conn.closed_by_peer()
        elif t == "error":
            self._on_error(conn, msg)
        else:
            self.events.on_message(conn.peer_node_id or "", msg)

    def _on_pong(self, conn: PeerConnection, msg: messages.Pong) -> None:
        st = self.state.get(conn.peer_node_id or "")
        if st is None or st.ping_outstanding is None or st.ping_outstanding[0] != msg.seq:
            return
        rtt = (time.perf_counter() - st.ping_outstanding[1]) * 1000
        st.ping_outstanding = None
        st.rtt_ms = rtt if st.rtt_ms is None else 0.8 * st.rtt_ms + 0.2 * rtt
        self.events.on_rtt(conn.peer_node_id or "", rtt, now_ms())

    def _on_error(self, conn: PeerConnection, msg: messages.Error) -> None:
        if msg.code == "rekey" and conn.peer_node_id:
            self._rekey(conn.peer_node_id, conn)
        else:
            log.warning("peer %s reports error %s: %s", conn.peer_node_id, msg.code, msg.reason)

    # -- backpressure and status ------------------------------------------------
    async def _relieve_backpressure(self) -> None:
        await self.drain_congested(self.config.write_buffer_high_bytes)

    async def drain_congested(self, high_bytes: int) -> None:
        """Wait for over-full send buffers to drain (backpressure to our readers).

        A peer that does not read for slow_peer_timeout_ms is cut off, so one
        stuck neighbour can neither grow our memory nor stall the others.
        """
        timeout_s = self.config.slow_peer_timeout_ms / 1000
        for conn in list(self.links.values()):
            if conn.closed or conn.write_buffer_bytes() <= high_bytes:
                continue
            self._draining += 1  # our readers wait: excuse every peer's silence meanwhile
            try:
                await asyncio.wait_for(conn.writer.drain(), timeout_s)
            except TimeoutError:
                log.warning("peer %s stopped reading (%d bytes queued): closing link",
                            conn.peer_node_id, conn.write_buffer_bytes())
                conn.abort()
                self._unregister(conn)
            except OSError:
                pass
            finally:
                self._draining -= 1
                self._drained_ms = now_ms()

    def describe(self, scores: dict) -> list[dict]:
        out = []
        for peer, conn in self.links.items():
            st = self.state.get(peer)
            sc = scores.get(peer, {})
            host = conn.remote_addr[0]
            port = conn.peer_listen_port if conn.peer_listen_port else conn.remote_addr[1]
            out.append({"node_id": peer, "address": f"{host}:{port}",
                        "direction": "outbound" if conn.outbound else "inbound",
                        "rtt_ms": round(st.rtt_ms, 3) if st and st.rtt_ms is not None else None,
                        "score": sc.get("score"),
                        "connected_s": round((now_ms() - conn.established_ms) / 1000, 1),
                        "records_rejected": conn.records_rejected,
                        "bytes_sent": conn.bytes_sent, "bytes_received": conn.bytes_received,
                        "probing": bool(st and st.live.suspicious())})
        return out

    async def close_all(self, reason: str) -> None:
        """Close every link and stop dialing and heartbeats."""
        self.closing = True
        if self._beat is not None:
            self._beat.cancel()
            self._beat = None
        await asyncio.gather(*(c.close(reason) for c in list(self.links.values())),
                             return_exceptions=True)
        await self.tasks.close()
