# MeshLink protocol core. Rule: no I/O, no clock, no tasks, no board imports.
# Bytes and now_ms go in; events and frames come out. Runs unchanged on
# MicroPython (>=1.22) and CPython (>=3.11).
PROTOCOL_VERSION = 1
