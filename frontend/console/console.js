// The dispatcher console: call intake, the incident queue, drive-time recommendations, one-click assignment,
// the fleet live on the map. State comes from the HTTP API once, then from the console websocket (every event,
// replayed after a reconnect), with a quiet resync over HTTP after structural changes.

import { Session, login, call, problemText } from "/static/shared/api.js";
import { LiveSocket } from "/static/shared/live.js";
import * as i18n from "/static/shared/i18n.js";
import { regionMap } from "/static/shared/basemap.js";
import { listenForUnlock, tones } from "/static/shared/sound.js";

const { t } = i18n;
const L = window.L;
const $ = (sel) => document.querySelector(sel);
const session = new Session(sessionStorage, "dispatch.console");
const PRIORITIES = ["echo", "delta", "charlie", "bravo", "alpha", "omega"];
const STATUSES = ["available", "dispatched", "en_route", "on_scene", "transporting", "at_hospital", "returning", "out_of_service"];
const OPEN = new Set(["received", "dispatched", "on_scene", "transporting", "at_hospital"]);

const state = {
  cards: new Map(),
  units: new Map(),
  incidents: new Map(),
  hospitals: new Map(),
  stations: [],
  selected: null,
  recs: null,
  detail: null,
  routes: new Map(), // incident id -> [{unit_id, geometry}]
  eta: new Map(), // unit id -> live ETA message data
  hospitalFor: new Map(), // unit id -> hospital data from its transporting event
  location: null, // {lat, lon} of the call being taken
  idempotencyKey: null,
  callStartedAt: null, // when the dispatcher began taking this call: its eTimes.01, sent with it
  unitFilter: "",
  ackTimeoutS: 30,
};

let map, socket, locationMarker, routeLayer;
const markers = { units: new Map(), incidents: new Map(), hospitals: new Map() };

