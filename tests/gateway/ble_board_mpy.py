# Run by tests/gateway/test_ble_firmware.py on the MicroPython unix port with
# the fake aioble/bluetooth in tests/gateway/mpy_fakes: firmware/app/ble_link.py
# reassembles the central's writes, answers with notifications, and survives a
# drop and a reconnect with a larger MTU. Prints "OK" at the end.
import asyncio

import aioble
from app.ble_link import BleLink
from meshlink.blefrag import Reassembler, fragment


async def exchange(link, echoed, mtu, message):
    aioble.central.connect(mtu)
    aioble.central.notified = []
    echoed.clear()
    for piece in fragment(message, mtu - 3, 5):
        aioble.central.write(piece)
    await asyncio.wait_for_ms(echoed.wait(), 30000)
    r = Reassembler()
    replies = [r.feed(p) for p in aioble.central.notified]
    assert replies[-1] == b"echo:" + message, replies
    assert max(len(p) for p in aioble.central.notified) <= mtu - 3
    aioble.central.advertising.clear()
    aioble.central.drop()
    await asyncio.wait_for_ms(aioble.central.advertising.wait(), 30000)  # back to advertising
    assert not link.connected()


async def main():
    link = BleLink("meshlink-test")
    link.register()
    assert aioble.central.config["mtu"] == 247 and link.send(b"nobody") is False
    echoed = asyncio.Event()
    got = []

    def on_message(message):
        got.append(message)
        assert link.send(b"echo:" + message)
        echoed.set()

    task = asyncio.create_task(link.serve(on_message))
    await asyncio.wait_for_ms(aioble.central.advertising.wait(), 30000)
    await exchange(link, echoed, 23, bytes(range(100)))
    await exchange(link, echoed, 247, bytes(600))
    task.cancel()
    print("OK", len(got), aioble.central.advertised[0][1])


asyncio.run(main())
