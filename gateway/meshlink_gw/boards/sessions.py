"""Per-board board-link sessions: handshakes, records, rate limits.

Rule: transport-agnostic. Every board message arrives through
BoardSessions.handle(data, peer), whatever carried it (a UDP datagram, a TCP
frame, a serial frame, a BLE message); a peer (udp.py, tcp.py, links.py) is
how to answer. A peer bound to one board (a [[serial]] or [[ble]] link)
refuses every other board's HELLO (`wrong_board`). A board's bad input is
refused with a logged reason and costs at most that board's message or
session. Decrypted records go to the owner
(the BoardService) through on_record; a new session through on_established.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sqlite3
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Protocol

from meshlink import boardlink, cjson
from meshlink.errors import (
    AuthError,
    DecodeError,
    HandshakeError,
    LocalProtocolError,
    MeshLinkError,
    ReplayError,
    SessionExpiredError,
    StoreError,
    VersionError,
)

from meshlink_gw.boards.registry import BoardRecord, Queued
from meshlink_gw.config import GatewayConfig
from meshlink_gw.runtime import TokenBucket, now_ms

log = logging.getLogger("meshlink.gateway")

MAX_HALF_OPEN_PER_BOARD = 4
MAX_HALF_OPEN_PER_SOURCE = 2  # of one board's slots, per source host
DEAD_SIDS_KEPT = 4096
CHALLENGE_RESEND_MS = 200  # a record before CONFIRM gets the CHALLENGE again this often
REPLACED_HERE = "replaced by a new session on this connection"



def _source(peer) -> str:
    """The host a board message came from (a serial or BLE link: the link itself)."""
    addr = getattr(peer, "addr", None)
    if isinstance(addr, tuple) and addr:
        return str(addr[0])
    return str(peer.describe())


class BoardPeer(Protocol):
    """Where a board message came from, and how to answer it."""

    kind: str  # "udp", "tcp", "serial", "ble"
    roams: bool  # True: answer where the last authentic record came from (UDP)
    board: str | None  # the only board accepted from this peer, or None: any

    def send(self, data: bytes) -> None: ...

    def same(self, other: Any) -> bool: ...

    def describe(self) -> str: ...

    def attach(self, link: BoardLink) -> None: ...

    def session_ended(self, why: str) -> None: ...


@dataclasses.dataclass
class HalfOpen:
    """A handshake that answered HELLO and waits for the board's CONFIRM."""

    session: boardlink.GatewaySession
    board: BoardRecord
    peer: Any
    hello: bytes
    created_ms: int
    resent_ms: int = 0


class BoardLink:
    """An established board-link session and its delivery state."""

    def __init__(self, board: BoardRecord, session: boardlink.GatewaySession, peer,
                 hello: bytes, now: int, cfg: GatewayConfig) -> None:
        self.board = board
        self.session = session
        # set by the handshake that established it (GatewaySession.sid is
        # None only before CONFIRM)
        self.sid: int = session.sid if session.sid is not None else -1
        self.peer = peer
        self.hello = hello
        self.established_ms = now
        self.last_seen_ms = now
        self.bucket = TokenBucket(cfg.rate_records_per_s, cfg.rate_burst, now)
        self.inflight: Queued | None = None
        self.next_send_ms = 0
        self.attempts = 0
        self.records_in = 0
        self.rate_limited = 0
        self.closed = False
        self.wants_sleep_ms: int | None = None  # asked {"t":"sleep"}, not yet granted
        self.asleep_until_ms: int | None = None  # granted: asleep until this (+ grace)

    def asleep(self, now: int) -> bool:
        """Granted a sleep whose deadline (with grace) has not passed, and silent since."""
        return self.asleep_until_ms is not None and now < self.asleep_until_ms

    def online(self, now: int, offline_after_ms: int) -> bool:
        return not self.closed and self.asleep_until_ms is None \
            and now - self.last_seen_ms < offline_after_ms


