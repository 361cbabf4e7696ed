# Sleeping boards: one wake cycle = take readings, send them with what the
# outbox kept, collect what the gateway queued, ask to sleep, deep sleep.
# Loaded only when config.json says sleep_ms (docs/BOARDS.md "Sleeping boards").
# Rules:
# - What survives deep sleep is what an ESP32 keeps: the wake state
#   (platform.save_wake_state: RTC memory; a file on the unix port). RAM
#   does not: the unix port's process exits.
# - Session resumption (PROTOCOL.md §6.7): the session is saved only as the
#   last act before sleep (nothing is sealed after it), and the state is
#   erased on wake before it is used (platform.take_wake_state). A boot
#   without it, or whose resumed session the gateway lost (STALE), runs a
#   new handshake. So a seq is never sealed twice under one key.
# - The board asks {"t":"sleep","ms":N} once its outbox is empty; the
#   gateway answers {"t":"sleep_ok","ms":N} once it holds nothing more for
#   it, and shows it asleep (PROTOCOL.md §8). A cycle ends after
#   awake_max_ms whatever happened (no gateway: sleep anyway, keep the outbox).
# Console lines: WAKE (state restored or cold), SLEEP (ms, radio_on_ms, ...).
import gc

from meshlink import boardlink, boardlink_resume, cjson
from meshlink.errors import MeshLinkError

from app import platform

_STATE_VERSION = 1
_IDS_KEPT = 8  # message ids kept across sleep: a resent msg is acked, not run twice


class Sleeper:
    """The wake cycle of one boot of a sleeping board."""

    def __init__(self, app):
        cfg = app.cfg
        self.app = app
        self.sleep_ms = cfg.sleep_ms
        self.path = platform.data_path(cfg.base_dir, cfg.sleep_state_file)
        self.resume = None  # suspend_state() tuple from the last cycle, used once
        self.asked_ms = -1  # when the last sleep request went out (-1: not yet)
        self.granted = False  # the gateway answered sleep_ok
        self.radio_from_ms = -1  # first link attempt of this wake (the radio goes on)
        self.seq_at_wake = 0
        self.restored = 0  # readings restored into the outbox

    def wake(self):
        """Restore what the last cycle kept (outbox, reading seq, recent ids,
        session) into the app; print WAKE."""
        app = self.app
        data = platform.take_wake_state(self.path)
        state = None
        if data is not None:
            try:
                state = cjson.loads(data)
                if type(state) is not dict or state.get("v") != _STATE_VERSION:
                    state = None
            except MeshLinkError:
                state = None
            if state is None:
                platform.log("WARN wake state unreadable: cold start")
        if state is not None:
            try:
                app.seq = _nat(state.get("seq", 0))
                outbox = state.get("outbox", [])
                app.outbox = [r for r in outbox if type(r) is dict and "seq" in r]
                app.recent_ids = [i for i in state.get("ids", []) if type(i) is str]
                s = state.get("s")
                if s is not None and self.app.cfg.sleep_resume:
                    self.resume = (s[0], bytes.fromhex(s[1]), s[2], s[3],
                                   s[4] + self.sleep_ms)
            except (TypeError, ValueError, IndexError, AttributeError):
                platform.log("WARN wake state malformed: session not resumed")
                self.resume = None
        self.seq_at_wake = app.seq
        self.restored = len(app.outbox)
        platform.log("WAKE %s seq=%d outbox=%d session=%s" % (
            "warm" if state is not None else "cold", app.seq, len(app.outbox),
            "kept" if self.resume is not None else "none"))

    def client_for(self, cfg, boot_ctr, now_ms):
        """A resumed BoardClient for this wake's first connection, or None (a
        handshake). The kept state is used at most once."""
        state, self.resume = self.resume, None
        if state is None:
            return None
        if cfg.transport != "udp":  # a stream's session ends with its connection
            return None
        try:
            return boardlink_resume.resume_client(cfg.psk, cfg.board_id, boot_ctr, state, now_ms)
        except MeshLinkError as e:
            platform.log("WARN session not resumed: %s" % e)
            return None

    def radio_on(self, now_ms):
        if self.radio_from_ms < 0:
            self.radio_from_ms = now_ms

    async def step(self, bl, now_ms):
        """Called by the session loop: ask to sleep when the cycle's work is
        done, sleep once the gateway agreed. Returns the ms until it wants to
        be called again."""
        app = self.app
        if self.granted:
            self.sleep(bl, now_ms)
        if app.outbox or (app.sensors and app.seq == self.seq_at_wake):
            return app.cfg.ping_interval_ms  # readings still owed
        if app.session_rx == 0:
            return app.cfg.ping_interval_ms  # the session is not proven yet
        if self.asked_ms < 0 or now_ms - self.asked_ms >= app.cfg.ping_interval_ms:
            self.asked_ms = now_ms  # records are not retransmitted: ask again
            await bl.send({"t": "sleep", "ms": self.sleep_ms})
        return app.cfg.ping_interval_ms

    def on_granted(self):
        self.granted = True

    def overdue(self, now_ms):
        """True once the radio has been on for awake_max_ms in this wake
        (provisioning, before the first link attempt, does not count)."""
        return self.radio_from_ms >= 0 and now_ms - self.radio_from_ms >= self.app.cfg.awake_max_ms

    def sleep(self, bl, now_ms):
        """Keep the outbox, reading seq, recent ids and (if bl is established)
        the session, then deep sleep. Never returns. Nothing may be sealed
        after the state is saved: this runs without an await."""
        app = self.app
        gc.collect()  # the state is encoded in one piece: room for it first
        session = None
        client = bl.client if bl is not None else None
        if client is not None and client.state == boardlink.ESTABLISHED \
                and not client.needs_rekey(now_ms):
            sid, transcript, tx_seq, rx_highest, age_ms = boardlink_resume.suspend_state(
                client, now_ms)
            session = [sid, transcript.hex(), tx_seq, rx_highest, age_ms]
        state = {"v": _STATE_VERSION, "seq": app.seq, "outbox": app.outbox,
                 "ids": app.recent_ids[-_IDS_KEPT:], "s": session}
        try:
            platform.save_wake_state(self.path, cjson.dumps(state))
        except (OSError, MeshLinkError) as e:
            platform.log("WARN wake state not kept: %s" % e)
        radio_ms = now_ms - self.radio_from_ms if self.radio_from_ms >= 0 else 0
        platform.log("SLEEP ms=%d radio_on_ms=%d granted=%d session=%s outbox=%d peak=%d "
                     "budget=%d" % (self.sleep_ms, radio_ms, 1 if self.granted else 0,
                                    "kept" if session is not None else "none",
                                    len(app.outbox), app.peak_alloc, app.cfg.heap_budget))
        platform.deep_sleep(self.sleep_ms)


def _nat(v):
    if type(v) is not int or v < 0:
        raise ValueError("expected a natural number")
    return v