function esc(s) {
  return String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

function uuid() {
  return crypto.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random().toString(16).slice(2)}`;
}

// ---------------------------------------------------------------- login

async function start() {
  // browsers start sound only after a user gesture: any click or key of the shift unlocks it (also after F5)
  listenForUnlock();
  session.onUnauthorized = () => {
    session.clear();
    if (socket) socket.stop();
    showLogin();
  };
  i18n.apply();
  $("#lang").value = i18n.lang;
  $("#lang").onchange = (e) => i18n.setLang(e.target.value, renderAll);
  $("#login-form").onsubmit = async (e) => {
    e.preventDefault();
    $("#login-error").textContent = "";
    try {
      const s = await login(session, $("#login-user").value.trim(), $("#login-pass").value);
      if (s.role === "crew") {
        session.clear();
        location.href = "/crew/";
        return;
      }
      await enter();
    } catch (err) {
      $("#login-error").textContent = `${t("login_failed")}: ${problemText(err)}`;
    }
  };
  $("#logout").onclick = () => {
    session.clear();
    location.reload();
  };
  if (session.token) await enter().catch(() => showLogin());
  else showLogin();
}

function showLogin() {
  $("#login").classList.remove("hidden");
  $("#login-user").focus();
}

async function enter() {
  const s = session.get();
  $("#who").textContent = `${s.user} (${s.role})`;
  const [region, cards] = await Promise.all([
    fetch("/api/v1/region").then((r) => (r.ok ? r.json() : null)).catch(() => null),
    call(session, "/triage/cards"),
  ]);
  if (!map) setupMap(region);
  for (const c of cards) state.cards.set(c.code, c);
  $("#login").classList.add("hidden");
  setupIntake();
  setupPanels();
  if (socket) socket.stop();
  socket = new LiveSocket("/ws/console", {
    token: session.token,
    batch: true,
    handlers: {
      onMessage,
      onState: (st) => {
        const el = $("#conn");
        el.className = `conn ${st}`;
        el.textContent = t(st === "open" ? "live" : st === "closed" ? "offline" : "reconnecting");
        el.dataset.state = st;
      },
      onAuthFailed: () => session.onUnauthorized(),
      onReset: () => resyncSoon(0),
    },
  }).start();
  if (!state.ticking) state.ticking = setInterval(tick, 1000);
  tick();
}

// ---------------------------------------------------------------- state from HTTP

// The HTTP snapshot may be older than events that arrived while it was read: those are applied again on top.
let duringResync = null;
async function resync() {
  const mine = [];
  duringResync = mine;
  let snapshot;
  try {
    snapshot = await Promise.all([
      call(session, "/units"),
      call(session, "/incidents?open=true&limit=500"),
      call(session, "/hospitals"),
      state.stations.length ? Promise.resolve(state.stations) : call(session, "/stations"),
    ]);
  } finally {
    if (duringResync === mine) duringResync = null;
  }
  const [units, incidents, hospitals, stations] = snapshot;
  state.units = new Map(units.map((u) => [u.id, u]));
  state.incidents = new Map(incidents.map((i) => [i.id, i]));
  state.hospitals = new Map(hospitals.map((h) => [h.id, h]));
  state.stations = stations;
  for (const msg of mine) applyEvent(msg);
  forgetClosed();
  renderAll();
  if (state.selected && !state.incidents.has(state.selected)) select(null);
}

let resyncTimer = null;
function resyncSoon(ms = 1500) {
  clearTimeout(resyncTimer);
  resyncTimer = setTimeout(() => resync().catch(() => {}), ms);
}

// ---------------------------------------------------------------- live events

function onMessage(msg) {
  if (msg.type === "hello") {
    state.ackTimeoutS = msg.ack_timeout_s || 30;
    state.replaying = msg.replay_from !== null && msg.replay_from !== undefined;
    state.missed = [];
    resync().catch((err) => toast(problemText(err)));
    return;
  }
  if (msg.type === "caught_up") {
    // calls that came in while this console was cut off: alarm for those still waiting for a unit
    state.replaying = false;
    for (const id of state.missed) {
      const inc = state.incidents.get(id);
      if (inc && inc.status === "received") alarmNew(inc);
    }
    state.missed = [];
    return;
  }
  if (msg.type === "live") return onLive(msg);
  if (msg.type !== "event") return;
  if (duringResync) duringResync.push(msg);
  applyEvent(msg);
  alertFor(msg);
  forgetClosed();
  if (!["unit.position", "unit.connected", "unit.disconnected", "hospital.diversion"].includes(msg.kind)) resyncSoon();
  renderAll();
  if (state.selected && msg.incident_id === state.selected && msg.kind !== "unit.position") refreshDetail();
  else if (state.selected && ["unit.assigned", "unit.status", "incident.cancelled"].includes(msg.kind)) refreshRecsSoon();
}

function alarmNew(inc) {
  const card = state.cards.get(inc.complaint);
  alarm(t("alert_new", { priority: inc.priority.toUpperCase(), id: inc.id, complaint: i18n.cardName(card) }), "new", `new-${inc.id}`, inc.id);
}

function alertFor(msg) {
  const d = msg.data || {};
  if (msg.kind === "incident.created" && (d.incident.priority === "echo" || d.incident.priority === "delta")) {
    if (state.replaying) state.missed.push(d.incident.id);
    else alarmNew(d.incident);
  } else if (msg.kind === "assignment.unacknowledged" && !state.replaying) {
    const unit = state.units.get(msg.unit_id);
    if (unit && unit.assignment && !unit.assignment.acknowledged_at) {
      alarm(t("alert_unack", { callsign: unit.callsign, id: msg.incident_id, s: Math.round(d.waiting_s || state.ackTimeoutS) }), "unack", `unack-${msg.unit_id}`, msg.incident_id);
    }
  } else if (msg.kind === "unit.assigned") {
    dismissAlarm(`new-${msg.incident_id}`); // someone took it
  } else if (msg.kind === "unit.acknowledged" || (msg.kind === "unit.status" && d.status !== "dispatched")) {
    dismissAlarm(`unack-${msg.unit_id}`);
  }
}

// routes, ETAs and alarms of incidents that left the queue
function forgetClosed() {
  for (const id of state.routes.keys()) if (!state.incidents.has(id)) state.routes.delete(id);
  for (const [uid] of state.eta) {
    const u = state.units.get(uid);
    if (!u || !["dispatched", "en_route"].includes(u.status)) state.eta.delete(uid);
  }
  for (const el of document.querySelectorAll("#alerts .alert[data-incident]")) {
    if (!state.incidents.has(Number(el.dataset.incident))) el.remove();
  }
}

// one logged event into the console's state (also used to re-apply events over an HTTP snapshot)
function applyEvent(msg) {
  const d = msg.data || {};
  const unit = msg.unit_id ? state.units.get(msg.unit_id) : null;
  const inc = msg.incident_id ? state.incidents.get(msg.incident_id) : null;
  switch (msg.kind) {
    case "incident.created":
      if (!state.incidents.has(d.incident.id)) state.incidents.set(d.incident.id, d.incident);
      break;
    case "unit.assigned":
      if (unit) {
        unit.status = d.unit_status;
        unit.incident_id = msg.incident_id;
        unit.assignment = { id: d.assignment_id, incident_id: msg.incident_id, assigned_at: msg.at, acknowledged_at: null };
      }
      if (inc) inc.status = d.incident_status;
      if (d.route) {
        const list = (state.routes.get(msg.incident_id) || []).filter((r) => r.unit_id !== msg.unit_id);
        list.push({ unit_id: msg.unit_id, geometry: d.route.geometry, eta_s: d.route.eta_s });
        state.routes.set(msg.incident_id, list);
      }
      break;
    case "unit.acknowledged":
      if (unit && unit.assignment) unit.assignment.acknowledged_at = msg.at;
      break;
    case "unit.status":
      if (unit) {
        unit.status = d.status;
        if (["returning", "available", "out_of_service"].includes(d.status)) {
          unit.incident_id = null;
          unit.assignment = null;
        }
        if (d.hospital) state.hospitalFor.set(msg.unit_id, d.hospital);
        else if (d.status !== "transporting") state.hospitalFor.delete(msg.unit_id);
      }
      if (inc && d.incident_status) {
        inc.status = d.incident_status;
        if (!OPEN.has(inc.status)) state.incidents.delete(inc.id);
      }
      break;
    case "unit.position":
      if (unit) unit.position = { lat: d.lat, lon: d.lon, at: d.position_at };
      break;
    case "unit.connected":
    case "unit.disconnected":
      if (unit) unit.connected = msg.kind === "unit.connected";
      break;
    case "incident.cancelled":
      state.incidents.delete(msg.incident_id);
      state.routes.delete(msg.incident_id);
      break;
    case "hospital.diversion": {
      const h = state.hospitals.get(d.hospital_id);
      if (h) h.diversion = d.diversion;
      break;
    }
    default:
      break;
  }
}

function onLive(msg) {
  if (msg.kind === "unit.positions") {
    for (const f of msg.data.fixes || []) {
      const u = state.units.get(f.unit_id);
      if (u) u.position = { lat: f.lat, lon: f.lon, at: f.position_at };
      placeUnit(u);
    }
  } else if (msg.kind === "unit.eta") {
    state.eta.set(msg.unit_id, msg.data);
    if (state.selected === msg.incident_id) renderAssigned();
  }
}

// ---------------------------------------------------------------- alerts

function beep(kind) {
  tones(kind === "unack" ? [660, 660, 660] : [880, 660, 880]);
}

function alarm(text, kind, key, incidentId) {
  dismissAlarm(key);
  const el = document.createElement("div");
  el.className = `alert ${kind}`;
  el.dataset.key = String(key);
  if (incidentId) el.dataset.incident = String(incidentId);
  el.innerHTML = `<span>${esc(text)}</span><button>${esc(t("dismiss"))}</button>`;
  el.querySelector("button").onclick = () => el.remove();
  if (kind === "new") {
    el.querySelector("span").style.cursor = "pointer";
    el.querySelector("span").onclick = () => {
      select(incidentId);
      el.remove();
    };
  }
  $("#alerts").append(el);
  beep(kind); // the banner stays until someone dismisses it or the incident is handled
}

function dismissAlarm(key) {
  for (const el of document.querySelectorAll(`#alerts .alert[data-key="${String(key)}"]`)) el.remove();
}

