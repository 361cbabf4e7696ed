"""`meshlink sim --topology-file / --failures-file`: the files are checked once
(one typed line, exit 2), and a silent failure is detected by the modelled
heartbeat, not by the simulator's knowledge of who is down."""

import json

import pytest
from meshlink_gw.cli import main
from meshlink_gw.sim.files import check_failures, check_graph
from meshlink_gw.sim.scenarios import scenario

# a ring of 6 with one chord: two disjoint paths between a and d
GRAPH = {"nodes": ["a", "b", "c", "d", "e", "f"],
         "edges": [["a", "b"], ["b", "c"], ["c", "d"], ["a", "e"], ["e", "f"], ["f", "d"],
                   ["b", "e"]]}
QUIET = dict(loss=0.0, latency_sigma=0.0, rate=0.0, bcast_frac=0.0, warmup_s=10.0,
             duration_s=40.0, drain_s=35.0, seeds=1)


def _write(tmp_path, name, obj):
    path = tmp_path / name
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return str(path)


def test_files_drive_a_run_and_the_failed_node_is_down_when_scheduled(tmp_path):
    topo = _write(tmp_path, "t.json", GRAPH)
    fails = _write(tmp_path, "f.json", {"failures": [
        {"node": "c", "at_ms": 20000, "until_ms": 35000, "mode": "silent"}]})
    out = tmp_path / "out"
    rc = main(["sim", "--topology-file", topo, "--failures-file", fails, "--seeds", "1",
               "--warmup-s", "10", "--duration-s", "40", "--flows", "4", "--flow-ms", "250",
               "--strategies", "meshlink", "--out", str(out), "--no-progress", "--no-plots"])
    assert rc == 0
    res = json.loads((out / "results.json").read_text())
    scen = res["scenarios"]["custom"]
    assert scen["topology"] == "file" and scen["nodes"] == 6
    assert scen["failures"] == [{"node": 2, "at_ms": 20000.0, "until_ms": 35000.0,
                                 "mode": "silent"}]
    m = res["aggregate"]["custom"]["meshlink"]
    assert m["mean_degree"]["mean"] == pytest.approx(14 / 6)
    assert m["recovered"]["mean"] == 1.0


def _flow_run(mode, traffic):
    p = scenario("t", topology="file", nodes=6, graph=check_graph(GRAPH),
                 failures=check_failures({"failures": [{"node": "c", "at_ms": 20000,
                                                        "mode": mode}]}, GRAPH["nodes"]),
                 **QUIET)
    from meshlink_gw.sim.engine import Sim
    sim = Sim(p, "meshlink", 1, traffic=traffic)
    sim.run()
    return sim


def test_silent_failure_is_detected_by_probes_of_the_busy_link_only():
    # b sends to d every 200 ms (through c or e); c freezes at 20 s. A
    # neighbour that sent c a directed message gets no error: it probes c
    # every probe interval after the unanswered send and gives up when
    # probe_misses probes are unanswered and the next is due (4 x 500 ms).
    traffic = [(t, 1, 3, 10, 0) for t in range(11000, 40000, 200)]
    sim = _flow_run("silent", traffic)
    assert sim.detect_ms, "nobody noticed the silent failure"
    first = min(sim.detect_ms)
    assert 2000.0 - 1 <= first <= 2000.0 + 200.0 + 1, sim.detect_ms
    assert sim.false_down == 0 and sim.hb_probes > 0
    # a clean failure: every neighbour learns at once, nothing left to detect
    clean = _flow_run("clean", traffic)
    assert clean.detect_ms == [] and clean.link_fail == 0


def test_an_idle_link_to_a_silent_node_waits_for_the_idle_ping():
    # no traffic at all: the next idle ping (every idle_ping_ms) goes
    # unanswered and is the first of the probe_misses probes (the node's
    # meshlink.liveness, which the simulator drives): down 1.5 s after it,
    # within idle_ping_ms + 1.5 s of the failure
    sim = _flow_run("silent", [])
    assert sim.detect_ms and sim.false_down == 0
    assert max(sim.detect_ms) <= 5000.0 + 3 * 500.0 + 1, sim.detect_ms
    assert all(d >= 3 * 500.0 - 1 for d in sim.detect_ms), sim.detect_ms


