# Fake of micropython-lib's aioble for the unix port: one simulated central.
# The test drives it through `central`: connect(), write(fragment), drop().
# It is not a BLE stack; it only mirrors the aioble calls ble_link.py makes.
import asyncio


class DeviceDisconnectedError(Exception):
    pass


class _Central:
    def __init__(self):
        self.registered = []
        self.config = {}
        self.notified = []
        self.advertised = []
        self.conn = None
        self._connect = asyncio.ThreadSafeFlag()
        self._writes = []
        self._written = asyncio.ThreadSafeFlag()
        self.advertising = asyncio.Event()  # set whenever advertise() starts

    def connect(self, mtu):
        self.conn = _Conn(mtu)
        self._connect.set()

    def write(self, data):
        self._writes.append(bytes(data))
        self._written.set()

    def drop(self):
        self.conn._connected = False
        self._written.set()


central = _Central()


class _Conn:
    def __init__(self, mtu):
        self.mtu = mtu
        self._connected = True

    def is_connected(self):
        return self._connected


def config(**kw):
    central.config.update(kw)


class Service:
    def __init__(self, uuid):
        self.uuid = uuid
        self.characteristics = []


class Characteristic:
    def __init__(self, service, uuid, **flags):
        self.uuid = uuid
        self.flags = flags
        service.characteristics.append(self)

    def notify(self, conn, data):
        if not conn.is_connected():
            raise ValueError("Not connected")
        central.notified.append(bytes(data))

    async def written(self, timeout_ms=None):
        while not central._writes:
            if not central.conn.is_connected():
                raise DeviceDisconnectedError()
            await asyncio.wait_for_ms(central._written.wait(), timeout_ms)
        return central.conn, central._writes.pop(0)


class BufferedCharacteristic(Characteristic):
    def __init__(self, service, uuid, max_len=20, **flags):
        super().__init__(service, uuid, **flags)
        self.max_len = max_len


def register_services(*services):
    central.registered.extend(services)


async def advertise(interval_us, name=None, services=None):
    central.advertised.append((interval_us, name))
    central.advertising.set()
    await central._connect.wait()
    return central.conn
