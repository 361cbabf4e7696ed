# Sleeping boards: one wake cycle = take readings, send them with what the
# outbox kept, collect what the gateway queued, ask to sleep, deep sleep.
# Loaded only when config.json says sleep_ms (docs/BOARDS.md "Sleeping boards").
# Rules:
# - What survives deep sleep is what an ESP32 keeps: the wake state
#   (app/sleepstate.py through platform.save_wake_state: RTC memory; a file
#   on the unix port). RAM does not: the unix port's process exits.
# - This module stays loaded for the whole wake, so it is small: restoring
#   and saving the state (app/sleepstate.py, with meshlink.boardlink_resume)
#   are loaded only at wake and at sleep, and unloaded after the wake.
# - The board asks {"t":"sleep","ms":N} once its outbox is empty; the
#   gateway answers {"t":"sleep_ok","ms":N} once it holds nothing more for
#   it, and shows it asleep (PROTOCOL.md §8). A cycle ends after
#   awake_max_ms of radio time whatever happened (no gateway: sleep anyway,
#   keep the outbox).
# Console lines: WAKE (state restored or cold), SLEEP (ms, radio_on_ms, ...).


class Sleeper:
    """The wake cycle of one boot of a sleeping board."""

    def __init__(self, app):
        self.app = app
        self.resume = None  # the BoardClient resumed at wake (sleepstate.wake), used once
        self.asked_ms = -1  # when the last sleep request went out (-1: not yet)
        self.granted = False  # the gateway answered sleep_ok
        self.radio_from_ms = -1  # first link attempt of this wake (the radio goes on)
        self.seq_at_wake = 0

    def wake(self):
        """Restore what the last cycle kept; print WAKE."""
        from app import sleepstate

        sleepstate.wake(self)

    def client_for(self, now_ms):
        """The resumed BoardClient for this wake's first connection, or None (a
        handshake): used at most once. The radio counts as on from the first call."""
        if self.radio_from_ms < 0:
            self.radio_from_ms = now_ms
        client, self.resume = self.resume, None
        return client

    async def step(self, bl, now_ms):
        """From the session loop: ask to sleep when the cycle's work is done,
        sleep once the gateway agreed. Returns ms until it wants to run again."""
        app = self.app
        every_ms = app.cfg.ping_interval_ms
        if self.granted:
            self.sleep(bl, now_ms)
        if app.outbox or (app.sensors and app.seq == self.seq_at_wake) or not app.session_rx:
            return every_ms  # readings owed, or the session is not proven yet
        if self.asked_ms < 0 or now_ms - self.asked_ms >= every_ms:
            self.asked_ms = now_ms  # records are not retransmitted: ask again
            await bl.send({"t": "sleep", "ms": app.cfg.sleep_ms})
        return every_ms

    def overdue(self, now_ms):
        """True once the radio has been on for awake_max_ms in this wake
        (provisioning, before the first link attempt, does not count)."""
        return self.radio_from_ms >= 0 and now_ms - self.radio_from_ms >= \
            self.app.cfg.awake_max_ms

    def sleep(self, bl, now_ms):
        """Keep the state (and the session if bl holds one), deep sleep. Never
        returns; runs without an await, so nothing is sealed after the save."""
        import gc

        gc.collect()  # late in a wake the heap is fragmented: the import needs blocks
        from app import sleepstate

        sleepstate.sleep(self, bl, now_ms)
