// The crew app: the current assignment at arm's length, a big acknowledge button, the route with its turns,
// status buttons in the order crews press them, the phone's position while on duty.
//
// Works through a dropped connection: what the crew presses goes into an outbox kept on the device and is
// sent, one message at a time, when the socket is open; a message whose answer was lost is sent again, which
// the server applies once (the same status twice is answered "applied: false"; a repeated ack changes
// nothing). The last event number seen is kept too, so a reconnect replays everything missed.

import { Session, login, call, problemText } from "/static/shared/api.js";
import { LiveSocket } from "/static/shared/live.js";
import * as i18n from "/static/shared/i18n.js";
import { regionMap } from "/static/shared/basemap.js";
import { listenForUnlock, tones } from "/static/shared/sound.js";

const { t } = i18n;
const L = window.L;
const $ = (sel) => document.querySelector(sel);
const session = new Session(localStorage, "dispatch.crew");
const STORE = "dispatch.crew.state";
const OUTBOX = "dispatch.crew.outbox";
const ORDER = ["en_route", "on_scene", "transporting", "at_hospital", "available"];
const NEXT = { dispatched: "en_route", en_route: "on_scene", on_scene: "transporting", transporting: "at_hospital", at_hospital: "available", returning: "available" };
const POSITION_EVERY_MS = 5000;
const REPLY_TIMEOUT_MS = 15000; // a message unanswered this long: the socket is taken as dead and reopened
const CONFIRM_MS = 4000;
// what the crew may press next, as the server's unit lifecycle allows (dispatch/core/lifecycle.py)
const ALLOWED = {
  dispatched: ["en_route", "on_scene", "available"],
  en_route: ["on_scene", "available"],
  on_scene: ["transporting", "available"],
  transporting: ["at_hospital"],
  at_hospital: ["available"],
  returning: ["available"],
  available: [],
  out_of_service: [],
};
// presses that end the job before the patient is handed over: a second tap confirms them
const ENDS_JOB_EARLY = new Set(["dispatched", "en_route", "on_scene"]);

// what the screen shows, kept on the device so that the app opens with it when there is no signal
let view = load(STORE, { unit: null, incident: null, route: null, hospital: null, acknowledged: true, lastSeq: null, eta: null });
let outbox = load(OUTBOX, []);
let inflight = null; // the outbox message sent and not yet answered: {request_id, at}
let confirming = null; // {status, until}: a press waiting for its confirming second tap
let socket = null;
let map = null;
let routeLayer = null;
let lastPositionSent = 0;

function load(key, fallback) {
  try {
    return { ...fallback, ...(JSON.parse(localStorage.getItem(key) || "null") || {}) };
  } catch {
    return fallback;
  }
}
function saveView() {
  localStorage.setItem(STORE, JSON.stringify(view));
}
function saveOutbox() {
  localStorage.setItem(OUTBOX, JSON.stringify(outbox));
  renderOutbox();
}
function esc(s) {
  return String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}
