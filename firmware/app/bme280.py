# A compact BME280 / BMP280 driver over I2C: forced-mode measurement and the
# datasheet's integer compensation (Bosch BST-BME280-DS002, section 4.2.3).
# Rules: integers only; the bus is injected (machine.I2C on a board, a fake
# in tests), so the arithmetic is tested on the unix port. Imported lazily by
# app.sensors only when a bme280 sensor is configured.
import struct
import time

from meshlink._compat import const

_BME_ADDR_CALIB1 = const(0x88)  # 26 bytes: T1..T3, P1..P9, (0xA0), H1
_BME_ADDR_CALIB2 = const(0xE1)  # 7 bytes: H2..H6
_BME_CHIP_ID = const(0xD0)
_BME_CTRL_HUM = const(0xF2)
_BME_STATUS = const(0xF3)
_BME_CTRL_MEAS = const(0xF4)
_BME_DATA = const(0xF7)  # 8 bytes: press[3], temp[3], hum[2]
_BME_FORCED_X1 = const(0x25)  # osrs_t x1, osrs_p x1, forced mode


def _s8(b):
    return b - 256 if b > 127 else b


class BME280:
    """A compact BME280 (and BMP280: no humidity) driver over I2C, with the
    datasheet's integer compensation (BST-BME280-DS002 section 4.2.3).

    bus: anything with readfrom_mem(addr, reg, n) and writeto_mem(addr, reg, buf)
    (machine.I2C, or a fake in tests). One forced-mode measurement per read().
    """

    def __init__(self, bus, address=0x76):
        self.bus = bus
        self.address = address
        chip = bus.readfrom_mem(address, _BME_CHIP_ID, 1)[0]
        if chip not in (0x60, 0x58):
            raise OSError("no BME280/BMP280 at 0x%02x (chip id 0x%02x)" % (address, chip))
        self.has_humidity = chip == 0x60
        c = struct.unpack("<HhhHhhhhhhhhBB", bus.readfrom_mem(address, _BME_ADDR_CALIB1, 26))
        self.t = c[0:3]
        self.p = c[3:12]
        self.h1 = c[13]
        self.h = (0, 0, 0, 0, 0)
        if self.has_humidity:
            e = bus.readfrom_mem(address, _BME_ADDR_CALIB2, 7)
            self.h = (struct.unpack("<h", e[0:2])[0], e[2], (_s8(e[3]) << 4) | (e[4] & 0x0F),
                      (_s8(e[5]) << 4) | (e[4] >> 4), _s8(e[6]))

    def read_raw(self):
        """Run one forced measurement -> (adc_T, adc_P, adc_H)."""
        if self.has_humidity:
            self.bus.writeto_mem(self.address, _BME_CTRL_HUM, b"\x01")
        self.bus.writeto_mem(self.address, _BME_CTRL_MEAS, bytes((_BME_FORCED_X1,)))
        for _ in range(50):  # a x1 measurement takes < 10 ms
            if not self.bus.readfrom_mem(self.address, _BME_STATUS, 1)[0] & 0x08:
                break
            time.sleep_ms(1)
        d = self.bus.readfrom_mem(self.address, _BME_DATA, 8)
        return ((d[3] << 12) | (d[4] << 4) | (d[5] >> 4),
                (d[0] << 12) | (d[1] << 4) | (d[2] >> 4), (d[6] << 8) | d[7])

    def t_fine(self, adc_t):
        t1, t2, t3 = self.t
        var1 = (((adc_t >> 3) - (t1 << 1)) * t2) >> 11
        d = (adc_t >> 4) - t1
        return var1 + ((((d * d) >> 12) * t3) >> 14)

    def temperature_centi(self, t_fine):
        """Temperature in 0.01 degrees C."""
        return (t_fine * 5 + 128) >> 8

    def pressure_q24_8(self, adc_p, t_fine):
        """Pressure in Pa as Q24.8 (the datasheet's 64-bit formula)."""
        p1, p2, p3, p4, p5, p6, p7, p8, p9 = self.p
        var1 = t_fine - 128000
        var2 = var1 * var1 * p6 + ((var1 * p5) << 17) + (p4 << 35)
        var1 = ((var1 * var1 * p3) >> 8) + ((var1 * p2) << 12)
        var1 = (((1 << 47) + var1) * p1) >> 33
        if var1 == 0:
            return 0  # avoid a division by zero (datasheet)
        p = 1048576 - adc_p
        p = (((p << 31) - var2) * 3125) // var1
        var1 = (p9 * (p >> 13) * (p >> 13)) >> 25
        var2 = (p8 * p) >> 19
        return ((p + var1 + var2) >> 8) + (p7 << 4)

    def humidity_q22_10(self, adc_h, t_fine):
        """Relative humidity in % as Q22.10."""
        h2, h3, h4, h5, h6 = self.h
        v = t_fine - 76800
        v = ((((adc_h << 14) - (h4 << 20) - (h5 * v)) + 16384) >> 15) * (
            ((((((v * h6) >> 10) * (((v * h3) >> 11) + 32768)) >> 10) + 2097152) * h2
             + 8192) >> 14)
        v -= ((((v >> 15) * (v >> 15)) >> 7) * self.h1) >> 4
        return max(0, min(v, 419430400)) >> 12

    def read_milli(self, field):
        """One measurement -> field in milli-units: C, %RH or hPa."""
        adc_t, adc_p, adc_h = self.read_raw()
        fine = self.t_fine(adc_t)
        if field == "temperature":
            return self.temperature_centi(fine) * 10
        if field == "pressure":
            return self.pressure_q24_8(adc_p, fine) * 10 // 256  # Pa/256 -> milli-hPa
        if not self.has_humidity:
            raise OSError("a BMP280 has no humidity sensor")
        return self.humidity_q22_10(adc_h, fine) * 1000 // 1024
