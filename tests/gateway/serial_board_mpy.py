# Run by tests/gateway/test_serial_firmware.py on the MicroPython unix port:
# the firmware's serial link on one end of a pty. It announces itself, echoes
# every payload back with an "echo:" prefix, and exits on b"quit" (or after
# 60 s of silence, so a broken test cannot leave it running).
import asyncio
import sys

from app.serial_link import SerialLink, open_tty


async def main(path):
    link = SerialLink(open_tty(path))
    link.send(b'{"board":"mpy","sensor":"temp","value":21}')
    while True:
        payload = await asyncio.wait_for(link.recv(), 60)
        if payload == b"quit":
            link.send(b"bye:%d" % link.decoder.error_count())
            return
        link.send(b"echo:" + payload)


asyncio.run(main(sys.argv[1]))