function toast(text) {
  const el = document.createElement("div");
  el.className = "alert";
  el.innerHTML = `<span>${esc(text)}</span><button>${esc(t("dismiss"))}</button>`;
  el.querySelector("button").onclick = () => el.remove();
  $("#alerts").append(el);
  setTimeout(() => el.remove(), 8000);
}

// ---------------------------------------------------------------- map

function setupMap(region) {
  map = regionMap(L, "map", region, { zoom: 15 });
  routeLayer = L.layerGroup().addTo(map);
  map.on("click", (e) => setLocation(e.latlng.lat, e.latlng.lng, null));
}

function divMarker(latlng, className, html, opts = {}) {
  return L.marker(latlng, { icon: L.divIcon({ className: "", html: `<div class="${className}">${html}</div>`, iconSize: null, ...opts }), keyboard: false });
}

function placeUnit(u) {
  if (!u || !map) return;
  let m = markers.units.get(u.id);
  if (!u.position) {
    if (m) m.remove();
    markers.units.delete(u.id);
    return;
  }
  const classes = ["marker-unit", u.status];
  if (!u.connected) classes.push("disconnected");
  if (u.assignment && !u.assignment.acknowledged_at) classes.push("unack");
  const html = `<div class="${classes.join(" ")}" data-unit="${esc(u.callsign)}" title="${esc(u.callsign)}: ${esc(t(`status.${u.status}`))}">${esc(u.callsign)}</div>`;
  const latlng = [u.position.lat, u.position.lon];
  if (!m) {
    m = L.marker(latlng, { icon: L.divIcon({ className: "", html, iconSize: null, iconAnchor: [18, 10] }), zIndexOffset: 500 });
    m.addTo(map);
    markers.units.set(u.id, m);
    m._html = html;
  } else {
    m.setLatLng(latlng);
    if (m._html !== html) {
      m.setIcon(L.divIcon({ className: "", html, iconSize: null, iconAnchor: [18, 10] }));
      m._html = html;
    }
  }
}

