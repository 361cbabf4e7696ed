# Run by tests/firmware/test_ble_link.py on the MicroPython unix port: the
# real firmware (the bundle's main.py) with "transport": "ble", against the
# FAKE aioble/bluetooth in tests/gateway/mpy_fakes. No Bluetooth stack runs.
#
# argv: config.json, the test gateway's TCP port (0: never connect), the
# ATT MTU the fake central "negotiates". A bridge task plays the central:
# whenever the board advertises it connects to the CPython test gateway over
# loopback TCP (one BLE fragment = 1 length byte + the fragment), writes each
# fragment the gateway sends into the fake RX characteristic, and forwards
# each fragment the board notifies. The gateway closing its side = a BLE
# drop; the bridge then waits for the board to advertise again.
# The fakes and the bridge cost heap a real board does not spend, so the test
# runs this with a larger heap and subtracts "BRIDGE overhead" (printed below).
import asyncio
import gc
import sys

gc.collect()
_BASE = gc.mem_alloc()  # the app imports asyncio and sys too: not overhead

import aioble  # noqa: E402

_PORT = int(sys.argv[2])
_MTU = int(sys.argv[3])  # at most 258: a fragment's length fits one byte


async def _uplink(writer, conn):
    central = aioble.central
    while conn.is_connected():
        if central.notified:
            pieces, central.notified = central.notified, []
            for piece in pieces:
                writer.write(bytes((len(piece),)) + piece)
            await writer.drain()
        await asyncio.sleep_ms(5)


async def _bridge():
    central = aioble.central
    while True:
        await central.advertising.wait()
        central.advertising.clear()
        reader, writer = await asyncio.open_connection("127.0.0.1", _PORT)
        central.notified = []
        central.connect(_MTU)
        print("BRIDGE connected mtu=%d registered=%d advertised=%s" % (
            _MTU, len(central.registered), central.advertised[-1][1]))
        asyncio.create_task(_uplink(writer, central.conn))
        while True:
            try:
                n = (await reader.readexactly(1))[0]
                central.write(await reader.readexactly(n))
            except EOFError:
                break
        central.drop()
        print("BRIDGE dropped")
        writer.close()
        await writer.wait_closed()


_run = asyncio.run


def _run_with_bridge(coro):
    async def both():
        if _PORT:
            asyncio.create_task(_bridge())
        return await coro

    return _run(both())


asyncio.run = _run_with_bridge  # app.App.run() calls asyncio.run(self.main())
gc.collect()
# What the fakes and this bridge hold (this module's own code object aside):
# the test subtracts it from the app's HEAP lines.
print("BRIDGE overhead=%d" % (gc.mem_alloc() - _BASE))
import main  # noqa: E402,F401 - runs the firmware
