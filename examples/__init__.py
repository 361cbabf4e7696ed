"""Runnable examples and the process harnesses behind them (not installed).

    demo.py         `make demo`: gateway A - node - gateway B, three boards
    node_proc.py    `meshlink node` / `meshlink gateway` as child processes
    gateway_proc.py gateways and simulated boards (`meshlink board run`) as child processes
    sim_board.py    CPython stand-in boards speaking the board link (bench, adversarial tests)
    localbroker.py  a throwaway mosquitto on a free loopback port (tests, bench)

Run from the repository root (`python -m examples.demo`); tests and bench/
import these modules as `examples.*`.
"""
