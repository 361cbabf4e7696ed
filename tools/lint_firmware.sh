#!/usr/bin/env bash
# Type-check the board code against the MicroPython ESP32 stubs: firmware/
# and shared/meshlink/ (the modules boards run). A call that does not exist
# on the board (time.monotonic, socket.getsockname, ...) fails the check.
# Installs micropython-esp32-stubs into ./typings on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
if [ ! -f typings/machine.pyi ] || [ ! -d typings/stdlib ]; then
    echo "lint_firmware: installing micropython-esp32-stubs into ./typings" >&2
    "$VENV/bin/pip" install -q micropython-esp32-stubs --target typings --no-user
fi
exec "$VENV/bin/mypy" --config-file tools/mypy_firmware.ini firmware shared/meshlink "$@"