function renderMap() {
  for (const u of state.units.values()) placeUnit(u);
  for (const [id, m] of markers.units) if (!state.units.has(id)) (m.remove(), markers.units.delete(id));
  for (const [id, m] of markers.incidents) {
    const inc = state.incidents.get(id);
    if (!inc || m._priority !== inc.priority) (m.remove(), markers.incidents.delete(id));
  }
  for (const inc of state.incidents.values()) {
    if (markers.incidents.has(inc.id)) continue;
    const m = divMarker([inc.location.lat, inc.location.lon], `marker-inc ${inc.priority}`, "", { iconSize: [22, 22], iconAnchor: [11, 22] });
    m.on("click", () => select(inc.id));
    m._priority = inc.priority;
    m.addTo(map);
    markers.incidents.set(inc.id, m);
  }
  for (const h of state.hospitals.values()) {
    let m = markers.hospitals.get(h.id);
    const cls = `marker-hosp${h.diversion ? " diversion" : ""}`;
    if (m && m._cls === cls) continue;
    if (m) m.remove();
    m = divMarker([h.lat, h.lon], cls, "H", { iconSize: [18, 18], iconAnchor: [9, 9] }).bindTooltip(esc(h.name));
    m._cls = cls;
    m.addTo(map);
    markers.hospitals.set(h.id, m);
  }
  if (!markers.stationsDone && state.stations.length) {
    for (const s of state.stations) divMarker([s.lat, s.lon], "marker-station", "S", { iconSize: [16, 16], iconAnchor: [8, 8] }).bindTooltip(esc(s.name)).addTo(map);
    markers.stationsDone = true;
  }
  renderRoutes();
}

function renderRoutes() {
  routeLayer.clearLayers();
  if (!state.selected) return;
  for (const r of state.routes.get(state.selected) || []) {
    const coords = r.geometry.coordinates.map(([lon, lat]) => [lat, lon]);
    L.polyline(coords, { color: "#1565c0", weight: 5, opacity: 0.8 }).addTo(routeLayer);
  }
}

// ---------------------------------------------------------------- intake

function setupIntake() {
  if (setupIntake.done) return;
  setupIntake.done = true;
  const complaint = $("#complaint");
  complaint.innerHTML = `<option value="">${esc(t("complaint"))}…</option>`;
  for (const p of PRIORITIES) {
    const group = document.createElement("optgroup");
    group.label = p.toUpperCase();
    for (const c of state.cards.values()) {
      if (c.priority !== p) continue;
      const o = document.createElement("option");
      o.value = c.code;
      o.textContent = `${i18n.cardName(c)} · ${c.capability.toUpperCase()}`;
      group.append(o);
    }
    complaint.append(group);
  }
  $("#priority").innerHTML = `<option value="">${esc(t("priority"))}: ${esc(t("priority_from_card"))}</option>` + PRIORITIES.map((p) => `<option value="${p}">${p.toUpperCase()}</option>`).join("");
  state.idempotencyKey = uuid();

  const search = $("#search");
  const results = $("#search-results");
  let searchTimer = null;
  let found = [];
  let active = -1;
  const show = () => {
    results.innerHTML = found
      .map((r, i) => `<li data-i="${i}" class="${i === active ? "active" : ""}">${esc(r.name)}<small>${esc(r.kind)}${r.detail ? ` · ${esc(r.detail)}` : ""}</small></li>`)
      .join("");
    results.classList.toggle("hidden", found.length === 0);
  };
  const pick = (r) => {
    if (!r) return;
    setLocation(r.lat, r.lon, r.name);
    map.setView([r.lat, r.lon], Math.max(map.getZoom(), 16));
    found = [];
    show();
    $("#complaint").focus();
  };
  search.oninput = () => {
    clearTimeout(searchTimer);
    const q = search.value.trim();
    if (!q) {
      found = [];
      return show();
    }
    searchTimer = setTimeout(async () => {
      try {
        const center = map.getCenter();
        const answer = await call(session, `/geocode?q=${encodeURIComponent(q)}&limit=8&near=${center.lat.toFixed(5)},${center.lng.toFixed(5)}`);
        if (search.value.trim() !== q) return;
        found = answer.results;
        active = found.length ? 0 : -1;
        show();
      } catch (err) {
        $("#intake-error").textContent = problemText(err);
      }
    }, 120);
  };
  search.onkeydown = (e) => {
    if (e.key === "ArrowDown") active = Math.min(found.length - 1, active + 1);
    else if (e.key === "ArrowUp") active = Math.max(0, active - 1);
    else if (e.key === "Enter") {
      e.preventDefault();
      pick(found[active]);
      return;
    } else if (e.key === "Escape") found = [];
    else return;
    e.preventDefault();
    show();
  };
  results.onmousedown = (e) => {
    const li = e.target.closest("li");
    if (li) pick(found[Number(li.dataset.i)]);
  };
  $("#coords").onchange = () => {
    const m = $("#coords").value.trim().match(/^(-?\d+(?:\.\d+)?)\s*[, ]\s*(-?\d+(?:\.\d+)?)$/);
    if (!m) {
      $("#intake-error").textContent = `${t("coordinates")}: 21.0287, 105.8524`;
      return;
    }
    setLocation(Number(m[1]), Number(m[2]), null);
    map.setView([Number(m[1]), Number(m[2])], Math.max(map.getZoom(), 16));
  };
  $("#intake").onsubmit = (e) => {
    e.preventDefault();
    createIncident();
  };
  // the call came in when the dispatcher began taking it (the first thing typed or picked), not when it is sent
  $("#intake").addEventListener("input", callStarted);
  $("#intake").onkeydown = (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      createIncident();
    }
  };
}