function requestId() {
  return crypto.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random().toString(16).slice(2)}`;
}

// ---------------------------------------------------------------- start

async function start() {
  // one tab owns the outbox: a second tab would overwrite it on the device and lose or replay presses
  if (navigator.locks) {
    navigator.locks.request("dispatch-crew-app", { ifAvailable: true }, (lock) => {
      if (!lock) {
        document.body.innerHTML = `<p class="card" style="margin:20px">${esc(t("app_crew"))}: already open in another tab or window.</p>`;
        return;
      }
      run();
      return new Promise(() => {}); // held while this page lives
    });
  } else run();
}

function run() {
  outbox = Array.isArray(outbox) ? outbox : Object.values(outbox).filter((m) => m && m.type);
  listenForUnlock();
  session.onUnauthorized = () => {
    session.clear();
    if (socket) socket.stop();
    $("#login").classList.remove("hidden");
  };
  i18n.apply();
  $("#lang").value = i18n.lang;
  $("#lang").onchange = (e) => i18n.setLang(e.target.value, render);
  $("#login-form").onsubmit = onLogin;
  $("#logout").onclick = () => {
    if (outbox.length && !confirm(t("queued", { n: outbox.length }))) return;
    session.clear();
    localStorage.removeItem(STORE);
    localStorage.removeItem(OUTBOX);
    location.reload();
  };
  $("#ack").onclick = () => acknowledge();
  for (const b of document.querySelectorAll(".statuses button")) b.onclick = () => pressStatus(b.dataset.status);
  window.addEventListener("offline", () => {
    // the radio is gone: stop pretending the socket works; reconnecting starts again when it is back
    if (socket && socket.ws) socket.ws.close(4000, "offline");
  });
  window.addEventListener("online", () => socket && !socket.open && socket.reconnect("online"));
  setInterval(() => {
    // an answer that never came: the socket is dead although it looks open (half-open TCP)
    if (inflight && Date.now() - inflight.at > REPLY_TIMEOUT_MS && socket) socket.reconnect("no reply");
  }, 3000);
  if ("serviceWorker" in navigator) navigator.serviceWorker.register("/crew/sw.js", { scope: "/crew/" }).catch(() => {});
  render();
  if (session.token) enter();
  else $("#login").classList.remove("hidden");
}

async function onLogin(e) {
  e.preventDefault();
  $("#login-error").textContent = "";
  try {
    const s = await login(session, $("#login-user").value.trim(), $("#login-pass").value);
    if (s.role !== "crew" || !s.unit_id) {
      session.clear();
      $("#login-error").textContent = `${t("login_failed")}: ${s.user} (${s.role})`;
      return;
    }
    if (!view.unit || view.unit.id !== s.unit_id) {
      view = { unit: { id: s.unit_id }, incident: null, route: null, hospital: null, acknowledged: true, lastSeq: null, eta: null };
      outbox = [];
      saveOutbox();
      saveView();
    }
    $("#login").classList.add("hidden");
    enter();
  } catch (err) {
    $("#login-error").textContent = `${t("login_failed")}: ${problemText(err)}`;
  }
}

function enter() {
  $("#login").classList.add("hidden");
  socket = new LiveSocket("/ws/crew", {
    token: session.token,
    after: view.lastSeq,
    handlers: {
      onMessage,
      onState: (st) => {
        const el = $("#conn");
        el.className = `conn ${st}`;
        el.dataset.state = st;
        el.textContent = t(st === "open" ? "live" : st === "closed" ? "offline" : "reconnecting");
        if (st !== "open") inflight = null; // its answer is lost: it is sent again on reconnect (applied once)
      },
      onAuthFailed: () => session.onUnauthorized(),
      onReset: () => {
        view.lastSeq = null;
        refreshFromServer(view.unit && view.unit.id).catch(() => {});
      },
    },
  }).start();
  watchPosition();
}

// ---------------------------------------------------------------- state from the server

async function refreshFromServer(unitId) {
  const units = await call(session, "/units");
  const unit = units.find((u) => u.id === unitId);
  if (!unit) return;
  view.unit = unit;
  if (unit.incident_id) {
    if (!view.incident || view.incident.id !== unit.incident_id) {
      view.incident = await call(session, `/incidents/${unit.incident_id}`);
      view.route = null;
      view.hospital = null;
    }
    view.acknowledged = !(unit.assignment && !unit.assignment.acknowledged_at);
    if (!view.route && unit.position && ["dispatched", "en_route"].includes(unit.status)) {
      const inc = view.incident.location;
      view.route = await call(session, `/route?from=${unit.position.lat},${unit.position.lon}&to=${inc.lat},${inc.lon}`).catch(() => null);
    }
  } else {
    clearJob();
  }
  applyOwnPending();
  await suggestHospital();
  saveView();
  render();
}

// on scene: the hospital the system recommends for this patient (capability, diversion, drive time), which
// the Transporting button sends; the server picks the same one when none is sent
async function suggestHospital() {
  const unit = view.unit;
  if (!unit || !view.incident || view.hospital || !["on_scene", "transporting"].includes(unit.status)) return;
  try {
    const ranked = await call(session, `/hospitals?for_incident=${view.incident.id}`);
    if (ranked.hospitals.length) view.hospital = ranked.hospitals[0];
  } catch {
    /* offline: the server chooses when the status arrives */
  }
}

// statuses still in the outbox are what the crew pressed: show them over what the server knows so far
function applyOwnPending() {
  for (const m of outbox) {
    if (m.type === "status" && view.unit) view.unit.status = m.status;
    if (m.type === "ack") view.acknowledged = true;
  }
}

function clearJob() {
  view.incident = null;
  view.route = null;
  view.hospital = null;
  view.eta = null;
  view.acknowledged = true;
}

function onMessage(msg) {
  if (msg.type === "hello") {
    if (!view.unit || view.unit.id !== msg.unit_id) view.unit = { id: msg.unit_id };
    if (view.lastSeq === null) view.lastSeq = msg.seq;
    refreshFromServer(msg.unit_id).catch((err) => showError(problemText(err)));
    return;
  }
  if (msg.type === "caught_up") {
    dropStale();
    flush();
    return;
  }
  if (msg.type === "reply") return onReply(msg);
  if (msg.type === "live" && msg.kind === "unit.eta") {
    view.eta = msg.data;
    renderEta();
    return;
  }
  if (msg.type !== "event") return;
  if (typeof msg.seq === "number") view.lastSeq = Math.max(view.lastSeq || 0, msg.seq);
  const d = msg.data || {};
  switch (msg.kind) {
    case "unit.assigned":
      if (view.incident && view.incident.id === msg.incident_id) {
        // the same job sent again (not yet acknowledged): remind, but keep the crew's progress on the screen
        if (!view.acknowledged) alertCrew();
        break;
      }
      view.incident = d.incident;
      view.route = d.route || null;
      view.hospital = null;
      view.eta = d.route ? { eta_s: d.route.eta_s, distance_m: d.route.distance_m } : null;
      view.acknowledged = outbox.some((m) => m.type === "ack" && m.incident_id === msg.incident_id);
      dropStale();
      if (view.unit) {
        view.unit.status = d.unit_status;
        view.unit.incident_id = msg.incident_id;
      }
      alertCrew();
      break;
    case "unit.acknowledged":
      view.acknowledged = true;
      break;
    case "unit.status":
      if (view.unit && !outbox.some((m) => m.type === "status")) view.unit.status = d.status;
      if (d.status === "on_scene") suggestHospital().then(() => (saveView(), render()));
      if (d.hospital) {
        view.hospital = d.hospital;
        view.route = d.hospital.route || view.route;
      }
      if (["returning", "available", "out_of_service"].includes(d.status)) clearJob();
      break;
    case "incident.note":
      if (view.incident && view.incident.id === msg.incident_id) view.incident.notes = [view.incident.notes, d.text].filter(Boolean).join("\n");
      break;
    case "incident.cancelled":
      if (view.incident && view.incident.id === msg.incident_id) {
        clearJob();
        showError(`#${msg.incident_id}: ${d.reason || "cancelled"}`);
      }
      break;
    default:
      break;
  }
  saveView();
  render();
}

