"""`make demo`: a local mesh with boards on loopback, shown step by step.

Starts real processes in a line, gateway A - full node - gateway B, so that
anything between A and B is relayed by the node over hybrid post-quantum
links. Sends a directed message and a broadcast across it. Then provisions
three simulated boards (two behind A, one behind B) with `meshlink board add`
and runs their deploy bundles with `meshlink board run` on the MicroPython
unix port (or, where there is no MicroPython, e.g. an aarch64 Pi, the same
firmware on CPython through meshlink_gw.mpy_shim). A temperature reading from
a board behind A crosses the mesh and triggers the relay of the board behind
B. Prints the reading, the hops and the action, then stops every process it
started and exits 0. Ctrl-C stops every process it started too, and exits 130
without a traceback.
"""

from __future__ import annotations

import json
import shutil
import signal
import sys
from pathlib import Path

from meshlink_gw.boards.bundle import find_micropython

from examples.gateway_proc import BoardProcess, GatewayProcess, meshlink
from examples.node_proc import NodeProcess

ROOT = Path(".demo")
BOARD_SETTINGS = ("ping_interval_ms=1000", "link_timeout_ms=5000", "heap_report_ms=0",
                  "hello_timeout_ms=500", "backoff_min_ms=300", "backoff_max_ms=2000")


def say(text: str) -> None:
    print(text, flush=True)


def start_line(procs: list[NodeProcess]) -> None:
    """gateway A - full node - gateway B (the middle one is a plain `meshlink node`),
    appended to procs as each starts, so an interrupted start still stops them."""
    names = ("gateway A", "node     ", "gateway B")
    for i, dirname in enumerate(("gwA", "node", "gwB")):
        peers = (procs[-1].listen,) if procs else ()
        proc: NodeProcess = NodeProcess(ROOT / dirname, peers=peers) if i == 1 else \
            GatewayProcess(ROOT / dirname, peers=peers)
        procs.append(proc)
        proc.start()
        boards = (f"  boards udp {proc.board_udp} tcp {proc.board_tcp}"
                  if isinstance(proc, GatewayProcess) else "")
        say(f"  {names[i]}  {proc.node_id}  mesh {proc.listen}{boards}"
            + (f"  (links to {names[i - 1].strip()})" if peers else ""))


def directed(src: NodeProcess, dst: NodeProcess) -> None:
    say("\n2. Gateway A sends a directed message to gateway B; the node relays it.")
    out = src.cli("send", "--json", "--to", dst.node_id, "hello from A across the mesh")
    res = json.loads(out.stdout)
    item = dst.wait_received(res["message_id"])
    latency_ms = item["received_unix_ms"] - res["sent_unix_ms"]
    say(f"   B got: {item['text']!r}  hops={item['hops']}  one-way {latency_ms} ms "
        "(clock resolution 1 ms)")
    say(f"   A sees: {'DELIVERED' if res['delivered'] else 'FAILED'}, end-to-end ack after "
        f"{res['rtt_ms']} ms, attempts={res['attempts']}")
    if not res["delivered"]:
        raise RuntimeError("directed message not acknowledged")


def broadcast(line: list[NodeProcess]) -> None:
    say("\n3. Gateway B broadcasts; everyone else gets it once.")
    out = line[-1].cli("send", "--json", "--broadcast", "broadcast from the far end")
    mid = json.loads(out.stdout)["message_id"]
    for name, node in (("A", line[0]), ("node", line[1])):
        item = node.wait_received(mid)
        say(f"   {name} got: {item['text']!r}  hops={item['hops']}")


