"""Run (scenario, strategy, seed) jobs on a process pool with a progress bar."""

from __future__ import annotations

import gc
import json
import multiprocessing as mp
import os
import signal
import sys
import time

from . import oracle  # noqa: F401  (registers the oracle strategy)
from .engine import Sim
from .metrics import summarize


def run_one(p: dict, strategy: str, seed: int, decision_log_path=None, traffic=None) -> dict:
    """One simulation; returns {"scenario", "strategy", "seed", "summary"}.

    traffic: optional fixed schedule [(t_ms, src, dst or None, bytes, flow or None)]
    replacing the scenario's random traffic (the tests use known schedules).
    """
    log = None
    fh = None
    if decision_log_path:
        fh = open(decision_log_path, "a", encoding="utf-8")

        def log(rec, _w=fh.write):
            _w(json.dumps(rec, separators=(",", ":")) + "\n")
    was = gc.isenabled()
    gc.disable()  # millions of small route-table objects: full collections cost seconds
    try:
        sim = Sim(p, strategy, seed, decision_log=log, traffic=traffic)
        sim.run()
        summary = summarize(sim)
        del sim
    finally:
        if was:
            gc.enable()
        if fh is not None:
            fh.close()
    return {"scenario": p["name"], "strategy": strategy, "seed": seed, "summary": summary}


def _job(args):
    p, strategy, seed, log_path = args
    t = time.perf_counter()
    r = run_one(p, strategy, seed, log_path)
    r["job_wall_s"] = time.perf_counter() - t
    return r


class Progress:
    """A one-line progress bar on stderr (silent when not a terminal unless forced)."""

    def __init__(self, total: int, enabled: bool = True, stream=None):
        self.total = max(total, 1)
        self.done = 0
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.t0 = time.perf_counter()
        self.events = 0

    def step(self, label: str = "", events: int = 0):
        self.done += 1
        self.events += events
        if not self.enabled:
            return
        frac = self.done / self.total
        el = time.perf_counter() - self.t0
        eta = el / frac - el if frac > 0 else 0
        bar = "#" * int(30 * frac)
        self.stream.write(f"\r[{bar:<30}] {self.done}/{self.total} {el:5.0f}s "
                          f"eta {eta:4.0f}s {label[:40]:<40}")
        if self.done == self.total:
            self.stream.write("\n")
        self.stream.flush()


def run_jobs(jobs: list, workers: int = 2, progress: bool = True, stream=None) -> list:
    """jobs: list of (scenario dict, strategy, seed, decision_log_path or None).

    Longest jobs (most nodes) are started first so the pool stays balanced.
    """
    order = sorted(range(len(jobs)), key=lambda i: -_cost(jobs[i]))
    bar = Progress(len(jobs), progress, stream)
    results: list = [None] * len(jobs)
    if workers <= 1 or len(jobs) == 1:
        for i in order:
            r = _job(jobs[i])
            results[i] = r
            bar.step(f"{r['scenario']} {r['strategy']} s{r['seed']}",
                     r["summary"]["events"])
        return results
    ctx = mp.get_context("fork" if hasattr(os, "fork") else "spawn")
    # Ctrl-C reaches the whole process group: only this process handles it
    # (the pool is terminated on the way out), so no worker prints a traceback.
    # It is held back while the pool starts: an interrupt inside Pool() would
    # leave no pool object to terminate.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        pool = ctx.Pool(workers, initializer=_ignore_sigint)
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    try:
        it = pool.imap_unordered(_indexed, [(i, jobs[i]) for i in order])
        for i, r in it:
            results[i] = r
            bar.step(f"{r['scenario']} {r['strategy']} s{r['seed']}",
                     r["summary"]["events"])
        pool.close()
    except BaseException:
        pool.terminate()
        raise
    finally:
        pool.join()
    return results


def _ignore_sigint():
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _indexed(arg):
    i, job = arg
    return i, _job(job)


def _cost(job) -> float:
    p, strategy, _seed, _log = job
    weight = {"flood": 6.0, "seed": 1.5, "meshlink": 2.0, "oracle": 1.0}.get(strategy, 2.0)
    rate = p["rate"] + (p["flows"] * 1000.0 / p["flow_ms"] if p["flows"] else 0.0)
    return p["nodes"] * p["degree"] * (p["duration_s"] + p["warmup_s"]) * rate * weight