function alertCrew() {
  if (navigator.vibrate) navigator.vibrate([400, 200, 400, 200, 400]);
  tones([880, 880, 880], { volume: 0.3 });
}

// ---------------------------------------------------------------- outbox

function acknowledge() {
  if (!view.incident || view.acknowledged) return;
  enqueue({ type: "ack", incident_id: view.incident.id }, () => (view.acknowledged = true));
}

function pressStatus(status) {
  const current = view.unit && view.unit.status;
  if (view.incident && ENDS_JOB_EARLY.has(current) && status === "available") {
    if (!confirming || confirming.status !== status || Date.now() > confirming.until) {
      confirming = { status, until: Date.now() + CONFIRM_MS };
      showError(t("confirm_available"));
      setTimeout(render, CONFIRM_MS + 50);
      render();
      return;
    }
  }
  confirming = null;
  showError("");
  if (view.incident && !view.acknowledged) acknowledge(); // moving on the job says the crew has it
  const msg = { type: "status", status };
  if (view.incident) msg.incident_id = view.incident.id;
  if (status === "transporting" && view.hospital && view.hospital.hospital_id) msg.hospital_id = view.hospital.hospital_id;
  enqueue(msg, () => {
    if (view.unit) view.unit.status = status;
    if (["available", "returning"].includes(status)) clearJob();
  });
}

