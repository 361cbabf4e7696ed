# MeshLink developer targets. Every target depends on setup, so a fresh clone
# needs no manual step.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
MPY := $(VENV)/bin/micropython
# Budget for the core on an ESP32 without PSRAM (GUIDE / MICROPYTHON.md).
MPY_CORE_HEAP := 96K
PYTHON_BOOT ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	command -v $$p >/dev/null && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
	&& { echo $$p; break; }; done)

.PHONY: setup test test-py test-mpy lint fuzz bench soak demo sim flash clean vectors

setup: $(VENV)/.setup-done

$(VENV)/.setup-done: pyproject.toml
	@test -n "$(PYTHON_BOOT)" || { echo "error: Python 3.11+ not found" >&2; exit 1; }
	$(PYTHON_BOOT) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	@# [flash]: esptool and mpremote, the tools `make flash` / `meshlink board flash` use
	$(PY) -m pip install -q -e '.[dev,flash]'
	@# cryptography-vectors must match the installed cryptography release.
	$(PY) -m pip install -q "cryptography-vectors==$$($(PY) -c 'import cryptography; print(cryptography.__version__)')"
	@# ESP32 stubs for the firmware type check (make lint and its tests)
	$(PY) -m pip install -q micropython-esp32-stubs --target typings --no-user
	touch $@

test: setup
	@echo "== CPython: pytest =="
	$(PY) -m pytest -q
	@echo "== MicroPython unix port: core tests under a $(MPY_CORE_HEAP) heap (router modules: 112K) =="
	$(PY) tools/run_mpy_tests.py --heap $(MPY_CORE_HEAP)

test-py: setup
	$(PY) -m pytest -q

test-mpy: setup
	$(PY) tools/run_mpy_tests.py --heap $(MPY_CORE_HEAP)

# Every decoder a remote party reaches, 16 000 inputs each (15 decoders: over
# 200 000 in total); `make test` runs the same properties at 300 inputs each.
FUZZ_EXAMPLES ?= 16000
fuzz: setup
	MESHLINK_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(PY) -m pytest -q tests/fuzz --timeout=1800 --hypothesis-show-statistics

lint: setup
	$(VENV)/bin/ruff check shared gateway firmware tests tools boards bench examples
	@# gateway/ (CPython) with the [tool.mypy] settings in pyproject.toml
	$(VENV)/bin/mypy
	@# firmware/ and shared/ against micropython-esp32-stubs: a call the board lacks fails here
	bash tools/lint_firmware.sh

# bench/ and examples/ are not installed: run from the repository root.
bench: setup
	$(PY) -m bench

# Long run under load (not in `make test`): make soak SOAK_MIN=5 (default 30 minutes)
SOAK_MIN ?= 30
soak: setup
	$(PY) -m bench.soak --minutes $(SOAK_MIN)

demo: setup
	$(PY) -m examples.demo

sim: setup
	$(PY) -m meshlink_gw.sim --preset report --out sim-results

# Flash a provisioned board: make flash BOARD=<name from `meshlink board add`> PORT=/dev/ttyUSB0
DATA_DIR ?= $(HOME)/.local/share/meshlink
flash: setup
	@test -n "$(BOARD)" -a -n "$(PORT)" || { echo "usage: make flash BOARD=name PORT=/dev/ttyUSB0 [DATA_DIR=...]" >&2; exit 2; }
	$(VENV)/bin/meshlink board flash $(BOARD) --port $(PORT) --data-dir $(DATA_DIR)

vectors: setup
	$(PY) tools/gen_message_vectors.py
	$(PY) tools/gen_boardlink_vectors.py
	$(PY) tools/gen_link_vectors.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis sim-results .demo
