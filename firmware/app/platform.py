# The one module that knows where the firmware runs: an ESP32 (MicroPython's
# esp32 port) or the MicroPython unix port (simulation and tests).
# Rules: every difference between the two lives here: WiFi, the watchdog,
# pins (LED, relay), on-chip sensors, the clock, file paths, socket address
# formats and reset. Board-only modules (machine, network, esp32, neopixel)
# are imported lazily inside functions, so importing this module on the unix
# port touches no hardware. Code paths marked BOARD ONLY have not run in CI.
import gc
import os
import sys
import time

from meshlink.errors import ConfigError, TransportError

ON_BOARD = sys.platform == "esp32"
PLATFORM = "esp32" if ON_BOARD else "unix"


def log(text):
    """One console line. The stdout format is documented in docs/FIRMWARE.md."""
    print(text)


class Clock:
    """A non-wrapping millisecond clock built from time.ticks_ms().

    ticks_ms() wraps (2^30 ms on ESP32), so now_ms() accumulates ticks_diff.
    It must be called at least once per half wrap period (~6 days); the run
    loop calls it many times a second.
    """

    def __init__(self):
        self._last = time.ticks_ms()
        self._now_ms = 0

    def now_ms(self):
        """Milliseconds since this clock was created; never goes back."""
        t = time.ticks_ms()
        self._now_ms += max(0, time.ticks_diff(t, self._last))
        self._last = t
        return self._now_ms


def heap():
    """(allocated, free) bytes of the Python heap."""
    return gc.mem_alloc(), gc.mem_free()


def intern_chars(texts):
    """Intern, as qstrs, every character of texts: first thing at boot.

    MicroPython interns each 1-character string that str iteration makes
    (meshlink.cjson iterates over every string it encodes). When the qstr
    pool is full, the next new qstr allocates a pool twice the size of the
    last (~7 KB on the unix port), which must be contiguous: later, in a
    fragmented heap, that fails ("allocating 640 bytes": the pool's qstr
    count). So intern, while the heap is unfragmented, the characters of
    every string the board will ever encode (record keys and values, node
    IDs, sensor names and units), and the run loop never grows the pool.
    """
    seen = ""
    for text in texts:
        for ch in text:  # the iteration itself interns ch
            if ch not in seen:
                seen += ch


def urandom(n):
    """n random bytes. On ESP32 truly random only while the radio is on."""
    return os.urandom(n)


def config_path():
    """Where config.json is: argv[1] on the unix port, else beside main.py."""
    if not ON_BOARD and len(sys.argv) > 1:
        return sys.argv[1]
    script = sys.argv[0] if sys.argv else ""
    i = script.rfind("/")
    return (script[:i + 1] if i >= 0 else "") + "config.json"


def data_path(base_dir, name):
    """A board file's path: absolute names stay, others sit beside config.json."""
    if name.startswith("/") or base_dir in ("", "."):
        return name
    return base_dir.rstrip("/") + "/" + name


def bump_boot_counter(path):
    """Read the persisted u32 boot counter, add one, persist it, return it.

    The new value is on disk (written to path + ".tmp", then renamed over
    path) before it is returned, so a crash never lets a value be used twice.

    Raises:
        ConfigError: the file is corrupt, the counter is exhausted, or the
            filesystem refuses the write.
    """
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        text = "0"  # first boot
    try:
        value = int(text)
    except ValueError:
        raise ConfigError("%s: corrupt boot counter %r; restore it (never lower it)" % (
            path, text[:16]))
    if value < 0 or value >= 0xFFFFFFFF:
        raise ConfigError("%s: boot counter out of range: re-provision the board" % path)
    value += 1
    tmp = path + ".tmp"
    try:
        with open(tmp, "w") as f:
            f.write("%d\n" % value)
        try:
            os.rename(tmp, path)
        except OSError:  # FAT cannot rename over an existing file
            os.remove(path)
            os.rename(tmp, path)
    except OSError as e:
        raise ConfigError("%s: cannot persist the boot counter (%s)" % (path, e))
    return value


def peer_host(addr):
    """The IP text of a recvfrom() source address (tuple on ESP32, raw bytes on unix)."""
    if isinstance(addr, tuple):
        return addr[0]
    import socket

    family, ip, _port = socket.sockaddr(addr)  # type: ignore[attr-defined]
    return socket.inet_ntop(family, ip)  # type: ignore[attr-defined]


async def wifi_up(wifi, timeout_ms):
    """Bring the station interface up and associate; return the IP text.

    wifi: (ssid, password) or None (unix port, or an already-configured board).
    WiFi power saving is switched off (pm=PM_NONE): it delays and batches UDP.
    BOARD ONLY: the unix port has its host's network and returns at once.

    Raises:
        TransportError: not associated within timeout_ms.
    """
    if not ON_BOARD:
        return "host"
    import asyncio

    import network

    wlan = network.WLAN(network.WLAN.IF_STA)
    wlan.active(True)
    wlan.config(pm=network.WLAN.PM_NONE)
    if not wlan.isconnected():
        if wifi is None:
            raise TransportError("no WiFi configured and the station is not connected")
        wlan.connect(wifi[0], wifi[1])
        waited_ms = 0
        while not wlan.isconnected():
            if waited_ms >= timeout_ms:
                wlan.disconnect()
                raise TransportError("WiFi: no association with %r in %d ms" % (
                    wifi[0], timeout_ms))
            await asyncio.sleep_ms(100)
            waited_ms += 100
    return wlan.ifconfig()[0]


