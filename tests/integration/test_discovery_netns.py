"""Discovery between two hosts on one LAN, built from network namespaces.

Two namespaces (the hosts) are joined by veth pairs to a bridge in a third
namespace (the LAN switch). Nodes start with no --peer at all: they must find
each other by UDP broadcast beacons and then complete the handshake.
Needs root (CI runs as root); elsewhere it is skipped with the reason.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from helpers.procs import Node

SUBNET = "10.77.{n}.{h}"


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


def _namespaces_allowed() -> str | None:
    if os.geteuid() != 0:
        return "needs root to create network namespaces"
    if shutil.which("ip") is None:
        return "iproute2 (ip) is not installed"
    probe = f"mlprobe{os.getpid()}"
    try:
        _ip("netns", "add", probe)
        _ip("netns", "del", probe)
    except subprocess.CalledProcessError as e:
        return f"this machine forbids network namespaces: {e.stderr.decode().strip()}"
    return None


@pytest.fixture
def lan():
    reason = _namespaces_allowed()
    if reason:
        pytest.skip(reason)
    tag = f"{os.getpid() % 10000}"
    net = os.getpid() % 200 + 20
    sw, hosts = f"mlsw{tag}", [f"mlh{tag}a", f"mlh{tag}b"]
    try:
        _ip("netns", "add", sw)
        _ip("-n", sw, "link", "add", "br0", "type", "bridge")
        _ip("-n", sw, "link", "set", "br0", "up")
        addrs = []
        for i, host in enumerate(hosts):
            _ip("netns", "add", host)
            _ip("link", "add", f"v{tag}{i}", "netns", host, "type", "veth",
                "peer", "name", f"p{tag}{i}", "netns", sw)
            _ip("-n", sw, "link", "set", f"p{tag}{i}", "master", "br0", "up")
            addr = SUBNET.format(n=net, h=i + 1)
            _ip("-n", host, "addr", "add", f"{addr}/24", "brd", "+", "dev", f"v{tag}{i}")
            _ip("-n", host, "link", "set", f"v{tag}{i}", "up")
            _ip("-n", host, "link", "set", "lo", "up")
            addrs.append(addr)
        yield hosts, addrs, SUBNET.format(n=net, h=255)
    finally:
        for ns in [*hosts, sw]:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)


def test_two_hosts_discover_each_other(lan, tmp_path):
    hosts, addrs, broadcast = lan
    cfg = tmp_path / "lan.toml"
    cfg.write_text(f'[node]\ndiscovery = true\ndiscovery_broadcast = "{broadcast}"\n'
                   "beacon_interval_ms = 300\n")
    nodes = []
    try:
        for host, addr in zip(hosts, addrs, strict=True):
            nodes.append(Node(tmp_path / host, listen=f"{addr}:7400",
                                     extra=("--config", str(cfg)),
                                     prefix=("ip", "netns", "exec", host)).start())
        a, b = nodes
        st = a.wait_peers(1)
        assert st["peers"][0]["node_id"] == b.node_id
        assert st["peers"][0]["address"].startswith(addrs[1] + ":")
        # the discovered link carries real traffic
        out = a.cli("send", "--to", b.node_id, "found you")
        assert out.returncode == 0, out.stdout + out.stderr
        got = b.wait_inbox(lambda items: items)
        assert [m["text"] for m in got] == ["found you"]
    finally:
        for node in nodes:
            node.stop()
