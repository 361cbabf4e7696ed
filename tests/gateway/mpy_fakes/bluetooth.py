# Fake of MicroPython's `bluetooth` module, for running firmware/app/ble_link.py
# on the unix port (which has no Bluetooth). Only what ble_link.py touches.
class UUID:
    def __init__(self, value):
        self.value = value

    def __eq__(self, other):
        return isinstance(other, UUID) and other.value == self.value
