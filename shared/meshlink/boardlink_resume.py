# Board-link session resumption across deep sleep (docs/PROTOCOL.md §6.7).
# A separate module: only sleeping boards load it (a 112K heap pays for
# every function a board imports).
# Rules: sans-I/O, MicroPython and CPython; only meshlink.errors come out.
from meshlink.boardlink import BoardClient, _need_now
from meshlink.boardlink_wire import (
    ESTABLISHED,
    NONCE_BYTES,
    REJECT_AFTER_MS,
    REJECT_AFTER_RECORDS,
    REPLAY_WINDOW,
    _need_bytes,
    _need_u32,
)
from meshlink.errors import LocalProtocolError

# A sleeping board keeps its session across deep sleep (docs/PROTOCOL.md
# §6.7). What it keeps is not secret: sid, the transcript T (a hash of two
# cleartext messages), the next seq to seal, the highest seq opened and the
# session's age. The keys are derived again from the PSK and T on wake. The
# rule that keeps seqs unique: the state is saved only as the last act before
# sleep (nothing is sealed after it), and it is read once and deleted on wake
# before the first record is sealed; a boot without it runs a new handshake.

RESUME_FIELDS = 5  # (sid, transcript, next_tx_seq, rx_highest, age_ms)


def suspend_state(client, now_ms):
    """An established BoardClient -> (sid, transcript, next_tx_seq, rx_highest,
    age_ms) to keep across sleep. The client must seal nothing afterwards.

    Raises:
        LocalProtocolError: the client is not established.
    """
    if client.state != ESTABLISHED:
        raise LocalProtocolError("only an established session can be suspended")
    _need_now(now_ms)
    return (client.sid, client.transcript, client._tx_seq, client._window.highest,
            now_ms - client.established_ms)


def resume_client(psk, board_id, boot_ctr, state, now_ms):
    """A BoardClient established from suspend_state() output, keys derived again.

    Seals from next_tx_seq on; opens only seqs above rx_highest (every seq at
    or below it counts as seen: a record recorded before sleep cannot be
    replayed); its age goes on from age_ms (add the time slept to it).

    Raises:
        LocalProtocolError: a malformed state (the caller then runs a handshake).
    """
    if type(state) not in (tuple, list) or len(state) != RESUME_FIELDS:
        raise LocalProtocolError("resume state must have %d fields" % RESUME_FIELDS)
    sid, transcript, tx_seq, rx_highest, age_ms = state
    _need_u32("sid", sid)
    transcript = _need_bytes("transcript", transcript, 32)
    for name, v, lo, hi in (("next_tx_seq", tx_seq, 0, REJECT_AFTER_RECORDS),
                            ("rx_highest", rx_highest, -1, REJECT_AFTER_RECORDS),
                            ("age_ms", age_ms, 0, REJECT_AFTER_MS)):
        if type(v) is not int or v < lo or v >= hi:
            raise LocalProtocolError("resume state: bad %s" % name)
    _need_now(now_ms)
    client = BoardClient(psk, board_id, boot_ctr, bytes(NONCE_BYTES))  # its HELLO is never sent
    client.sid = sid
    client._install_keys(transcript, now_ms)
    client.established_ms = now_ms - age_ms  # may be negative: the board's clock restarted
    client._tx_seq = tx_seq
    client._window.highest = rx_highest
    client._window._bitmap = ((1 << REPLAY_WINDOW) - 1) if rx_highest >= 0 else 0
    client._challenge = b""  # any CHALLENGE is now out of order (HandshakeError)
    return client
