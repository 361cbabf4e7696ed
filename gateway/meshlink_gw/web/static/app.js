// MeshLink dashboard: polls /api/state with the token from the page address
// and redraws the topology, the node list, the router counters and the
// message flow. No framework, no network access beyond this node.
"use strict";

const TOKEN = new URLSearchParams(location.search).get("token") || "";
const SVG = "http://www.w3.org/2000/svg";
const POLL_MS = 1000;
const FLOW_POINTS = 60;
let state = null;
let route = [];          // node IDs of the highlighted route
let lastRouted = null;   // router counters of the previous poll
const flow = [];

function el(tag, attrs, text) {
  const e = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4))
                                   : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

async function api(path) {
  const r = await fetch(path, {headers: {Authorization: "Bearer " + TOKEN}, cache: "no-store"});
  if (!r.ok) throw new Error(r.status + " " + (await r.text()));
  return r.json();
}

function label(id) {
  const n = state && state.nodes.find(x => x.node_id === id);
  return n && n.name ? n.name : id.slice(0, 8);
}

function isUp(n) { return n.reachable && n.online !== false; }

function layout(nodes) {
  // this node in the middle, the others on rings by hop count
  const pos = {};
  const me = nodes.find(n => n.self);
  const rest = nodes.filter(n => !n.self);
  if (me) pos[me.node_id] = [320, 220];
  rest.forEach((n, i) => {
    const ring = Math.min(3, n.hops == null ? 3 : Math.max(1, n.hops));
    const r = 60 + ring * 50;
    const a = (2 * Math.PI * i) / Math.max(1, rest.length) - Math.PI / 2;
    pos[n.node_id] = [320 + r * Math.cos(a), 220 + r * Math.sin(a)];
  });
  return pos;
}

function drawGraph() {
  const svg = document.getElementById("graph");
  svg.replaceChildren();
  const pos = layout(state.nodes);
  const onRoute = new Set();
  for (let i = 0; i + 1 < route.length; i++) onRoute.add([route[i], route[i + 1]].sort().join());
  for (const l of state.links) {
    if (!pos[l.a] || !pos[l.b]) continue;
    const cls = (l.direct ? "" : "derived ") + (onRoute.has([l.a, l.b].sort().join()) ? "route" : "");
    const line = el("svg:line", {x1: pos[l.a][0], y1: pos[l.a][1], x2: pos[l.b][0], y2: pos[l.b][1],
                                 class: cls.trim(), "data-a": l.a, "data-b": l.b});
    const q = l.rtt_ms == null ? "" : ` rtt ${l.rtt_ms.toFixed(1)} ms`;
    const s = l.score == null ? "" : ` score ${l.score.toFixed(2)}`;
    line.appendChild(el("svg:title", {}, `${label(l.a)} – ${label(l.b)}${q}${s}`));
    svg.appendChild(line);
    if (l.rtt_ms != null) {  // link quality on the link itself
      svg.appendChild(el("svg:text", {x: (pos[l.a][0] + pos[l.b][0]) / 2 + 6,
                                      y: (pos[l.a][1] + pos[l.b][1]) / 2 - 6, class: "quality"},
                         `${l.rtt_ms.toFixed(1)} ms` + (l.score == null ? "" : ` · ${l.score.toFixed(2)}`)));
    }
  }
  for (const n of state.nodes) {
    const [x, y] = pos[n.node_id];
    const g = el("svg:g", {class: `node ${n.role}${n.self ? " self" : ""}${isUp(n) ? "" : " down"}`,
                           "data-node-id": n.node_id});
    g.appendChild(el("svg:circle", {cx: x, cy: y, r: n.role === "board" ? 10 : 14}));
    g.appendChild(el("svg:text", {x: x, y: y + 28}, n.name || n.node_id.slice(0, 8)));
    g.appendChild(el("svg:title", {}, `${n.node_id} (${n.role})`));
    g.addEventListener("click", () => traceTo(n.node_id));
    svg.appendChild(g);
  }
}

function readingText(r) {
  return `${r.sensor} ${(r.value_milli / 1000).toFixed(1)}${r.unit || ""}`;
}