class Watchdog:
    """machine.WDT on a board (it cannot be stopped once started); a no-op on
    the unix port or with timeout_ms 0. BOARD ONLY when enabled."""

    def __init__(self, timeout_ms):
        self._wdt = None
        self.timeout_ms = timeout_ms
        if ON_BOARD and timeout_ms > 0:
            from machine import WDT

            self._wdt = WDT(timeout=timeout_ms)

    def feed(self):
        if self._wdt is not None:
            self._wdt.feed()

    def keep_fed(self):
        """After Ctrl-C (mpremote, a person at the REPL): feed from a timer so
        the board is not reset while files are copied. BOARD ONLY."""
        if self._wdt is None:
            return
        from machine import Timer

        wdt = self._wdt
        Timer(0).init(period=max(500, self.timeout_ms // 4), callback=lambda _t: wdt.feed())


class OutputPin:
    """A named output (relay, LED): a GPIO or a one-pixel WS2812 on a board;
    on the unix port it only remembers its value (the handler prints)."""

    def __init__(self, name, spec):
        self.name = name
        self.value = 0
        self._active_low = spec.get("active_low") is True
        self._pin = None
        self._pixel = None
        if ON_BOARD:
            from machine import Pin

            if spec.get("kind") == "ws2812":
                from neopixel import NeoPixel

                self._pixel = NeoPixel(Pin(spec["pin"], Pin.OUT), 1)
            else:
                self._pin = Pin(spec["pin"], Pin.OUT)
        self.set(0)

    def set(self, value):
        """Switch on (non-zero) or off."""
        self.value = 1 if value else 0
        if self._pin is not None:
            self._pin.value(self.value ^ (1 if self._active_low else 0))
        elif self._pixel is not None:
            self._pixel[0] = (0, 24, 0) if self.value else (0, 0, 0)
            self._pixel.write()


def mcu_temperature_milli():
    """The chip's own temperature in milli-degrees Celsius. BOARD ONLY.

    esp32.mcu_temperature() (S2, S3, C3, C6: degrees C) where the chip has
    it, else esp32.raw_temperature() (original ESP32: degrees F, uncalibrated).

    Raises:
        ConfigError: this platform has no internal temperature sensor.
    """
    if not ON_BOARD:
        raise ConfigError("internal_temp: the unix port has no chip temperature sensor")
    import esp32

    read_c = getattr(esp32, "mcu_temperature", None)
    if read_c is not None:
        return int(round(read_c() * 1000))
    return (esp32.raw_temperature() - 32) * 5000 // 9


def adc_millivolts(pin):
    """A function reading pin's voltage in millivolts (0..~3100, 11 dB
    attenuation). BOARD ONLY. Raises ConfigError on the unix port."""
    if not ON_BOARD:
        raise ConfigError("adc: the unix port has no ADC")
    from machine import ADC, Pin

    adc = ADC(Pin(pin), atten=ADC.ATTN_11DB)
    return lambda: adc.read_uv() // 1000


def dht22(pin):
    """A dht.DHT22 on pin. BOARD ONLY. Raises ConfigError on the unix port."""
    if not ON_BOARD:
        raise ConfigError("dht22: the unix port has no GPIO")
    import dht
    from machine import Pin

    return dht.DHT22(Pin(pin))


def i2c(scl, sda):
    """A hardware I2C bus 0 at 100 kHz. BOARD ONLY. Raises ConfigError on unix."""
    if not ON_BOARD:
        raise ConfigError("bme280: the unix port has no I2C bus")
    from machine import I2C, Pin

    return I2C(0, scl=Pin(scl), sda=Pin(sda), freq=100000)


def reset(code=1):
    """Restart: machine.reset() on a board (BOARD ONLY); exit(code) on the unix port."""
    if ON_BOARD:
        import machine

        machine.reset()
    sys.exit(code)


# ---------------------------------------------------------------- deep sleep
# A sleeping board (app/sleep.py) keeps a small state across deep sleep; how
# (RTC memory on an ESP32, a file on the unix port) is in app/sleepstate.py,
# loaded only by sleeping boards (every function here costs every board heap).
# The unix port's "deep sleep" is an exit with SLEEP_EXIT: all RAM is lost,
# and the launcher (`meshlink board run`) starts the firmware again after the
# sleep. BOARD ONLY: machine.deepsleep has not run in CI.
SLEEP_EXIT = 4  # unix port exit code: "in deep sleep; start me again after sleep_ms"


def deep_sleep(sleep_ms):
    """Sleep sleep_ms with everything off, then boot again. Never returns.
    ESP32: machine.deepsleep (BOARD ONLY). Unix port: exit(SLEEP_EXIT)."""
    if ON_BOARD:
        import machine

        machine.deepsleep(sleep_ms)
    sys.exit(SLEEP_EXIT)