function enqueue(msg, optimistic) {
  outbox.push({ ...msg, request_id: requestId(), queued_at: new Date().toISOString() });
  saveOutbox();
  if (optimistic) optimistic();
  saveView();
  render();
  flush();
}

function flush() {
  if (inflight || !outbox.length || !socket || !socket.open) return;
  const { queued_at: _, ...head } = outbox[0];
  if (socket.send(head)) inflight = { request_id: head.request_id, at: Date.now() };
}

// presses made for a job the unit no longer has (cancelled, then another assigned) are not sent; the server
// refuses them too (409), this only spares the round trip
function dropStale() {
  const current = view.incident ? view.incident.id : null;
  const keep = outbox.filter((m, i) => !m.incident_id || m.incident_id === current || (inflight && i === 0));
  if (keep.length !== outbox.length) {
    outbox = keep;
    saveOutbox();
  }
}

function onReply(msg) {
  if (!outbox.length || msg.request_id !== outbox[0].request_id) return;
  const done = outbox.shift();
  inflight = null;
  saveOutbox();
  if (!msg.ok) {
    showError(msg.error ? msg.error.detail : t("error"));
    if (done.type === "status" && view.unit) refreshFromServer(view.unit.id).catch(() => {});
  } else {
    showError("");
    if (done.type === "status" && view.unit) view.unit.status = msg.status || done.status;
    if (done.type === "ack") view.acknowledged = true;
    saveView();
    render();
  }
  flush();
}

// ---------------------------------------------------------------- position

function watchPosition() {
  if (!navigator.geolocation) return;
  navigator.geolocation.watchPosition(
    (pos) => {
      $("#gps").textContent = t("on_duty");
      const now = Date.now();
      if (now - lastPositionSent < POSITION_EVERY_MS || !socket || !socket.open) return;
      const c = pos.coords;
      const fix = { type: "position", lat: c.latitude, lon: c.longitude, at: new Date(pos.timestamp || now).toISOString() };
      if (c.speed !== null && isFinite(c.speed)) fix.speed_mps = c.speed;
      if (c.heading !== null && isFinite(c.heading)) fix.bearing = c.heading;
      if (c.accuracy !== null && isFinite(c.accuracy)) fix.accuracy_m = c.accuracy;
      if (socket.send(fix)) lastPositionSent = now;
      if (view.unit) view.unit.position = { lat: c.latitude, lon: c.longitude };
      placeMe();
    },
    () => ($("#gps").textContent = t("position_off")),
    { enableHighAccuracy: true, maximumAge: 5000, timeout: 20000 },
  );
}

// ---------------------------------------------------------------- screen

function showError(text) {
  $("#error").textContent = text || "";
}

function renderOutbox() {
  const el = $("#outbox");
  el.textContent = t("queued", { n: outbox.length });
  el.classList.toggle("hidden", outbox.length === 0);
}