def add_board(gw: GatewayProcess, name: str, *args: str) -> dict:
    out = meshlink("board", "add", name, "--board", "unix", "--data-dir", str(gw.data_dir),
                   "--json", *args, *[a for s in BOARD_SETTINGS for a in ("--set", s)])
    if out.returncode != 0:
        raise RuntimeError(f"board add {name}: {out.stderr.strip()}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def sensor(name: str, base: float, unit: str, interval_ms: int = 1500) -> str:
    return json.dumps({"name": name, "type": "sim", "interval_ms": interval_ms, "unit": unit,
                       "base": base, "amplitude": 1, "period_ms": 20000, "noise": 0.1,
                       "seed": 11})


def boards(line: list, started: list[BoardProcess], cpython: bool) -> None:
    gw_a, node, gw_b = line
    runtime = "the MicroPython unix port (-X heapsize=112K)" if not cpython else \
        "CPython through meshlink_gw.mpy_shim (as on an aarch64 Pi)"
    say("\n4. Provisioning three boards with `meshlink board add` (fresh PSK and node ID "
        "each);\n   they run their deploy bundles on " + runtime + ".")
    relay = add_board(gw_b, "pump", "--gateway", gw_b.board_udp, "--sensor",
                      sensor("level", 40, "%", 5000), "--rule", json.dumps(
                          {"from": "*", "sensor": "temp", "op": ">", "value": 25,
                           "action": "relay", "arg": 1}), "--rule", json.dumps(
                          {"from": "*", "sensor": "temp", "op": "<=", "value": 25,
                           "action": "relay", "arg": 0}))
    hot = add_board(gw_a, "greenhouse", "--gateway", gw_a.board_udp, "--sensor",
                    sensor("temp", 27.5, "C"), "--route", f"temp={relay['node_id']}")
    shed = add_board(gw_a, "shed", "--gateway", gw_a.board_tcp, "--transport", "tcp",
                     "--sensor", sensor("humidity", 61, "%RH", 1000))
    for info, side, where in ((hot, "A", "temp sensor, readings routed to pump"),
                              (shed, "A", "humidity sensor over TCP, readings to gateway A"),
                              (relay, "B", "relay: on when temp > 25 C")):
        say(f"   {info['name']:<10} behind gateway {side}  node {info['node_id']}  "
            f"{info['transport']}  ({where})")
    for gw, name in ((gw_b, "pump"), (gw_a, "greenhouse"), (gw_a, "shed")):
        started.append(BoardProcess(gw.data_dir, name, cpython=cpython))
    b_pump, b_hot, b_shed = started[-3:]
    for b in (b_pump, b_hot, b_shed):
        m = b.wait_for(r"LINK up (\w+) (\S+) sid=(\w+)")[0]
        say(f"   {b.name:<10} LINK up over {m.group(1)} to {m.group(2)}, session {m.group(3)}")

    say("\n5. greenhouse (behind A) reads its temperature; the reading crosses the mesh "
        "to pump (behind B).")
    reading = b_hot.wait_for(r"READING temp seq=(\d+) value_milli=(\d+) unit=C", timeout_s=20)[0]
    say(f"   greenhouse  READING temp seq={reading.group(1)} "
        f"{int(reading.group(2)) / 1000:.3f} C")
    hop = gw_b.wait_log(r"mesh message \S+ from (\S+) for board pump, (\d+) hop\(s\)",
                        timeout_s=20)[0]
    say(f"   gateway B   queued it for pump: from {hop.group(1)}, {hop.group(2)} hops "
        "(greenhouse -> gateway A -> node -> gateway B)")
    rx = b_pump.wait_for(r"RX reading from (\S+) temp=(\d+)", timeout_s=20)[0]
    say(f"   pump        received temp={int(rx.group(2)) / 1000:.3f} C from {rx.group(1)}")
    action = b_pump.wait_for(r"ACTION relay=1 .*", timeout_s=20)[0]
    say(f"   pump        {action.group(0)}")
    ack = gw_a.wait_log(r"board greenhouse: message \S+ acknowledged end to end after (\S+) ms",
                        timeout_s=20)[0]
    say(f"   gateway A   end-to-end ack for greenhouse's reading after {ack.group(1)} ms "
        "(sent only once pump confirmed it)")

    say("\n6. The node sends pump a command (a directed mesh message to the board's node ID).")
    cmd = json.dumps({"kind": "command", "action": "led", "arg": 1})
    out = node.cli("send", "--json", "--to", relay["node_id"], cmd)
    res = json.loads(out.stdout)
    led = b_pump.wait_for(r"ACTION led=1 .*")[0]
    say(f"   pump        {led.group(0)}")
    say(f"   node sees:  {'DELIVERED' if res['delivered'] else 'FAILED'} after "
        f"{res['rtt_ms']} ms")
    if not res["delivered"]:
        raise RuntimeError("the command to pump was not acknowledged")

    b_shed.wait_for(r"READING humidity", count=2)
    got = [i for i in gw_a.received() if i["from"] == shed["node_id"]]
    if got:
        body = json.loads(got[-1]["text"])
        say(f"\n7. gateway A's inbox has {len(got)} humidity reading(s) from shed (TCP), "
            f"latest {body['value_milli'] / 1000:.1f} {body['unit']}.")
    rows = gw_a.boards()
    say("   `meshlink board list` on gateway A:")
    for row in rows.values():
        say(f"     {row['name']:<10} {row['board_id']}  {row['transport']}  "
            f"online={'yes' if row['online'] else 'no'}")


def main(argv: list[str] | None = None) -> int:
    """Run the demo; `--cpython` runs the boards on CPython even if MicroPython exists."""
    argv = sys.argv[1:] if argv is None else argv
    cpython = "--cpython" in argv or find_micropython() is None
    shutil.rmtree(ROOT, ignore_errors=True)
    ROOT.mkdir(parents=True)
    say("MeshLink demo: gateway A - full node - gateway B on loopback, boards behind "
        "the gateways.")
    say("Mesh links run the hybrid X25519 + ML-KEM-768 handshake, then AES-256-GCM; "
        "board links a per-board PSK session (AES-256-CTR + HMAC-SHA256).\n")
    say("1. Starting the mesh")
    line: list[NodeProcess] = []
    started: list[BoardProcess] = []
    try:
        start_line(line)
        line[1].wait_peers(2)
        say("   the node links to both gateways; A and B are not linked to each other.")
        directed(line[0], line[2])
        broadcast(line)
        boards(line, started, cpython)
    except Exception as e:  # the demo's top level: report plainly, still clean up
        say(f"\ndemo failed: {e}\n(logs in {ROOT}/*.log)")
        for b in started:
            say(f"--- board {b.name} output (tail) ---\n" + "\n".join(b.lines[-15:]))
        return 1
    except KeyboardInterrupt:  # Ctrl-C: the processes below are stopped all the same
        say("\nInterrupted (Ctrl-C).")
        return 130
    finally:
        # a second Ctrl-C must not leave processes behind; each stop is bounded
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        for b in started:
            b.stop()
        for proc in reversed(line):
            proc.stop()
        say("\nAll demo processes stopped.")
    return 0


if __name__ == "__main__":
    sys.exit(main())

