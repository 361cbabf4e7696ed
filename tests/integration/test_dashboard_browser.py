"""The dashboard in a real headless Chromium (Debian's chromium, driven by
Playwright) against real processes: a gateway with a board, a relay node and
an edge node. The page loads with the token, lists all four, shows the
board's readings, traces a route on click, and marks the edge node
unreachable once it leaves. Screenshots are saved under the test's tmp dir
(and to $MESHLINK_SCREENSHOT_DIR if set: docs/img/dashboard.png comes from
there)."""

from __future__ import annotations

import os
import shutil
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from boards_harness import GatewayProcess, add_board
from helpers import DEADLINE_S
from helpers.procs import Board

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def _browser_or_skip():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    missing = ("playwright (pip, the [dev] extra)" if sync_playwright is None else
               None if os.path.exists(CHROMIUM) else f"{CHROMIUM} (apt-get install chromium)")
    if missing:
        if os.environ.get("CI"):  # .ci/run installs both: missing there is a defect
            pytest.fail(f"the dashboard test needs {missing}")
        pytest.skip(f"the dashboard test needs {missing}")
    return sync_playwright


def _status(url: str, headers: dict | None = None) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {})) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def test_dashboard_shows_the_mesh_and_follows_a_node_leaving(tmp_path, procs, spawn):
    sync_playwright = _browser_or_skip()
    gw = GatewayProcess(tmp_path / "gw", extra=("--name", "gateway-1",
                                                "--dashboard", "127.0.0.1:0"))
    procs.append(gw)
    gw.start()
    relay = spawn("relay", peers=(gw.listen,), extra=("--name", "relay"))
    edge = spawn("edge", peers=(relay.listen,), extra=("--name", "edge"))
    board = add_board(gw.data_dir, "greenhouse", gateway=gw.board_udp)
    procs.append(Board(gw.data_dir, "greenhouse"))
    relay.wait_peers(2)
    url = gw.started["dashboard"]
    assert url and url.startswith("http://127.0.0.1:") and "token=" in url
    base = url.split("?")[0]
    token = url.split("token=")[1]
    # the data needs the token; the page's static files carry none
    assert _status(base + "api/state") == 401 and _status(base + "metrics") == 401
    assert _status(base + "api/state?token=wrong") == 401
    assert _status(base + "metrics", {"Authorization": f"Bearer {token}"}) == 200

    ids = {"gateway-1": gw.node_id, "relay": relay.node_id, "edge": edge.node_id,
           "greenhouse": board["node_id"]}
    shots = [tmp_path / "dashboard.png", tmp_path / "dashboard-edge-left.png"]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            page = context.new_page()
            page.goto(url)
            wait_ms = DEADLINE_S * 1000
            for name, node_id in ids.items():
                row = page.locator(f'#node-list tr[data-node-id="{node_id}"]')
                row.wait_for(timeout=wait_ms)
                page.wait_for_function(
                    "([id, name]) => { const r = document.querySelector("
                    "`#node-list tr[data-node-id=\"${id}\"]`);"
                    " return r && r.classList.contains('up') && r.textContent.includes(name); }",
                    arg=[node_id, name], timeout=wait_ms)
            board_row = f'#node-list tr[data-node-id="{board["node_id"]}"] td.readings'
            page.wait_for_function(
                f"() => /temp \\d/.test(document.querySelector('{board_row}').textContent)",
                timeout=wait_ms)
            assert "via gateway-1" in page.locator(board_row).inner_text()
            assert page.locator("#graph g.node").count() == 4
            assert page.locator("#graph line").count() >= 3  # gw-board, gw-relay, relay-edge
            # a click on the edge node traces the route: gateway -> relay -> edge
            page.locator(f'#graph g.node[data-node-id="{edge.node_id}"] circle').click()
            try:
                page.wait_for_function(
                    "() => document.getElementById('route').textContent"
                    ".startsWith('route to edge')", timeout=wait_ms)
            except Exception as e:  # say what the page shows instead
                raise AssertionError(page.locator("#route").inner_text()) from e
            assert page.locator("#route").inner_text().split(", ")[0] == "route to edge"
            assert "gateway-1 → relay → edge" in page.locator("#route").inner_text()
            assert page.locator("#graph line.route").count() == 2
            page.screenshot(path=str(shots[0]), full_page=True)

            edge.stop()
            page.wait_for_function(
                "id => { const r = document.querySelector("
                "`#node-list tr[data-node-id=\"${id}\"]`);"
                " return r && r.classList.contains('down'); }",
                arg=edge.node_id, timeout=wait_ms)
            assert "down" in (page.locator(f'#graph g.node[data-node-id="{edge.node_id}"]')
                              .get_attribute("class") or "")
            relay_row = page.locator(f'#node-list tr[data-node-id="{relay.node_id}"]')
            assert "up" in (relay_row.get_attribute("class") or "")
            page.screenshot(path=str(shots[1]), full_page=True)
        finally:
            browser.close()
    assert all(p.stat().st_size > 10_000 for p in shots)
    out_dir = os.environ.get("MESHLINK_SCREENSHOT_DIR")
    if out_dir:
        shutil.copy(shots[0], Path(out_dir) / "dashboard.png")