function render() {
  const unit = view.unit || {};
  $("#callsign").textContent = unit.callsign || "…";
  const st = $("#unit-status");
  st.className = `st ${unit.status || ""}`;
  st.textContent = unit.status ? t(`status.${unit.status}`) : "";
  st.dataset.status = unit.status || "";
  const inc = view.incident;
  $("#idle").classList.toggle("hidden", !!inc);
  $("#job").classList.toggle("hidden", !inc);
  $("#nav").classList.toggle("hidden", !inc);
  if (inc) {
    $("#job-prio").className = `prio ${inc.priority}`;
    $("#job-prio").textContent = inc.priority;
    $("#job-id").textContent = `#${inc.id}`;
    $("#job-complaint").textContent = complaintName(inc.complaint);
    $("#job-address").textContent = inc.location.address || `${inc.location.lat.toFixed(5)}, ${inc.location.lon.toFixed(5)}`;
    $("#job-notes").textContent = inc.notes || "";
    $("#ack").classList.toggle("hidden", view.acknowledged);
    const h = view.hospital;
    $("#job-hospital").classList.toggle("hidden", !h);
    if (h) $("#job-hospital").innerHTML = `${esc(t("recommended_hospital"))}: <b>${esc(h.name)}</b>${h.eta_s ? ` · ${i18n.mmss(h.eta_s)}` : ""}`;
    renderRoute();
  }
  renderEta();
  const next = NEXT[unit.status];
  const allowed = ALLOWED[unit.status] || ORDER;
  const asking = confirming && Date.now() < confirming.until ? confirming.status : null;
  for (const b of document.querySelectorAll(".statuses button")) {
    const s = b.dataset.status;
    b.classList.toggle("current", s === unit.status);
    b.classList.toggle("next", s === next);
    b.classList.toggle("confirm", s === asking);
    b.textContent = s === asking ? t("tap_again") : t(`status.${s}`);
    b.disabled = s !== unit.status && !allowed.includes(s);
  }
  renderOutbox();
}

let cards = null;
function complaintName(code) {
  if (!cards) {
    cards = {};
    call(session, "/triage/cards")
      .then((list) => {
        for (const c of list) cards[c.code] = c;
        render();
      })
      .catch(() => (cards = null));
  }
  return cards[code] ? i18n.cardName(cards[code]) : code.replaceAll("_", " ");
}

function renderEta() {
  const e = view.eta || (view.route ? { eta_s: view.route.eta_s, distance_m: view.route.distance_m } : null);
  $("#eta").textContent = e ? `${t("eta")} ${i18n.mmss(e.eta_s)} · ${i18n.km(e.distance_m)}` : "";
}

let drawnRoute = null;
function renderRoute() {
  const r = view.route;
  $("#turns").innerHTML = r && r.steps ? r.steps.map((s) => `<li>${esc(s.instruction)} <small>${i18n.km(s.distance_m)}</small></li>`).join("") : "";
  if (!map) {
    fetch("/api/v1/region")
      .then((x) => (x.ok ? x.json() : null))
      .catch(() => null)
      .then((region) => {
        if (map) return;
        map = regionMap(L, "map", region, { zoom: 15 });
        routeLayer = L.layerGroup().addTo(map);
        drawnRoute = null;
        renderRoute();
      });
    return;
  }
  const key = JSON.stringify([view.incident && view.incident.id, r && r.eta_s, r && r.geometry && r.geometry.coordinates.length]);
  if (drawnRoute === key) return;
  drawnRoute = key;
  routeLayer.clearLayers();
  const inc = view.incident;
  if (inc) L.circleMarker([inc.location.lat, inc.location.lon], { radius: 9, color: "#fff", weight: 3, fillColor: "#c62828", fillOpacity: 1 }).addTo(routeLayer);
  if (r && r.geometry) {
    const line = L.polyline(r.geometry.coordinates.map(([lon, lat]) => [lat, lon]), { color: "#1565c0", weight: 6 }).addTo(routeLayer);
    map.fitBounds(line.getBounds(), { padding: [20, 20] });
  } else if (inc) map.setView([inc.location.lat, inc.location.lon], 16);
  placeMe();
}

let me = null;
function placeMe() {
  if (!map || !view.unit || !view.unit.position) return;
  const ll = [view.unit.position.lat, view.unit.position.lon];
  if (me) me.setLatLng(ll);
  else me = L.circleMarker(ll, { radius: 8, color: "#fff", weight: 3, fillColor: "#1565c0", fillOpacity: 1 }).addTo(map);
}

start();