function callStarted() {
  if (!state.callStartedAt) state.callStartedAt = new Date().toISOString();
}

function setLocation(lat, lon, label) {
  callStarted();
  state.location = { lat, lon };
  $("#coords").value = `${lat.toFixed(6)}, ${lon.toFixed(6)}`;
  if (label) $("#address").value = label;
  if (locationMarker) locationMarker.setLatLng([lat, lon]);
  else locationMarker = L.marker([lat, lon], { zIndexOffset: 1000 }).addTo(map);
  $("#intake-error").textContent = "";
}

async function createIncident() {
  const err = $("#intake-error");
  err.textContent = "";
  if (!state.location) return (err.textContent = t("no_location"));
  if (!$("#complaint").value) return (err.textContent = t("no_complaint"));
  const body = {
    lat: state.location.lat,
    lon: state.location.lon,
    complaint: $("#complaint").value,
    caller_number: $("#caller").value.trim(),
    address: $("#address").value.trim(),
    notes: $("#notes").value.trim(),
  };
  if ($("#priority").value) body.priority = $("#priority").value;
  callStarted();
  body.call_received_at = state.callStartedAt;
  $("#create").disabled = true;
  try {
    // the same key for a retry of this call (a double click, a timeout): the server never makes two incidents
    const answer = await call(session, "/incidents", { method: "POST", body, headers: { "Idempotency-Key": state.idempotencyKey } });
    state.idempotencyKey = uuid();
    state.callStartedAt = null;
    state.incidents.set(answer.incident.id, answer.incident);
    $("#intake").reset();
    state.location = null;
    if (locationMarker) (locationMarker.remove(), (locationMarker = null));
    renderAll();
    await select(answer.incident.id, { recommendations: answer.recommendations, excluded: answer.excluded });
  } catch (e) {
    err.textContent = problemText(e);
  } finally {
    $("#create").disabled = false;
  }
}

// ---------------------------------------------------------------- queue

function waitingSeconds(inc) {
  const t0 = Date.parse(inc.times["eTimes.01"]);
  return isFinite(t0) ? (Date.now() - t0) / 1000 : 0;
}

function queueOrder() {
  return [...state.incidents.values()]
    .filter((i) => OPEN.has(i.status))
    .sort((a, b) => PRIORITIES.indexOf(a.priority) - PRIORITIES.indexOf(b.priority) || waitingSeconds(b) - waitingSeconds(a));
}

function renderQueue() {
  const list = queueOrder();
  $("#queue-count").textContent = `(${list.length})`;
  if (!list.length) {
    $("#queue").innerHTML = `<li class="muted">${esc(t("no_incidents"))}</li>`;
    return;
  }
  const unitsFor = new Map();
  for (const u of state.units.values()) if (u.incident_id) (unitsFor.get(u.incident_id) || unitsFor.set(u.incident_id, []).get(u.incident_id)).push(u);
  $("#queue").innerHTML = list
    .map((inc) => {
      const card = state.cards.get(inc.complaint);
      const us = (unitsFor.get(inc.id) || [])
        .map((u) => `<span class="st ${u.status}">${esc(u.callsign)}</span>${u.assignment && !u.assignment.acknowledged_at ? `<span class="flag unack">${esc(t("unacknowledged"))}</span>` : ""}`)
        .join(" ");
      return `<li class="${inc.priority}${inc.id === state.selected ? " selected" : ""}" data-id="${inc.id}" data-status="${inc.status}">
        <div class="top"><span class="prio ${inc.priority}">${inc.priority}</span><b>#${inc.id}</b> ${esc(i18n.cardName(card))}
        <span class="timer" data-since="${esc(inc.times["eTimes.01"])}"></span></div>
        <div class="sub">${esc(inc.location.address || `${inc.location.lat.toFixed(5)}, ${inc.location.lon.toFixed(5)}`)} · ${esc(t(`istatus.${inc.status}`))} ${us}</div></li>`;
    })
    .join("");
  tick();
}

