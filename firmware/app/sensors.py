# Sensor drivers. Each sensor turns one sample into an integer value_milli
# (the value in its unit x 1000, rounded): no float leaves this module.
# Rules: hardware comes from app.platform (lazily, at build time), so the
# simulated sensor runs and is tested on the unix port; the drivers that
# touch pins are BOARD ONLY (the BME280 arithmetic, app/bme280.py, is tested
# with a fake bus). read() may raise OSError
# or ValueError (a bus or checksum error); the run loop logs and skips it.
import math

from meshlink.errors import ConfigError

from app import platform

_DEFAULT_UNITS = {"internal_temp": "C", "adc": "V", "temperature": "C",
                  "humidity": "%RH", "pressure": "hPa"}


class Sensor:
    """Base: name, unit, interval_ms and a sample counter. Subclasses define
    _sample(index) -> value_milli for the index-th sample since boot."""

    def __init__(self, spec):
        self.name = spec["name"]
        self.kind = spec["type"]
        self.interval_ms = spec["interval_ms"]
        default = _DEFAULT_UNITS.get(spec.get("field", self.kind), "")
        self.unit = spec["unit"] or default
        self.samples = 0

    def read(self):
        """Take the next sample -> value_milli (int). Raises OSError/ValueError."""
        value = self._sample(self.samples)
        self.samples += 1
        return value

    def _sample(self, index):
        raise NotImplementedError


class XorShift32:
    """Marsaglia's xorshift32: the same sequence on every interpreter."""

    def __init__(self, seed):
        self.state = (seed & 0xFFFFFFFF) or 0x9E3779B9  # 0 is a fixed point

    def next(self):
        x = self.state
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        self.state = x
        return x


class SimSensor(Sensor):
    """Deterministic waveform: base + amplitude * sin(2 pi t / period) + noise,
    with t = index * interval_ms (the sample's nominal time, so the sequence
    does not depend on scheduling jitter) and noise uniform in
    [-noise, +noise] from a seeded xorshift32. Same config, same values.
    (ESP32 floats are single precision: a board may differ by 1 milli.)"""

    def __init__(self, spec):
        Sensor.__init__(self, spec)
        self.base_milli = spec["base_milli"]
        self.amplitude_milli = spec["amplitude_milli"]
        self.noise_milli = spec["noise_milli"]
        self.period_ms = spec["period_ms"]
        self._rng = XorShift32(spec["seed"])

    def _sample(self, index):
        t_ms = (index * self.interval_ms) % self.period_ms
        wave = self.amplitude_milli * math.sin(2 * math.pi * t_ms / self.period_ms)
        noise = 0
        if self.noise_milli:
            noise = self._rng.next() % (2 * self.noise_milli + 1) - self.noise_milli
        return self.base_milli + int(round(wave)) + noise


class InternalTemp(Sensor):
    """The chip's temperature sensor (esp32.mcu_temperature / raw_temperature)."""

    def __init__(self, spec):
        Sensor.__init__(self, spec)
        platform.mcu_temperature_milli()  # fail at build time where there is none

    def _sample(self, index):
        return platform.mcu_temperature_milli()


class AdcSensor(Sensor):
    """An ADC pin, reported in volts (value_milli = millivolts)."""

    def __init__(self, spec):
        Sensor.__init__(self, spec)
        self._read_mv = platform.adc_millivolts(spec["pin"])

    def _sample(self, index):
        return self._read_mv()


class Dht22Sensor(Sensor):
    """A DHT22 (AM2302): temperature in C or humidity in %RH. Read at most
    every 2 s (the sensor's own limit); measure() blocks ~25 ms."""

    def __init__(self, spec):
        Sensor.__init__(self, spec)
        self._dht = platform.dht22(spec["pin"])
        self._field = spec["field"]
        if self.interval_ms < 2000:
            raise ConfigError("sensor %s: a DHT22 needs interval_ms >= 2000" % self.name)

    def _sample(self, index):
        self._dht.measure()
        value = self._dht.temperature() if self._field == "temperature" else self._dht.humidity()
        return int(round(value * 1000))


class Bme280Sensor(Sensor):
    """One field of a BME280 on the configured I2C pins."""

    def __init__(self, spec, bus=None):
        Sensor.__init__(self, spec)
        self._field = spec["field"]
        from app.bme280 import BME280  # only boards that have one pay for it

        if bus is None:
            bus = platform.i2c(spec["scl"], spec["sda"])
        self.device = BME280(bus, spec["address"])

    def _sample(self, index):
        return self.device.read_milli(self._field)


_DRIVERS = {"sim": SimSensor, "internal_temp": InternalTemp, "adc": AdcSensor,
            "dht22": Dht22Sensor, "bme280": Bme280Sensor}


def build(specs):
    """Sensor objects for the validated sensor specs (Config.sensors).

    Raises:
        ConfigError: a sensor this platform cannot have (e.g. adc on unix).
        OSError: a bus device did not answer (BOARD ONLY).
    """
    return [_DRIVERS[spec["type"]](spec) for spec in specs]
