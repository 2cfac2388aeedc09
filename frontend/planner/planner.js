// The planner's coverage page: the share of demand each station set reaches within the report's thresholds
// (GET /api/v1/coverage), the cells coloured by it, every station's isochrones (GET /api/v1/coverage/isochrones),
// the worst-covered cells and the planner's downloads, over the project's own basemap; and where new stations
// would help most (GET /api/v1/coverage/siting): the existing stations kept, new sites added by a siting model.

import { Session, login, call, problemText, ApiError } from "/static/shared/api.js";
import * as i18n from "/static/shared/i18n.js";
import { regionMap } from "/static/shared/basemap.js";

const { t } = i18n;
const L = window.L;
const $ = (sel) => document.querySelector(sel);
const session = new Session(sessionStorage, "dispatch.planner");
// the share-covered classes, as dispatch/geo/report.py draws them on the PNG map
const BREAKS = [0, 0.5, 0.75, 0.9, 0.99];
const COLOURS = ["#d7191c", "#fdae61", "#ffffbf", "#a6d96a", "#1a9641"];
const params = new URLSearchParams(location.search);
const MINUTES = params.get("minutes") || "4,8,15";
// the report's question, from the page's address (e.g. /planner/?demand=history&cells=h3): the same for the
// layers, the figures and the downloads
const QUERY = new URLSearchParams({ minutes: MINUTES, cell_m: params.get("cell_m") || "500" });
for (const k of ["demand", "cells", "h3_resolution", "at"]) if (params.get(k)) QUERY.set(k, params.get(k));
// the drive times of an hour's traffic (HH:MM; none: now), for the isochrones and the siting as for the cells
const AT = params.get("at") || "";
const ISOCHRONES = `/coverage/isochrones?${new URLSearchParams(AT ? { minutes: MINUTES, at: AT } : { minutes: MINUTES })}`;

const state = { report: null, cells: null, isochrones: null, minutes: null, selected: null };
// the siting panel: the question being solved (or solved), its answer or the server's refusal
// error: the server's refusal (its own words) or a local one ({ key, vars }), shown in the current language
const siting = { running: false, result: null, error: null, selected: null, seq: 0 };
const SITING_MAX_NEW = 10;
let map, svg, cellLayer, isoLayer, stationLayer, sitingLayer;
const siteMarkers = new Map();
const cellById = new Map();