function drawNodes() {
  const body = document.querySelector("#node-list tbody");
  body.replaceChildren();
  for (const n of state.nodes) {
    const up = isUp(n);
    const tr = el("tr", {"data-node-id": n.node_id, class: (up ? "up" : "down") + (n.self ? " self" : "")});
    const stateText = n.self ? "this node" : up ? (n.role === "board" ? "online" : "reachable")
                                              : n.asleep ? "asleep"
                                              : (n.role === "board" ? "offline" : "unreachable");
    const cells = [n.name || "–", n.node_id, n.role, n.hops == null ? "–" : n.hops,
                   n.next_hop ? label(n.next_hop) : "–",
                   n.last_heard_s == null ? "–" : `${Math.round(n.last_heard_s)} s ago`,
                   n.rtt_ms == null ? "–" : `${n.rtt_ms.toFixed(1)} ms`];
    cells.forEach((c, i) => tr.appendChild(el("td", i === 1 ? {class: "id"} : {}, String(c))));
    const st = el("td", {class: "state"});
    st.appendChild(el("span", {class: "badge " + (up ? "up" : "down")}, stateText));
    tr.appendChild(st);
    const via = n.role === "board" && n.gateway ? `via ${label(n.gateway)}: ` : "";
    tr.appendChild(el("td", {class: "readings"}, via + (n.readings || []).map(readingText).join(", ")));
    body.appendChild(tr);
  }
}

function drawCounters() {
  const r = state.status.routing || {};
  const s = state.status.stats || {};
  const rows = [["peers", state.status.peers.length], ["sent", r.sent], ["delivered", s.delivered],
                ["relayed", s.relayed], ["announcements", s.announces],
                ["duplicates", s.duplicates], ["pending sends", state.status.pending]];
  for (const [k, v] of Object.entries(r.drops || {})) rows.push([`dropped (${k})`, v]);
  const gw = state.status.gateway;
  if (gw) rows.push(["boards online", `${gw.online} / ${gw.boards}`]);
  const body = document.querySelector("#counters tbody");
  body.replaceChildren(...rows.map(([k, v]) => {
    const tr = el("tr", {"data-counter": k});
    tr.appendChild(el("td", {}, k));
    tr.appendChild(el("td", {}, v == null ? "–" : String(v)));
    return tr;
  }));
}

function drawFlow() {
  const r = state.status.routing || {};
  const total = (r.received || 0) + (r.originated || 0);
  if (lastRouted !== null) flow.push(Math.max(0, total - lastRouted));
  lastRouted = total;
  while (flow.length > FLOW_POINTS) flow.shift();
  const max = Math.max(1, ...flow);
  const pts = flow.map((v, i) => `${(i * 300) / (FLOW_POINTS - 1)},${58 - (v * 54) / max}`).join(" ");
  document.getElementById("flow").replaceChildren(el("svg:polyline", {points: pts}));
  const list = document.getElementById("messages");
  list.replaceChildren(...state.messages.slice(-15).reverse().map(m => {
    const what = m.delivered ? "delivered" : m.relayed ? "relayed" : "seen";
    const li = el("li", {}, `${m.type} ${label(m.src)} → ${m.dst ? label(m.dst) : "*"} ` +
                            `(${m.path.length - 1} hop(s), ${what})`);
    li.addEventListener("click", () => showRoute(m.path, "message path"));
    return li;
  }));
}

function showRoute(path, what) {
  route = path || [];
  document.getElementById("route").textContent =
    route.length ? `${what}: ${route.map(label).join(" → ")}` : "No route selected.";
  if (state) drawGraph();
}

async function traceTo(id) {
  document.getElementById("route").textContent = `tracing ${label(id)}…`;
  try {
    const t = await api("/api/trace?node=" + encodeURIComponent(id));
    if (t.ok && t.path) showRoute(t.path, `route to ${label(id)}, ${t.rtt_ms} ms`);
    else document.getElementById("route").textContent = `trace to ${label(id)}: ${t.reason}`;
  } catch (e) {
    document.getElementById("route").textContent = `trace failed: ${e.message}`;
  }
}

async function poll() {
  try {
    state = await api("/api/state");
    const me = state.nodes.find(n => n.self);
    document.getElementById("me").textContent =
      `${me && me.name ? me.name + " · " : ""}${state.status.node_id} · ${state.status.listen}`;
    drawGraph(); drawNodes(); drawCounters(); drawFlow();
    document.getElementById("updated").textContent =
      "updated " + new Date().toLocaleTimeString();
    document.body.dataset.polls = String(Number(document.body.dataset.polls || 0) + 1);
  } catch (e) {
    document.getElementById("updated").textContent = "error: " + e.message;
  }
  setTimeout(poll, POLL_MS);
}

poll();