class BoardSessions:
    """Every board's handshakes and established sessions.

    Args:
        cfg: the service's settings.
        refuse: RefusalLog.refuse.
        stats: the service's counters.
        lookup(board_id, now): the board's registry record, or None.
        on_established(link, now): a session was established.
        on_record(link, plaintext, now): an authentic record's plaintext (may raise
            DecodeError, LocalProtocolError, KeyError, TypeError, ValueError:
            refused as bad_payload).
        on_closed(link): a session ended (close_link), whatever the reason.
    """

    def __init__(self, cfg: GatewayConfig, refuse: Callable[..., None], stats,
                 lookup: Callable[[bytes, int], BoardRecord | None],
                 on_established: Callable[[BoardLink, int], None],
                 on_record: Callable[[BoardLink, bytes, int], None],
                 on_closed: Callable[[BoardLink], None] | None = None) -> None:
        self.cfg = cfg
        self.refuse = refuse
        self.stats = stats
        self._lookup = lookup
        self._on_established = on_established
        self._on_record = on_record
        self._on_closed = on_closed
        self.links: dict[str, BoardLink] = {}  # established, by board name
        self.by_sid: dict[int, BoardLink] = {}
        self.half_open: dict[int, HalfOpen] = {}
        self.half_open_by_hello: dict[bytes, int] = {}
        # board name -> the host its last authenticated session came from: a HELLO
        # from there is never crowded out by HELLOs from elsewhere (see _make_room)
        self.trusted_source: dict[str, str] = {}
        self.on_trusted_source: Callable[[str, str], None] | None = None  # persists it
        self.dead_sids: OrderedDict[int, tuple[str, str]] = OrderedDict()

    # -- input ------------------------------------------------------------------------
    def handle(self, data: bytes, peer) -> None:
        """One board-link message from peer (a datagram, a TCP or serial frame, ...)."""
        self.stats["messages_in"] += 1
        try:
            t = boardlink.message_type(data)
        except DecodeError as e:
            self.refuse("malformed", str(e), peer=peer)
            return
        now = now_ms()
        try:
            if t == boardlink.T_RECORD:
                self._on_record_msg(data, peer, now)
            elif t == boardlink.T_HELLO:
                self._on_hello(data, peer, now)
            elif t == boardlink.T_CONFIRM:
                self._on_confirm(data, peer, now)
            else:
                self.refuse("malformed", "unexpected message type %d" % t, peer=peer)
        except VersionError as e:
            self.refuse("version", str(e), peer=peer)
        except DecodeError as e:
            self.refuse("malformed", str(e), peer=peer)
        except MeshLinkError as e:  # a board's problem never reaches the loop
            self.refuse("error", f"{type(e).__name__}: {e}", peer=peer)
        except sqlite3.Error as e:  # boards.db failed (disk full?): this message is lost
            log.error("board registry error while handling a board message: %s", e)
            self.stats["storage_errors"] += 1

    # -- handshake --------------------------------------------------------------------
    def _on_hello(self, data: bytes, peer, now: int) -> None:
        board_id, boot_ctr, _nonce = boardlink.decode_hello(data)
        rec = self._lookup(board_id, now)
        if rec is None:
            self.refuse("unknown_board", f"unknown board ID {board_id.hex()}", peer=peer)
            return
        if rec.revoked:
            self.refuse("revoked", "HELLO from a revoked board", rec.name, peer)
            return
        if peer.board is not None and peer.board != rec.name:
            self.refuse("wrong_board", f"this link is for board {peer.board}", rec.name, peer)
            return
        link = self.links.get(rec.name)
        if link is not None and link.hello == data:
            return  # a retransmitted HELLO after the session was established: ignore
        sid = self.half_open_by_hello.get(data)
        if sid is not None:  # retransmitted HELLO: the same CHALLENGE again
            ho = self.half_open[sid]
            ho.peer = peer
            peer.send(ho.session.challenge)
            return
        if not self._boot_counter_ok(rec, boot_ctr, peer):
            return
        self.expire_half_open(now)
        if not self._make_room(rec.name, peer):
            self.refuse("half_open_cap", "too many handshakes for this board from %s"
                        % _source(peer), rec.name, peer)
            return
        if len(self.half_open) >= self.cfg.max_half_open and \
                _source(peer) != self.trusted_source.get(rec.name):
            # (a board's own host is exempt: at most 2 more per board, see _make_room)
            self.refuse("half_open_cap", "too many handshakes in progress", rec.name, peer)
            return
        sid = self._new_sid()
        session = boardlink.GatewaySession(rec.psk, rec.board_id)
        challenge = session.handle_hello(data, sid, os.urandom(boardlink.NONCE_BYTES), now)
        self.half_open[sid] = HalfOpen(session, rec, peer, bytes(data), now)
        self.half_open_by_hello[bytes(data)] = sid
        self.stats["hellos"] += 1
        peer.send(challenge)

    def _make_room(self, name: str, peer) -> bool:
        """Free a half-open slot of board `name` for a HELLO from peer, if needed.

        HELLOs are unauthenticated and a board's ID is cleartext, so a flood of
        them must not evict the handshake of the real board: a new HELLO evicts
        only the oldest half-open handshake of its own source host, or, when
        that source has none, of the source holding the most. A source may
        hold at most MAX_HALF_OPEN_PER_SOURCE of a board's slots. The host the
        board last authenticated from (trusted_source) is never crowded out:
        its HELLO takes the oldest slot held elsewhere, and its handshakes are
        evicted by no other source, so a flood from any number of other hosts
        cannot delay it.
        """
        mine = [s for s, ho in self.half_open.items() if ho.board.name == name]
        src = _source(peer)
        trusted = self.trusted_source.get(name)
        by_src: dict[str, list[int]] = {}
        for sid in mine:
            by_src.setdefault(_source(self.half_open[sid].peer), []).append(sid)
        own = by_src.get(src, [])
        if len(own) >= MAX_HALF_OPEN_PER_SOURCE:
            self.drop_half_open(min(own, key=lambda s: self.half_open[s].created_ms))
            return True
        if len(mine) < MAX_HALF_OPEN_PER_BOARD:
            return True
        others = [sids for host, sids in by_src.items() if host != trusted]
        if src == trusted and others:
            elsewhere = [sid for sids in others for sid in sids]
            self.drop_half_open(min(elsewhere, key=lambda s: self.half_open[s].created_ms))
            self.stats["hello_flood_evicted"] += 1
            return True
        crowd = max(others, key=len, default=[])
        if len(crowd) < 2:
            return False  # one handshake per source already: evict nobody
        self.drop_half_open(min(crowd, key=lambda s: self.half_open[s].created_ms))
        return True

    def _boot_counter_ok(self, rec: BoardRecord, boot_ctr: int, peer) -> bool:
        if rec.last_boot_ctr is None or boot_ctr >= rec.last_boot_ctr:
            return True
        if self.cfg.strict_boot_counter:
            self.refuse("boot_counter", f"boot counter {boot_ctr} < last {rec.last_boot_ctr}",
                        rec.name, peer)
            return False
        log.warning("board %s boot counter went back from %d to %d (reflashed?)",
                    rec.name, rec.last_boot_ctr, boot_ctr)
        return True

    def _new_sid(self) -> int:
        while True:
            sid = int.from_bytes(os.urandom(4), "big")
            if sid and sid not in self.by_sid and sid not in self.half_open \
                    and sid not in self.dead_sids:
                return sid

    def expire_half_open(self, now: int) -> None:
        """Drop handshakes older than handshake_timeout_ms (refused, logged)."""
        for sid, ho in list(self.half_open.items()):
            if now - ho.created_ms >= self.cfg.handshake_timeout_ms:
                self.drop_half_open(sid)
                self.refuse("handshake_timeout", "no valid CONFIRM in time (wrong PSK on the "
                            "board, or messages lost)", ho.board.name, ho.peer)

    def drop_half_open(self, sid: int) -> None:
        ho = self.half_open.pop(sid, None)
        if ho is not None and self.half_open_by_hello.get(ho.hello) == sid:
            del self.half_open_by_hello[ho.hello]

    def _on_confirm(self, data: bytes, peer, now: int) -> None:
        sid, _tag = boardlink.decode_confirm(data)
        ho = self.half_open.get(sid)
        if ho is None:
            link = self.by_sid.get(sid)
            if link is not None:
                try:
                    link.session.handle_confirm(data, now)  # a retransmission: ignored
                except HandshakeError as e:
                    self.refuse("handshake", str(e), link.board.name, peer)
                return
            self.refuse("unknown_session", "CONFIRM for session %08x, which is not "
                        "waiting" % sid, peer=peer)
            return
        try:
            ho.session.handle_confirm(data, now)
        except AuthError:
            self.refuse("wrong_psk", "CONFIRM tag does not verify (wrong PSK or forged)",
                        ho.board.name, peer)
            return
        except HandshakeError as e:
            self.refuse("handshake", str(e), ho.board.name, peer)
            return
        self.drop_half_open(sid)
        self._establish(ho, peer, now)

    def _establish(self, ho: HalfOpen, peer, now: int) -> None:
        rec = ho.board
        old = self.links.get(rec.name)
        if old is not None:
            self.close_link(old, REPLACED_HERE if old.peer is peer
                            else "replaced by a new session")
        link = BoardLink(rec, ho.session, peer, ho.hello, now, self.cfg)
        self.links[rec.name] = link
        self.by_sid[link.sid] = link
        peer.attach(link)
        self.stats["sessions"] += 1
        self._trust_source(rec.name, _source(peer))
        rec.last_boot_ctr = ho.session.boot_ctr
        log.info("board %s online via %s: session %08x, boot counter %d", rec.name,
                 peer.describe(), ho.session.sid, ho.session.boot_ctr)
        self._on_established(link, now)

    def _trust_source(self, name: str, host: str) -> None:
        if self.trusted_source.get(name) == host:
            return
        self.trusted_source[name] = host
        if self.on_trusted_source is not None:
            try:
                self.on_trusted_source(name, host)
            except sqlite3.Error as e:  # kept in memory; remembered after a restart no more
                log.error("cannot store board %s's address: %s", name, e)
                self.stats["storage_errors"] += 1

    # -- records ----------------------------------------------------------------------
    def _on_record_msg(self, data: bytes, peer, now: int) -> None:
        sid, _seq = boardlink.decode_record_header(data)
        link = self.by_sid.get(sid)
        if link is None:
            self._record_without_session(sid, peer, now)
            return
        if not link.peer.same(peer):
            self.refuse("wrong_transport", "record for a session of another connection",
                        link.board.name, peer)
            return
        # The tag is checked first: a forged record (its sid is cleartext) must not
        # spend the board's rate budget or change anything else of its session.
        plaintext = self._open(link, data, peer, now)
        if plaintext is None:
            return
        if not link.bucket.take(now):
            link.rate_limited += 1
            self.refuse("rate_limited", "over %d records/s (burst %d)" % (
                self.cfg.rate_records_per_s, self.cfg.rate_burst), link.board.name, peer)
            return
        link.last_seen_ms = now
        link.asleep_until_ms = None  # a sleeping board that sends is awake (resumed)
        link.records_in += 1
        if peer.roams:
            link.peer = peer  # answer where the last authentic record came from
        self.stats["records_in"] += 1
        try:
            self._on_record(link, plaintext, now)
        except (DecodeError, LocalProtocolError, KeyError, TypeError, ValueError) as e:
            self.refuse("bad_payload", f"{type(e).__name__}: {e}", link.board.name, peer)
        except StoreError:  # a full disk (the node logged it): not confirmed, the board resends
            self.stats["storage_errors"] += 1

    def _record_without_session(self, sid: int, peer, now: int) -> None:
        ho = self.half_open.get(sid)
        if ho is not None:
            # the CONFIRM was lost: resend the CHALLENGE so the board resends it
            if now - ho.resent_ms >= CHALLENGE_RESEND_MS:
                ho.resent_ms = now
                peer.send(ho.session.challenge)
            return
        dead = self.dead_sids.get(sid)
        if dead is not None:
            reason = "revoked" if dead[1] == "revoked" else "old_session"
            self.refuse(reason, "record for session %08x, which ended (%s)" % (sid, dead[1]),
                        dead[0], peer)
        else:
            self.refuse("unknown_session", "record for unknown session %08x (gateway "
                        "restarted?)" % sid, peer=peer)
        if dead is None or dead[1] != "revoked":
            # tell the board at once (PROTOCOL.md section 6.4: STALE), instead
            # of letting it send into a dead session until its link timeout;
            # 5 bytes back for >= 29 in: no amplification
            self.stats["stale_sent"] += 1
            peer.send(boardlink.encode_stale(sid))

    def _open(self, link: BoardLink, data: bytes, peer, now: int) -> bytes | None:
        """Verify and decrypt a record; None (refused) if it does not verify."""
        name = link.board.name
        try:
            return link.session.open(data, now)
        except ReplayError as e:
            self.refuse("replay", str(e), name, peer)
        except AuthError:
            self.refuse("bad_tag", "record tag does not verify (bit flip or forgery)", name,
                        peer)
        except SessionExpiredError as e:
            self.close_link(link, "expired")
            self.refuse("expired", str(e), name, peer)
        return None

    def send(self, link: BoardLink, obj: dict, now: int) -> None:
        """Seal one record for a board and send it (a hard-limited session ends)."""
        try:
            record = link.session.seal(cjson.dumps(obj), now)
        except SessionExpiredError:
            self.close_link(link, "expired")
            return
        link.peer.send(record)
        self.stats["records_out"] += 1

    # -- endings ----------------------------------------------------------------------
    def close_link(self, link: BoardLink, why: str) -> None:
        """End one session; its sid is remembered so late records get a clear refusal."""
        link.closed = True
        sid = link.sid
        if self.by_sid.get(sid) is link:
            del self.by_sid[sid]
        self.dead_sids[sid] = (link.board.name, why)
        while len(self.dead_sids) > DEAD_SIDS_KEPT:
            self.dead_sids.popitem(last=False)
        if self.links.get(link.board.name) is link:
            del self.links[link.board.name]
        link.peer.session_ended(why)
        log.info("board %s session %08x ended: %s", link.board.name, sid, why)
        if self._on_closed is not None:
            self._on_closed(link)

    def cut(self, name: str, why: str) -> None:
        """End a board's live session and half-open handshakes."""
        link = self.links.pop(name, None)
        if link is not None:
            self.close_link(link, why)
        for sid, ho in list(self.half_open.items()):
            if ho.board.name == name:
                self.drop_half_open(sid)

    def drop_idle(self, now: int) -> None:
        """Forget sessions idle for session_idle_drop_ms."""
        for link in list(self.links.values()):
            if link.asleep(now):
                continue  # kept for the board's wake (PROTOCOL.md 6.7)
            if now - link.last_seen_ms >= self.cfg.session_idle_drop_ms:
                self.close_link(link, "idle")

    def online_count(self, now: int) -> int:
        return sum(1 for link in self.links.values()
                   if link.online(now, self.cfg.offline_after_ms))
