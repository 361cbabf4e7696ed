# Core benchmarks on MicroPython: frames and board-link records per second,
# board-link session setup time. Run as
#   MICROPYPATH=shared .venv/bin/micropython -X heapsize=96K bench/core_mpy.py
# Prints one line per figure: "bench<TAB>name<TAB>value<TAB>unit" (median of
# 5 runs). bench/core.py runs this and parses the lines.
# The unix port on a PC is much faster than an ESP32: compare like with like.
import gc
import sys
import time

from meshlink import aes, boardlink, frames

PAYLOAD_BYTES = 256
RUNS = 5
RUN_US = 150000  # per run


def _median(values):
    values = sorted(values)
    return values[len(values) // 2]


def rate(op):
    """Median over RUNS of op() calls per second, each run about RUN_US long."""
    results = []
    for _ in range(RUNS):
        gc.collect()
        n = 0
        t0 = time.ticks_us()
        elapsed = 0
        while elapsed < RUN_US:
            op()
            n += 1
            elapsed = time.ticks_diff(time.ticks_us(), t0)
        results.append(n * 1000000 / elapsed)
    return _median(results)


def frame_op():
    payload = bytes(PAYLOAD_BYTES)
    deframer = frames.Deframer()

    def op():
        out = deframer.feed(frames.encode_frame(payload))
        if len(out[0]) != PAYLOAD_BYTES:
            raise RuntimeError("bad frame")
    return op


def handshake(now_ms=0):
    psk = b"k" * 32
    board = boardlink.BoardClient(psk, b"benchbrd", 1, b"n" * 16)
    gw = boardlink.GatewaySession(psk, b"benchbrd")
    confirm = board.handle_challenge(gw.handle_hello(board.hello(), 9, b"g" * 16, now_ms), now_ms)
    gw.handle_confirm(confirm, now_ms)
    return board, gw


def record_op():
    board, gw = handshake()
    payload = bytes(PAYLOAD_BYTES)

    def op():
        if len(gw.open(board.seal(payload, 0), 0)) != PAYLOAD_BYTES:
            raise RuntimeError("bad record")
    return op


def main():
    print("bench\tinterpreter\t0\t%s %s (%s)" % (sys.implementation.name,
          ".".join(str(v) for v in sys.implementation.version[:3]), aes.ctr_backend()))
    print("bench\tframes encode+decode (256 B)\t%.1f\tframes/s" % rate(frame_op()))
    print("bench\tboard-link records seal+open (256 B)\t%.1f\trecords/s" % rate(record_op()))
    per_s = rate(handshake)
    print("bench\tboard-link session setup, both sides\t%.3f\tms" % (1000 / per_s))


main()