function esc(s) {
  return String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

function pct(v) {
  return new Intl.NumberFormat(i18n.lang, { style: "percent", minimumFractionDigits: 1, maximumFractionDigits: 1 }).format(v);
}

function num(v) {
  return new Intl.NumberFormat(i18n.lang, { maximumFractionDigits: 0 }).format(v);
}

function colour(share) {
  let k = 0;
  for (let i = 0; i < BREAKS.length; i++) if (share >= BREAKS[i]) k = i;
  return COLOURS[k];
}

function isProxy(source) {
  return String(source || "").toLowerCase().startsWith("proxy");
}

// ---------------------------------------------------------------- login

async function start() {
  session.onUnauthorized = () => {
    session.clear();
    showLogin();
  };
  i18n.apply();
  $("#lang").value = i18n.lang;
  $("#lang").onchange = (e) => i18n.setLang(e.target.value, render);
  $("#login-form").onsubmit = async (e) => {
    e.preventDefault();
    $("#login-error").textContent = "";
    try {
      const s = await login(session, $("#login-user").value.trim(), $("#login-pass").value);
      if (s.role === "crew") {
        session.clear();
        $("#login-error").textContent = t("crew_not_planner");
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
  $("#threshold").onchange = (e) => setMinutes(e.target.value);
  $("#at").value = AT;
  $("#at").onchange = (e) => {
    // another hour is another question: the page's address carries it, and the page asks it again
    const p = new URLSearchParams(location.search);
    if (e.target.value) p.set("at", e.target.value);
    else p.delete("at");
    location.search = p.toString();
  };
  $("#show-cells").onchange = showLayers;
  $("#show-iso").onchange = showLayers;
  for (const b of document.querySelectorAll("#downloads button")) b.onclick = () => download(b);
  $("#siting-model").onchange = renderSitingForm;
  $("#siting-minutes").oninput = renderSitingForm;
  $("#siting-run").onclick = runSiting;
  $("#siting-clear").onclick = clearSiting;
  renderLegend();
  renderSiting();
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
  const region = await fetch("/api/v1/region").then((r) => (r.ok ? r.json() : null)).catch(() => null);
  if (!map) setupMap(region);
  $("#login").classList.add("hidden");
  $("#loading").classList.remove("hidden");
  $("#error").textContent = "";
  const q = QUERY.toString();
  try {
    const [report, cells, isochrones] = await Promise.all([
      call(session, `/coverage?${q}`),
      call(session, `/coverage?${q}&format=geojson`),
      call(session, ISOCHRONES),
    ]);
    Object.assign(state, { report, cells, isochrones });
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return;
    $("#error").textContent = `${t("error")}: ${problemText(err)}`;
    return;
  } finally {
    $("#loading").classList.add("hidden");
  }
  const ms = state.report.thresholds_min.map((m) => String(m));
  state.minutes = ms.includes(state.minutes) ? state.minutes : ms[Math.floor(ms.length / 2)];
  if (!$("#siting-minutes").value) $("#siting-minutes").value = state.minutes; // the page's middle threshold
  drawCells();
  drawStations();
  render();
  if (cellLayer.getLayers().length) map.fitBounds(cellLayer.getBounds(), { padding: [10, 10] });
}

// ---------------------------------------------------------------- map

function setupMap(region) {
  map = regionMap(L, "map", region, { zoom: 13 });
  map.options.zoomSnap = 0.25; // the region's cells fill the map (whole zoom levels leave half of it empty)
  svg = L.svg({ padding: 0.3 }); // the coverage layers as SVG paths (the basemap is canvas)
  const el = map.getContainer();
  const mark = () => {
    const c = map.getCenter();
    el.dataset.zoom = String(map.getZoom());
    el.dataset.center = `${c.lat.toFixed(6)},${c.lng.toFixed(6)}`;
  };
  map.on("moveend zoomend", mark);
  mark();
}

function cellStyle(feature) {
  const share = feature.properties[`covered_${state.minutes}min`] ?? 0;
  const selected = feature.properties.cell === state.selected;
  return {
    renderer: svg,
    fillColor: colour(share),
    fillOpacity: 0.55,
    color: selected ? "#111" : "#ffffff",
    weight: selected ? 3 : 0.6,
  };
}

function drawCells() {
  if (cellLayer) cellLayer.remove();
  cellById.clear();
  cellLayer = L.geoJSON(state.cells, {
    renderer: svg,
    className: "cell",
    style: cellStyle,
    onEachFeature: (f, layer) => {
      cellById.set(f.properties.cell, layer);
      layer.on("add", () => layer.getElement() && (layer.getElement().dataset.cell = f.properties.cell));
      layer.bindTooltip(() => cellTip(f.properties), { sticky: true });
    },
  });
  showLayers();
}

function cellTip(p) {
  const m = state.minutes;
  const median = p.median_s === null ? t("not_reached") : i18n.mmss(p.median_s);
  return `${esc(p.cell)}: ${esc(t("covered_short"))} ${pct(p[`covered_${m}min`])}, ${esc(t("backup_short"))} ${pct(p[`backup_${m}min`])}<br>${esc(t("demand"))} ${num(p.demand)} · ${esc(t("median"))} ${esc(median)}`;
}

function drawIsochrones() {
  if (isoLayer) isoLayer.remove();
  const seconds = Number(state.minutes) * 60;
  const features = state.isochrones.features.filter((f) => f.properties.seconds === seconds);
  isoLayer = L.geoJSON({ type: "FeatureCollection", features }, {
    renderer: svg,
    className: "iso",
    interactive: false,
    style: () => ({ renderer: svg, color: "#1565c0", weight: 2, fillOpacity: 0.04, fillColor: "#1565c0" }),
  });
  showLayers();
}

function drawStations() {
  if (stationLayer) stationLayer.remove();
  stationLayer = L.layerGroup(
    state.report.stations.map((s) =>
      L.marker([s.lat, s.lon], {
        icon: L.divIcon({ className: "", html: `<div class="marker-station" data-station="${esc(s.name)}">+</div>`, iconSize: null, iconAnchor: [9, 9] }),
        keyboard: false,
        zIndexOffset: 400,
      }).bindTooltip(esc(s.name)),
    ),
  ).addTo(map);
}

function showLayers() {
  if (!map) return;
  for (const [layer, on] of [[cellLayer, $("#show-cells").checked], [isoLayer, $("#show-iso").checked]]) {
    if (!layer) continue;
    if (on && !map.hasLayer(layer)) layer.addTo(map);
    if (!on && map.hasLayer(layer)) layer.remove();
  }
  if (isoLayer && map.hasLayer(isoLayer)) isoLayer.bringToFront();
}

// ---------------------------------------------------------------- panel

function setMinutes(m) {
  state.minutes = m;
  state.selected = null;
  render();
}

function render() {
  const r = state.report;
  renderLegend();
  if (!r) return;
  const m = state.minutes;
  const proxy = isProxy(r.demand_source);
  $("#demand").classList.toggle("proxy", proxy);
  $("#demand").dataset.proxy = String(proxy);
  $("#demand-label").textContent = proxy ? t("proxy_warning") : `${t("demand")}:`;
  $("#demand-text").textContent = r.demand_source;

  const select = $("#threshold");
  select.innerHTML = r.thresholds_min.map((x) => `<option value="${esc(x)}">${esc(t("minutes", { m: x }))}</option>`).join("");
  select.value = m;

  $("#summary").classList.remove("hidden");
  $("#summary-title").textContent = t("covered_within", { m });
  const covered = $("#share-covered");
  covered.textContent = pct(r.covered[m]);
  covered.dataset.value = String(r.covered[m]);
  covered.dataset.minutes = m;
  const backup = $("#share-backup");
  backup.textContent = pct(r.backup[m]);
  backup.dataset.value = String(r.backup[m]);
  $("#summary-table tbody").innerHTML = r.thresholds_min
    .map((x) => {
      const k = String(x);
      return `<tr data-minutes="${esc(k)}" class="${k === m ? "current" : ""}"><td>${esc(t("minutes", { m: k }))}</td><td>${pct(r.covered[k])}</td><td>${pct(r.backup[k])}</td></tr>`;
    })
    .join("");
  const kind = r.cell_kind === "h3" ? t("cells_h3", { r: r.h3_resolution }) : t("cells_grid", { m: r.cell_m });
  $("#cells-note").textContent = t("cells_note", { n: state.cells.features.length, kind, reached: pct(1 - r.not_reached) });

  $("#worst-title").textContent = t("worst_cells", { m });
  $("#worst").innerHTML = (r.worst_cells[m] || [])
    .map((c) => {
      const share = c[`covered_${m}min`];
      const outside = c.demand * (1 - share);
      const median = c.median_s === null ? t("not_reached") : `${t("median")} ${i18n.mmss(c.median_s)}`;
      return `<li data-cell="${esc(c.cell)}" class="${c.cell === state.selected ? "selected" : ""}">${esc(t("worst_line", { cell: c.cell, share: pct(share) }))}<small>${esc(t("outside", { d: num(outside), m }))} · ${esc(median)}</small></li>`;
    })
    .join("");
  for (const li of document.querySelectorAll("#worst li")) li.onclick = () => zoomToCell(li.dataset.cell);

  $("#stations").innerHTML = r.stations.map((s) => `<li>${esc(s.name)}</li>`).join("");
  if (cellLayer) cellLayer.setStyle(cellStyle);
  drawIsochrones();
  renderSiting();
}

function renderLegend() {
  const rows = COLOURS.map((c, i) => {
    const lo = pct(BREAKS[i]).replace(/[.,]0(?=\D*$)/, "");
    const label = i === COLOURS.length - 1 ? t("legend_top", { lo }) : t("legend_bin", { lo, hi: pct(BREAKS[i + 1]).replace(/[.,]0(?=\D*$)/, "") });
    return `<li><i style="background:${c}"></i>${esc(label)}</li>`;
  });
  rows.push(`<li><i class="iso"></i>${esc(t("show_isochrones"))}${state.minutes ? ` (${esc(t("minutes", { m: state.minutes }))})` : ""}</li>`);
  $("#legend").innerHTML = rows.join("");
}

function zoomToCell(id) {
  const layer = cellById.get(id);
  if (!layer) return;
  state.selected = id;
  if (!$("#show-cells").checked) {
    $("#show-cells").checked = true;
    showLayers();
  }
  cellLayer.setStyle(cellStyle);
  layer.bringToFront();
  for (const li of document.querySelectorAll("#worst li")) li.classList.toggle("selected", li.dataset.cell === id);
  map.fitBounds(layer.getBounds(), { maxZoom: 16, padding: [40, 40] });
}

// ---------------------------------------------------------------- siting: where new stations help most

function sitingQuestion() {
  const model = $("#siting-model").value;
  const minutes = $("#siting-minutes").value.trim();
  const extra = $("#siting-new").value.trim();
  if (!minutes) return { error: { key: "siting_bad_minutes" } };
  const q = new URLSearchParams({ model, minutes });
  if (model !== "lscp") {
    // p counts every site of the plan: the existing stations (all kept) and the new ones
    const k = Number(extra);
    if (!/^\d+$/.test(extra) || k < 1 || k > SITING_MAX_NEW) return { error: { key: "siting_bad_new", vars: { max: SITING_MAX_NEW } } };
    q.set("p", String(state.report.stations.length + k));
  }
  q.set("keep_existing", "true");
  q.set("cell_m", QUERY.get("cell_m"));
  q.set("vehicle", "ambulance");
  if (AT) q.set("at", AT);
  q.set("format", "json");
  return { path: `/coverage/siting?${q}` };
}

async function runSiting() {
  if (siting.running || !state.report) return;
  const question = sitingQuestion();
  if (question.error) {
    siting.error = question.error;
    renderSiting();
    return;
  }
  const seq = ++siting.seq;
  Object.assign(siting, { running: true, error: null });
  renderSiting();
  try {
    const result = await call(session, question.path);
    if (seq !== siting.seq) return; // the plan was removed while it was solved
    Object.assign(siting, { result, selected: null });
    $("#siting").dataset.url = `/api/v1${question.path}`;
    drawSites();
  } catch (err) {
    if (seq !== siting.seq) return;
    siting.error = err instanceof ApiError && err.status === 401 ? null : { detail: problemText(err) };
  } finally {
    if (seq === siting.seq) siting.running = false;
    renderSiting();
  }
}

function clearSiting() {
  siting.seq++; // a plan still being solved is dropped when it comes back
  Object.assign(siting, { running: false, result: null, error: null, selected: null });
  delete $("#siting").dataset.url;
  drawSites();
  renderSiting();
}

function renderSitingForm() {
  const model = $("#siting-model").value;
  const m = $("#siting-minutes").value.trim() || state.minutes || "";
  $("#siting-new").disabled = model === "lscp"; // set covering finds the number of sites itself
  const n = state.report ? state.report.stations.length : 0;
  $("#siting-hint").textContent = t(`siting_hint_${model}`, { n, m });
}

function renderSiting() {
  renderSitingForm();
  const run = $("#siting-run");
  run.disabled = siting.running || !state.report;
  run.textContent = siting.running ? t("siting_solving") : t("siting_run");
  run.setAttribute("aria-busy", String(siting.running));
  const e = siting.error;
  $("#siting-error").textContent = !e ? "" : e.key ? t(e.key, e.vars) : `${t("error")}: ${e.detail}`;
  const r = siting.result;
  $("#siting-clear").classList.toggle("hidden", !r && !siting.error);
  $("#siting-result").classList.toggle("hidden", !r);
  if (!r) {
    $("#siting-table tbody").innerHTML = "";
    return;
  }
  const m = new Intl.NumberFormat(i18n.lang, { maximumFractionDigits: 2 }).format(r.minutes);
  $("#siting-shares-title").textContent = t("siting_covered", { m });
  for (const [id, v] of [["#siting-before", r.covered_before], ["#siting-after", r.covered_after]]) {
    const el = $(id);
    el.textContent = pct(v);
    el.dataset.value = String(v);
  }
  const mean = r.mean_time_s_before !== null && r.mean_time_s_after !== null;
  $("#siting-mean").classList.toggle("hidden", !mean);
  $("#siting-mean").textContent = mean ? t("siting_mean", { before: i18n.mmss(r.mean_time_s_before), after: i18n.mmss(r.mean_time_s_after) }) : "";
  const sites = [...r.sites].sort((a, b) => a.order - b.order);
  $("#siting-table tbody").innerHTML = sites
    .map((s, i) => {
      const kept = s.existing;
      const tag = kept ? `<span class="tag kept">${esc(t("siting_kept"))}</span>` : `<span class="tag new">${esc(t("siting_new_tag"))}</span>`;
      const gain = s.gain === null ? "–" : `+${esc(pct(s.gain))}`;
      const order = kept ? "–" : esc(s.order);
      return `<tr data-i="${i}" data-order="${esc(s.order)}" data-existing="${kept}" class="${kept ? "kept" : "new"}${i === siting.selected ? " selected" : ""}"><td>${order}</td><td>${esc(s.name)}${tag}</td><td>${gain}</td><td>${esc(pct(s.covered_after))}</td></tr>`;
    })
    .join("");
  for (const tr of document.querySelectorAll("#siting-table tbody tr")) tr.onclick = () => zoomToSite(sites[Number(tr.dataset.i)], Number(tr.dataset.i));
  const notes = [
    t("siting_note", {
      n: r.new_sites,
      kept: sites.filter((s) => s.existing).length,
      source: r.demand_source,
      solver: r.solver ? r.solver.name : "",
      status: r.solver ? r.solver.status : "",
    }),
  ];
  if (r.not_coverable > 0) notes.push(t("siting_not_coverable", { share: pct(r.not_coverable), m }));
  notes.push(t("siting_cells"), t("siting_click"));
  $("#siting-note").textContent = notes.join(" ");
}

function drawSites() {
  if (sitingLayer) sitingLayer.remove();
  sitingLayer = null;
  siteMarkers.clear();
  const r = siting.result;
  if (!r || !map) return;
  // the new sites only: the kept stations are on the map already
  sitingLayer = L.layerGroup(
    r.sites
      .filter((s) => !s.existing)
      .sort((a, b) => a.order - b.order)
      .map((s) => {
        const marker = L.marker([s.lat, s.lon], {
          icon: L.divIcon({ className: "", html: `<div class="marker-site" data-order="${esc(s.order)}" data-site="${esc(s.name)}">${esc(s.order)}</div>`, iconSize: null, iconAnchor: [13, 13] }),
          keyboard: false,
          zIndexOffset: 600,
        }).bindTooltip(`${esc(s.name)}: +${esc(pct(s.gain ?? 0))}`);
        siteMarkers.set(s.order, marker);
        return marker;
      }),
  ).addTo(map);
}

function zoomToSite(s, i) {
  if (!s || !map) return;
  siting.selected = i;
  for (const tr of document.querySelectorAll("#siting-table tbody tr")) tr.classList.toggle("selected", Number(tr.dataset.i) === i);
  for (const el of document.querySelectorAll(".marker-site")) el.classList.toggle("selected", !s.existing && el.dataset.order === String(s.order));
  map.setView([s.lat, s.lon], Math.max(map.getZoom(), 15));
  const marker = s.existing ? null : siteMarkers.get(s.order);
  if (marker) marker.openTooltip();
}

// ---------------------------------------------------------------- downloads (with the bearer token)

function downloadTarget(kind) {
  const m = state.minutes;
  const q = QUERY.toString();
  return {
    cells: [`/coverage?${q}&format=geojson`, "coverage-cells.geojson"],
    isochrones: [ISOCHRONES, "coverage-isochrones.geojson"],
    csv: [`/coverage?${q}&format=csv`, "coverage.csv"],
    png: [`/coverage?${q}&format=png&map_minutes=${m}`, `coverage-${m}min.png`],
    html: [`/coverage?${q}&format=html&map_minutes=${m}`, `coverage-${m}min.html`],
  }[kind];
}

async function download(button) {
  const [path, filename] = downloadTarget(button.dataset.download);
  $("#error").textContent = "";
  button.setAttribute("aria-busy", "true");
  try {
    const r = await fetch(`/api/v1${path}`, { headers: { Authorization: `Bearer ${session.token}` } });
    if (r.status === 401 && session.onUnauthorized) session.onUnauthorized();
    if (!r.ok) {
      const body = await r.json().catch(() => null);
      throw new ApiError(r.status, (body && body.detail) || `HTTP ${r.status}`, body);
    }
    const blob = await r.blob();
    const url = URL.createObjectURL(blob);
    const a = document.createElement("a");
    a.href = url;
    a.download = filename;
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  } catch (err) {
    $("#error").textContent = `${t("error")}: ${problemText(err)}`;
  } finally {
    button.removeAttribute("aria-busy");
  }
}

start();