function tick() {
  $("#clock").textContent = new Date().toLocaleTimeString(i18n.lang === "vi" ? "vi-VN" : "en-GB");
  for (const el of document.querySelectorAll(".timer[data-since]")) {
    const s = (Date.now() - Date.parse(el.dataset.since)) / 1000;
    el.textContent = i18n.mmss(s);
  }
}

// ---------------------------------------------------------------- selected incident

async function select(id, recs = null) {
  state.selected = id;
  state.recs = recs;
  state.detail = null;
  $("#detail-error").textContent = "";
  showTab("incident");
  renderQueue();
  renderRoutes();
  if (id === null) {
    $("#detail").classList.add("hidden");
    $("#no-selection").classList.remove("hidden");
    return;
  }
  const inc = state.incidents.get(id);
  if (inc) map.panTo([inc.location.lat, inc.location.lon]);
  $("#no-selection").classList.add("hidden");
  $("#detail").classList.remove("hidden");
  renderDetail();
  await refreshDetail(recs);
}

// the incident's detail and timeline, and its recommendations (read again unless just given, e.g. by the
// answer to creating the incident)
async function refreshDetail(given = null) {
  const id = state.selected;
  if (!id) return;
  try {
    const [detail, recs] = await Promise.all([
      call(session, `/incidents/${id}`),
      given ? Promise.resolve(given) : call(session, `/incidents/${id}/recommendations`),
    ]);
    if (state.selected !== id) return;
    state.detail = detail;
    state.recs = recs;
    if (OPEN.has(detail.status)) state.incidents.set(id, { ...state.incidents.get(id), ...detail });
    await routesFor(detail);
    renderDetail();
  } catch (err) {
    $("#detail-error").textContent = problemText(err);
  }
}

let recsTimer = null;
function refreshRecsSoon() {
  if (recsTimer) return; // already coming: a stream of events must not keep pushing it back
  recsTimer = setTimeout(() => {
    recsTimer = null;
    refreshDetail();
  }, 300);
}

// routes of the incident's units still driving to it, when the console did not see their assignment event
async function routesFor(detail) {
  if (state.routes.has(detail.id)) return;
  const driving = detail.assignments.filter((a) => a.active).map((a) => state.units.get(a.unit_id)).filter((u) => u && u.position && ["dispatched", "en_route"].includes(u.status));
  const list = [];
  for (const u of driving) {
    try {
      const r = await call(session, `/route?from=${u.position.lat},${u.position.lon}&to=${detail.location.lat},${detail.location.lon}`);
      list.push({ unit_id: u.id, geometry: r.geometry, eta_s: r.eta_s });
    } catch {
      /* a unit off the road network: no line on the map */
    }
  }
  if (list.length) state.routes.set(detail.id, list);
  renderRoutes();
}

function renderDetail() {
  const inc = state.detail || state.incidents.get(state.selected);
  if (!inc) return;
  const card = state.cards.get(inc.complaint);
  $("#detail-title").innerHTML = `<span class="prio ${inc.priority}">${inc.priority}</span> #${inc.id} ${esc(i18n.cardName(card))}`;
  $("#detail-meta").innerHTML = [
    `<div>${esc(inc.location.address || "")} <span class="muted">(${inc.location.lat.toFixed(5)}, ${inc.location.lon.toFixed(5)})</span></div>`,
    `<div>${esc(t("caller"))}: ${esc(inc.caller_number || "–")} · ${esc(t(`istatus.${inc.status}`))} · ${esc((inc.capability || "").toUpperCase())}</div>`,
    inc.notes ? `<div>${esc(t("notes"))}: ${esc(inc.notes)}</div>` : "",
  ].join("");
  const tbody = $("#recs tbody");
  const recs = state.recs ? state.recs.recommendations : null;
  if (!recs) tbody.innerHTML = `<tr><td colspan="6" class="muted">…</td></tr>`;
  else if (!recs.length) tbody.innerHTML = `<tr><td colspan="6" class="muted">${esc(t("none_available"))}</td></tr>`;
  else
    tbody.innerHTML = recs
      .map(
        (r, i) => `<tr class="${r.meets_capability ? "" : "below"}" data-unit="${esc(r.callsign)}">
        <td>${i + 1}</td><td><b>${esc(r.callsign)}</b> <span class="st ${r.status}">${esc(t(`status.${r.status}`))}</span></td>
        <td class="eta" data-eta="${r.eta_s}">${i18n.mmss(r.eta_s)}</td><td>${i18n.km(r.distance_m)}</td><td class="reason">${esc(r.reason)}</td>
        <td><button data-assign="${r.unit_id}" title="${i < 9 ? i + 1 : ""}">${esc(t("assign"))}</button></td></tr>`,
      )
      .join("");
  for (const b of tbody.querySelectorAll("button[data-assign]")) b.onclick = () => assign(Number(b.dataset.assign));
  const closed = !OPEN.has(inc.status);
  $("#recs").classList.toggle("hidden", closed);
  $("#cancel-incident").classList.toggle("hidden", closed);
  $("#cancel-incident").onclick = cancelSelected;
  renderAssigned();
  renderTimeline();
}