BAD = [
    ("topology", "{", "--topology-file {path}: not JSON ("),
    ("topology", {"nodes": ["a"], "edges": []}, "--topology-file {path}: needs 2 to 100000 "
                                                "nodes, got 1"),
    ("topology", {"nodes": ["a", "a"], "edges": []}, "--topology-file {path}: node 'a' is "
                                                     "listed twice"),
    ("topology", {"nodes": ["a", "b"], "edges": [["a", "x"]]},
     "--topology-file {path}: edge ['a', 'x'] names an unknown node 'x'"),
    ("topology", {"nodes": ["a", "b"], "edges": [["a", "a"]]},
     "--topology-file {path}: edge ['a', 'a'] links a node to itself"),
    ("topology", {"nodes": ["a", "b"]}, "--topology-file {path}: expected an object with "
                                        "exactly the keys"),
    ("topology", [1, 2], "--topology-file {path}: expected an object"),
    ("failures", {"failures": [{"node": "zz", "at_ms": 1}]},
     "--failures-file {path}: failure 1: node 'zz' is not in the topology"),
    ("failures", {"failures": [{"node": "a", "at_ms": -1}]},
     "--failures-file {path}: failure 1: at_ms -1 must be a number of ms, at least 0"),
    ("failures", {"failures": [{"node": "a", "at_ms": 10, "until_ms": 5}]},
     "--failures-file {path}: failure 1: until_ms 5 must be a number of ms after at_ms 10"),
    ("failures", {"failures": [{"node": "a", "at_ms": 10, "mode": "loud"}]},
     "--failures-file {path}: failure 1: mode 'loud': expected one of silent, clean"),
    ("failures", {"failures": [{"node": "a", "at_ms": 10, "when": 3}]},
     "--failures-file {path}: failure 1: unknown key 'when'"),
    ("failures", {"failures": [{"node": "a", "at_ms": 10}, {"node": "a", "at_ms": 20}]},
     "--failures-file {path}: node 'a' fails again at 20 ms before it is back"),
    ("failures", {"fails": []}, "--failures-file {path}: expected an object {\"failures\""),
]


@pytest.mark.parametrize("which,content,message", BAD, ids=[m for _w, _c, m in BAD])
def test_bad_files_are_one_typed_line_and_exit_2(which, content, message, tmp_path, capsys):
    topo = _write(tmp_path, "t.json", content if which == "topology" else GRAPH)
    argv = ["sim", "--topology-file", topo]
    path = topo
    if which == "failures":
        path = _write(tmp_path, "f.json", content)
        argv += ["--failures-file", path]
    rc = main([*argv, "--out", str(tmp_path / "out"), "--no-progress", "--no-plots"])
    out, err = capsys.readouterr()
    assert rc == 2
    assert err.startswith("meshlink: error: " + message.replace("{path}", path)), err
    assert err.count("\n") == 1 and "Traceback" not in err and out == ""
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("argv,message", [
    (["--topology-file", "/nonexistent/t.json"], "--topology-file /nonexistent/t.json: "
                                                 "cannot read ("),
    (["--preset", "quick", "--topology-file", "x"], "--preset quick: --topology-file and "
                                                    "--failures-file make a custom scenario"),
    (["--nodes", "9", "--topology-file", "x"], "--nodes: the --topology-file sets it"),
    (["--churn", "central", "--failures-file", "x"], "--churn central: give either --churn "
                                                     "or a --failures-file, not both"),
])
def test_file_options_misused_are_one_line(argv, message, tmp_path, capsys):
    rc = main(["sim", *argv, "--out", str(tmp_path / "out"), "--no-progress", "--no-plots"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("meshlink: error: " + message), err
    assert err.count("\n") == 1


def test_failures_without_a_topology_file_name_nodes_by_index(tmp_path):
    fails = _write(tmp_path, "f.json", {"failures": [{"node": "3", "at_ms": 12000,
                                                      "mode": "clean"}]})
    out = tmp_path / "out"
    rc = main(["sim", "--topology", "line", "--nodes", "6", "--degree", "2", "--failures-file",
               fails, "--seeds", "1", "--warmup-s", "5", "--duration-s", "10",
               "--strategies", "meshlink", "--out", str(out), "--no-progress", "--no-plots"])
    assert rc == 0
    res = json.loads((out / "results.json").read_text())
    assert res["scenarios"]["custom"]["failures"][0]["node"] == 3
