// The offline basemap: streets drawn on canvas tiles from the API's own vector tiles
// (GET /api/v1/basemap/{z}/{x}/{y}.json, built from the bundled OpenStreetMap extract). No outside tile
// server is needed; an online raster layer can be offered when the server is configured with one.

const STYLE = {
  motorway: ["#e07a5f", 5, "#a0482e"],
  trunk: ["#f4a261", 4.5, "#b86b2a"],
  primary: ["#f6c667", 4, "#b58a2e"],
  secondary: ["#fbe28f", 3.4, "#b5a25a"],
  tertiary: ["#ffffff", 3, "#a8a8a8"],
  unclassified: ["#ffffff", 2.2, "#b8b8b8"],
  residential: ["#ffffff", 2.2, "#b8b8b8"],
  living_street: ["#f2f2f2", 1.8, "#c4c4c4"],
  service: ["#ffffff", 1.4, "#c8c8c8"],
};
const LINK = /_link$/;

function style(cls, z) {
  const base = STYLE[cls.replace(LINK, "")] || STYLE.service;
  const scale = Math.max(0.35, Math.min(2.2, Math.pow(1.45, z - 15)));
  return { fill: base[0], width: base[1] * scale * (LINK.test(cls) ? 0.7 : 1), casing: base[2] };
}

function path(ctx, p, k) {
  ctx.beginPath();
  ctx.moveTo(p[0] * k, p[1] * k);
  for (let i = 2; i < p.length; i += 2) ctx.lineTo(p[i] * k, p[i + 1] * k);
}

export function drawTile(canvas, data, z) {
  const size = canvas.width;
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#eef0e6";
  ctx.fillRect(0, 0, size, size);
  const k = size / (data.extent || 4096);
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  const roads = data.roads || [];
  for (const pass of ["casing", "fill"]) {
    for (const r of roads) {
      const s = style(r.c, z);
      ctx.strokeStyle = pass === "casing" ? s.casing : s.fill;
      ctx.lineWidth = pass === "casing" ? s.width + 1.2 : s.width;
      path(ctx, r.p, k);
      ctx.stroke();
    }
  }
  ctx.font = `${z >= 17 ? 12 : 11}px system-ui, sans-serif`;
  ctx.textAlign = "center";
  ctx.textBaseline = "middle";
  for (const l of data.labels || []) {
    ctx.save();
    ctx.translate(l.x * k, l.y * k);
    ctx.rotate(l.a || 0);
    ctx.lineWidth = 3;
    ctx.strokeStyle = "rgba(255,255,255,0.9)";
    ctx.strokeText(l.n, 0, 0);
    ctx.fillStyle = "#333";
    ctx.fillText(l.n, 0, 0);
    ctx.restore();
  }
}

export function basemapLayer(L) {
  const Layer = L.GridLayer.extend({
    createTile(coords, done) {
      const canvas = document.createElement("canvas");
      const size = this.getTileSize();
      const ratio = Math.min(window.devicePixelRatio || 1, 2);
      canvas.width = size.x * ratio;
      canvas.height = size.y * ratio;
      canvas.style.width = `${size.x}px`;
      canvas.style.height = `${size.y}px`;
      fetch(`/api/v1/basemap/${coords.z}/${coords.x}/${coords.y}.json`)
        .then((r) => (r.ok ? r.json() : Promise.reject(new Error(`tile ${r.status}`))))
        .then((data) => {
          drawTile(canvas, data, coords.z);
          done(null, canvas);
        })
        .catch((err) => done(err, canvas));
      return canvas;
    },
  });
  return new Layer({ maxZoom: 19, minZoom: 10, attribution: "© OpenStreetMap contributors (ODbL)" });
}

// a Leaflet map of the region on our own basemap; region = GET /api/v1/region
export function regionMap(L, element, region, { zoom = 14 } = {}) {
  const map = L.map(element, { preferCanvas: true, zoomControl: true, maxZoom: 19, minZoom: 10 });
  const ours = basemapLayer(L).addTo(map);
  if (region && region.online_tiles) {
    const online = L.tileLayer(region.online_tiles, { maxZoom: 19, attribution: region.attribution });
    L.control.layers({ "Offline (OSM roads)": ours, Online: online }, {}, { position: "topright" }).addTo(map);
  }
  if (region && region.bounds) {
    const [s, w, n, e] = region.bounds;
    map.setMaxBounds(L.latLngBounds([s - 0.05, w - 0.05], [n + 0.05, e + 0.05]));
    map.setView(region.center || [(s + n) / 2, (w + e) / 2], zoom);
  } else {
    map.setView([21.0287, 105.8524], zoom);
  }
  return map;
}