function renderAssigned() {
  const d = state.detail;
  if (!d) return ($("#assigned").innerHTML = "");
  const rows = d.assignments
    .filter((a) => a.active)
    .map((a) => {
      const u = state.units.get(a.unit_id) || { callsign: `#${a.unit_id}`, status: "dispatched" };
      const eta = state.eta.get(a.unit_id);
      const ack = u.assignment && u.assignment.id === a.id ? u.assignment.acknowledged_at : a.times["eTimes.04"];
      const hosp = state.hospitalFor.get(a.unit_id) || (a.hospital_id && state.hospitals.get(a.hospital_id));
      return `<div class="assigned-unit" data-unit="${esc(u.callsign)}"><b>${esc(u.callsign)}</b> <span class="st ${u.status}">${esc(t(`status.${u.status}`))}</span>
        <span class="flag ${ack ? "ack" : "unack"}">${esc(t(ack ? "acknowledged" : "unacknowledged"))}</span>
        ${u.connected === false ? `<span class="flag disc">${esc(t("disconnected"))}</span>` : ""}
        ${eta ? ` · ${esc(t("eta"))} ${i18n.mmss(eta.eta_s)}` : ""}
        ${hosp ? `<div>${esc(t("recommended_hospital"))}: <b>${esc(hosp.name)}</b> (${i18n.mmss(hosp.eta_s)})</div>` : ""}</div>`;
    });
  $("#assigned").innerHTML = rows.length ? `<h3>${esc(t("assigned_to"))}</h3>${rows.join("")}` : "";
}

function renderTimeline() {
  const d = state.detail;
  if (!d) return ($("#timeline").innerHTML = "");
  const items = [];
  const when = (iso) => new Date(iso).toLocaleTimeString(i18n.lang === "vi" ? "vi-VN" : "en-GB");
  if (d.times["eTimes.01"]) items.push([d.times["eTimes.01"], "eTimes.01", "PSAP call"]);
  for (const a of d.assignments) {
    const u = state.units.get(a.unit_id);
    const cs = u ? u.callsign : `#${a.unit_id}`;
    const names = { "eTimes.03": "notified", "eTimes.04": "acknowledged", "eTimes.05": "en route", "eTimes.06": "on scene", "eTimes.09": "left scene", "eTimes.11": "at destination", "eTimes.12": "transfer of care", "eTimes.13": "back in service", "eTimes.14": "cancelled" };
    for (const [code, label] of Object.entries(names)) if (a.times[code]) items.push([a.times[code], code, `${cs} ${label}`]);
  }
  if (d.times["eTimes.14"]) items.push([d.times["eTimes.14"], "eTimes.14", "cancelled"]);
  for (const ev of d.timeline || []) if (ev.kind === "incident.note") items.push([ev.at, "note", `${ev.actor}: ${ev.data.text}`]);
  items.sort((a, b) => Date.parse(a[0]) - Date.parse(b[0]));
  $("#timeline").innerHTML = items.map(([at, code, label]) => `<li data-code="${esc(code)}"><b>${when(at)}</b> <span class="code">${esc(code)}</span> ${esc(label)}</li>`).join("");
}

let assigning = false;
async function assign(unitId) {
  const id = state.selected;
  if (!id || assigning) return; // a double press sends one assignment
  assigning = true;
  $("#detail-error").textContent = "";
  try {
    await call(session, `/incidents/${id}/assignments`, { method: "POST", body: { unit_id: unitId } });
    state.recs = null;
    await refreshDetail();
  } catch (err) {
    $("#detail-error").textContent = problemText(err);
    refreshRecsSoon();
  } finally {
    assigning = false;
  }
}

async function cancelSelected() {
  const reason = prompt(t("cancel_reason"));
  if (!reason) return;
  try {
    await call(session, `/incidents/${state.selected}/cancel`, { method: "POST", body: { reason } });
    state.incidents.delete(state.selected);
    select(null);
    renderAll();
  } catch (err) {
    $("#detail-error").textContent = problemText(err);
  }
}

// ---------------------------------------------------------------- units and hospitals

function setupPanels() {
  if (setupPanels.done) return;
  setupPanels.done = true;
  for (const b of document.querySelectorAll(".tabs button")) b.onclick = () => showTab(b.dataset.tab);
  $("#unit-filter").innerHTML = `<option value="">${esc(t("all_statuses"))}</option>` + STATUSES.map((s) => `<option value="${s}">${esc(t(`status.${s}`))}</option>`).join("");
  $("#unit-filter").onchange = (e) => {
    state.unitFilter = e.target.value;
    renderUnits();
  };
  $("#queue").onclick = (e) => {
    const li = e.target.closest("li[data-id]");
    if (li) select(Number(li.dataset.id));
  };
  document.addEventListener("keydown", onKey);
}

