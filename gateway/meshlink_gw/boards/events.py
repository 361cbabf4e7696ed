"""What the board service tells others: announcements to the mesh, and
readings and online/offline changes to observers (the MQTT bridge).

Rule: no I/O of its own; announcements go out through the node, hooks are
called synchronously and must not block (the MQTT bridge only queues). A
hook's MeshLinkError is logged, never raised into the service.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from typing import Any

from meshlink.errors import MeshLinkError

from meshlink_gw.announce import announce_data
from meshlink_gw.boards.registry import BoardRecord

log = logging.getLogger("meshlink.gateway")

ANNOUNCES_PER_TICK = 100  # boards announced per tick when all are due

ReadingHook = Callable[[BoardRecord, dict], None]
OnlineHook = Callable[[BoardRecord, bool], None]
AsleepHook = Callable[[BoardRecord], None]
RevokedHook = Callable[[BoardRecord], None]


class Announcer:
    """Broadcasts each board's announcement (meshlink_gw.announce) when it comes
    online, for every board when the gateway gains a mesh peer, and every
    announce_interval_ms; paced at ANNOUNCES_PER_TICK boards per tick."""

    def __init__(self, node, boards: dict[str, BoardRecord], interval_ms: Callable[[], int],
                 stats: Counter[str], now_ms: int) -> None:
        self.node = node
        self.boards = boards
        self.interval_ms = interval_ms
        self.stats = stats
        self.queue: list[str] = []
        self._peer_count = 0
        self._last_round_ms = now_ms

    def announce(self, rec: BoardRecord) -> None:
        """Announce one board now (no-op while the gateway has no mesh peer)."""
        if rec.revoked or not self.node.peer_count():
            return
        data = announce_data(rec.name, self.node.node_id, rec.node_id)
        try:
            self.node.originate(None, data, src=rec.node_id)
            self.stats["announces"] += 1
        except MeshLinkError as e:
            log.warning("announce of board %s failed: %s", rec.name, e)

    def later(self, name: str) -> None:
        """Announce board name at the next tick (if the gateway has a peer)."""
        if self.node.peer_count():
            self.queue.append(name)

    def tick(self, now: int) -> None:
        peers = self.node.peer_count()
        if peers > self._peer_count or now - self._last_round_ms >= self.interval_ms():
            self._last_round_ms = now
            self.queue = [n for n, r in self.boards.items() if not r.revoked]
        self._peer_count = peers
        for name in self.queue[:ANNOUNCES_PER_TICK]:
            rec = self.boards.get(name)
            if rec is not None:
                self.announce(rec)
        del self.queue[:ANNOUNCES_PER_TICK]


class BoardEvents:
    """Readings and online/offline transitions, for whoever registered a hook.

    A board is online from its session's establishment (or any later record)
    until the session ends or stays silent for offline_after_ms.
    """

    def __init__(self) -> None:
        self.reading_hooks: list[ReadingHook] = []
        self.online_hooks: list[OnlineHook] = []
        self.revoked_hooks: list[RevokedHook] = []
        self.asleep_hooks: list[AsleepHook] = []
        self.online: dict[str, BoardRecord] = {}
        # sleeping boards: name -> (record, wake deadline + grace, monotonic ms)
        self.asleep: dict[str, tuple[BoardRecord, int]] = {}

    def revoked(self, rec: BoardRecord) -> None:
        """The board was revoked (observers forget it, e.g. its HA entities)."""
        for hook in self.revoked_hooks:
            self._call(hook, rec)

    def reading(self, rec: BoardRecord, reading: dict) -> None:
        for hook in self.reading_hooks:
            self._call(hook, rec, reading)

    def seen(self, rec: BoardRecord) -> None:
        """The board sent something authentic: online, if it was not (awake)."""
        self.asleep.pop(rec.name, None)
        if rec.name not in self.online:
            self.online[rec.name] = rec
            self._changed(rec, True)

    def sleeping(self, rec: BoardRecord, until_ms: int) -> None:
        """The board went to sleep until until_ms: asleep, not offline, until then."""
        self.online.pop(rec.name, None)
        self.asleep[rec.name] = (rec, until_ms)
        log.info("board %s is asleep", rec.name)
        for hook in self.asleep_hooks:
            self._call(hook, rec)

    def is_asleep(self, name: str, now: int) -> bool:
        entry = self.asleep.get(name)
        return entry is not None and now < entry[1]

    def check_asleep(self, now: int) -> None:
        """Report offline every sleeping board past its wake deadline and grace."""
        for name, (rec, until_ms) in list(self.asleep.items()):
            if now >= until_ms:
                del self.asleep[name]
                self._changed(rec, False)

    def offline(self, rec: BoardRecord) -> None:
        """The board's session ended: offline now, if it was online."""
        if self.online.pop(rec.name, None) is not None:
            self._changed(rec, False)

    def check(self, is_online: Callable[[str], bool]) -> None:
        """Report every board that is no longer online."""
        for name, rec in list(self.online.items()):
            if not is_online(name):
                del self.online[name]
                self._changed(rec, False)

    def _changed(self, rec: BoardRecord, online: bool) -> None:
        log.info("board %s is %s", rec.name, "online" if online else "offline")
        for hook in self.online_hooks:
            self._call(hook, rec, online)

    @staticmethod
    def _call(hook: Callable[..., Any], *args: Any) -> None:
        try:
            hook(*args)
        except MeshLinkError as e:
            log.warning("board event hook failed: %s", e)