function showTab(name) {
  for (const b of document.querySelectorAll(".tabs button")) b.classList.toggle("active", b.dataset.tab === name);
  for (const el of document.querySelectorAll(".tab")) el.classList.toggle("hidden", el.id !== `tab-${name}`);
}

function renderUnits() {
  const rows = [...state.units.values()].filter((u) => !state.unitFilter || u.status === state.unitFilter);
  $("#unit-list tbody").innerHTML = rows
    .map(
      (u) => `<tr data-id="${u.id}" data-unit="${esc(u.callsign)}" data-status="${u.status}"><td><b>${esc(u.callsign)}</b> <small class="muted">${esc(u.type.replace("_", " "))}</small></td>
      <td><span class="st ${u.status}">${esc(t(`status.${u.status}`))}</span></td>
      <td>${u.connected ? "" : `<span class="flag disc">${esc(t("disconnected"))}</span>`}${u.assignment && !u.assignment.acknowledged_at ? `<span class="flag unack">${esc(t("unacknowledged"))}</span>` : ""}
      ${destination(u) ? `<div class="muted">→ ${esc(destination(u).name)}</div>` : ""}</td>
      <td>${u.incident_id ? `#${u.incident_id}` : ""}</td></tr>`,
    )
    .join("");
  for (const tr of $("#unit-list tbody").querySelectorAll("tr")) {
    tr.onclick = () => {
      const u = state.units.get(Number(tr.dataset.id));
      if (u && u.position) map.setView([u.position.lat, u.position.lon], Math.max(map.getZoom(), 16));
      if (u && u.incident_id && state.incidents.has(u.incident_id)) select(u.incident_id);
    };
  }
}

// the hospital a transporting unit drives to: from its status event, else from its assignment
function destination(u) {
  if (state.hospitalFor.has(u.id)) return state.hospitalFor.get(u.id);
  const id = u.assignment && u.assignment.hospital_id;
  return id ? state.hospitals.get(id) : null;
}

function renderHospitals() {
  const rows = [...state.hospitals.values()].sort((a, b) => a.name.localeCompare(b.name));
  $("#hospital-list tbody").innerHTML = rows
    .map(
      (h) => `<tr data-id="${h.id}"><td>${esc(i18n.lang === "en" && h.name_en ? h.name_en : h.name)}${h.emergency ? "" : ' <small class="muted">(no ED)</small>'}</td>
      <td>${(h.capabilities || []).map((c) => `<span class="chip">${esc(c)}</span>`).join("")}</td>
      <td><input type="checkbox" data-diversion="${h.id}" ${h.diversion ? "checked" : ""} aria-label="${esc(t("diversion"))} ${esc(h.name)}"></td></tr>`,
    )
    .join("");
  for (const box of $("#hospital-list tbody").querySelectorAll("input[data-diversion]")) {
    box.onchange = async () => {
      try {
        const h = await call(session, `/hospitals/${box.dataset.diversion}/diversion`, { method: "POST", body: { diversion: box.checked } });
        state.hospitals.set(h.id, h);
        renderMap();
      } catch (err) {
        box.checked = !box.checked;
        toast(problemText(err));
      }
    };
  }
}

// Shortcuts act only when no control has the focus (Enter on a focused button presses that button) and not
// on a held key. Enter assigns the first unit only while the incident has none; 1-9 pick a unit explicitly.
function onKey(e) {
  const target = e.target instanceof Element ? e.target : null;
  const onControl = target && target.closest("input, textarea, select, button, a, summary, [contenteditable]");
  const loggedOut = !$("#login").classList.contains("hidden");
  if (e.repeat || onControl || loggedOut || e.ctrlKey || e.metaKey || e.altKey) return;
  if (e.key === "/") {
    e.preventDefault();
    $("#search").focus();
    return;
  }
  if (e.key === "Escape") return select(null);
  const recs = state.recs && state.recs.recommendations;
  if (!state.selected || !recs || !recs.length) return;
  const hasUnit = [...state.units.values()].some((u) => u.incident_id === state.selected);
  if (e.key === "Enter") {
    if (hasUnit) return;
    e.preventDefault();
    assign(recs[0].unit_id);
  } else if (/^[1-9]$/.test(e.key) && recs[Number(e.key) - 1]) {
    e.preventDefault();
    assign(recs[Number(e.key) - 1].unit_id);
  }
}

function renderAll() {
  if (!map) return;
  renderQueue();
  renderMap();
  renderUnits();
  renderHospitals();
  if (state.selected) renderDetail();
}

start();
