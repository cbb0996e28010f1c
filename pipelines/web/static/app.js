// trackstream live view: one tile per source, updated from server-sent events (api/events); each tile
// pulls its pictures one at a time (snapshot/ID?after=N), so a viewer never gets more than it can show
// and a hidden tab costs nothing. Plain JavaScript, no build step, no network beyond this server.
"use strict";

const tiles = new Map();      // source id -> {root, fields, puller}
let maxFps = 10;

const $ = (root, name) => root.querySelector(`[data-field="${name}"]`);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const fmt = (value, digits = 1) => (value === null || value === undefined ? "–" : Number(value).toFixed(digits));

// The colour a track is drawn with (pipelines/processing/overlays.py id_color): golden-ratio hues.
function trackColor(id) {
  const h = (id * 0.6180339887498949) % 1, s = 0.85, v = 0.95;
  const i = Math.floor(h * 6), f = h * 6 - i, p = v * (1 - s), q = v * (1 - f * s), t = v * (1 - (1 - f) * s);
  const [r, g, b] = [[v, t, p], [q, v, p], [p, v, t], [p, q, v], [t, p, v], [v, p, q]][i % 6];
  return `rgb(${Math.round(r * 255)}, ${Math.round(g * 255)}, ${Math.round(b * 255)})`;
}

function cell(row, text) {
  const td = document.createElement("td");
  td.textContent = text;
  row.appendChild(td);
  return td;
}

function tileFor(id) {
  let tile = tiles.get(id);
  if (tile) return tile;
  const root = document.getElementById("tile-template").content.firstElementChild.cloneNode(true);
  root.dataset.source = id;
  $(root, "id").textContent = id;
  $(root, "picture").alt = `live picture of ${id}`;
  document.getElementById("tiles").appendChild(root);
  tile = { root, seq: 0, heatmap: null };
  tiles.set(id, tile);
  pullPictures(tile, id);
  const box = $(root, "heatmap-box");
  box.addEventListener("toggle", () => { if (box.open) pullHeatmap(tile); });
  return tile;
}

// While the tile's heatmap box is open: its picture (api/heatmap/ID.png) every HEATMAP_EVERY_MS.
const HEATMAP_EVERY_MS = 3000;
async function pullHeatmap(tile) {
  const box = $(tile.root, "heatmap-box"), img = $(tile.root, "heatmap");
  img.alt = `heatmap of ${tile.root.dataset.source}`;
  let shown = null;
  while (box.open && tile.heatmap) {
    await whenVisible();
    try {
      const response = await fetch(tile.heatmap.url.replace(/^\//, ""), { cache: "no-store" });
      if (response.ok) {
        const url = URL.createObjectURL(await response.blob());
        await new Promise((resolve) => { img.onload = img.onerror = resolve; img.src = url; });
        if (shown) URL.revokeObjectURL(shown);
        shown = url;
      }
    } catch (err) { /* the run ended: keep the last one */ }
    await sleep(HEATMAP_EVERY_MS);
  }
}

async function whenVisible() {
  while (document.hidden) await new Promise((resolve) => document.addEventListener("visibilitychange", resolve, { once: true }));
}

// One picture at a time: ask for one newer than the last, show it, wait out the frame interval, repeat.
async function pullPictures(tile, id) {
  const img = $(tile.root, "picture");
  let shown = null;
  for (;;) {
    await whenVisible();
    const started = performance.now();
    try {
      const response = await fetch(`snapshot/${encodeURIComponent(id)}?after=${tile.seq}`, { cache: "no-store" });
      if (response.ok) {
        tile.seq = Number(response.headers.get("X-Frame-Seq")) || tile.seq;
        const url = URL.createObjectURL(await response.blob());
        await new Promise((resolve) => { img.onload = img.onerror = resolve; img.src = url; });
        // the picture's own shape, at once: the status document that also says it may come later
        if (img.naturalWidth > 0) img.parentElement.style.aspectRatio = `${img.naturalWidth} / ${img.naturalHeight}`;
        if (shown) URL.revokeObjectURL(shown);
        shown = url;
        $(tile.root, "no-picture").hidden = true;
      } else {
        await sleep(1000);
      }
    } catch (err) {
      await sleep(1000);   // the run ended or the network went away; keep trying
    }
    const wait = 1000 / maxFps - (performance.now() - started);
    if (wait > 0) await sleep(wait);
  }
}

function fillRows(body, rows, make) {
  const fresh = document.createDocumentFragment();
  for (const row of rows) {
    const tr = document.createElement("tr");
    make(tr, row);
    fresh.appendChild(tr);
  }
  body.replaceChildren(fresh);
}

function eventText(event) {
  const parts = [(event.event || "event").replaceAll("_", " ")];
  const track = event.track || {};
  if (track.id !== undefined) parts.push(`#${track.id}`);
  if (track.class_name) parts.push(track.class_name);
  if (event.zone) parts.push(`zone ${event.zone}`);
  if (event.line) parts.push(`line ${event.line}`);
  if (event.direction) parts.push(event.direction.replaceAll("_", " "));
  if (event.reason) parts.push(`(${event.reason.replaceAll("_", " ")})`);
  return parts.join(" ");
}

function render(doc) {
  const tile = tileFor(doc.id);
  const root = tile.root;
  const state = $(root, "state");
  state.textContent = doc.state;
  state.dataset.state = doc.state;
  root.dataset.state = doc.state;
  $(root, "fps").textContent = `${fmt(doc.fps_in)} / ${fmt(doc.fps_out)}`;
  const lat = doc.latency_ms || {};
  $(root, "latency").textContent = lat.p50 === null || lat.p50 === undefined ? "–" : `${lat.p50} / ${lat.p95} ms`;
  $(root, "duty").textContent = doc.detector_duty === null || doc.detector_duty === undefined ? "–"
    : `${Math.round(doc.detector_duty * 100)}%`;
  $(root, "dropped").textContent = doc.dropped;
  $(root, "reconnects").textContent = doc.reconnects;
  if (doc.frame) $(root, "picture").parentElement.style.aspectRatio = `${doc.frame.width} / ${doc.frame.height}`;
  tile.heatmap = doc.heatmap || null;   // {url, frames, classes} while the source's heatmap is on
  $(root, "heatmap-box").hidden = !doc.heatmap;
  if (doc.heatmap) $(root, "heatmap-note").textContent = `${doc.heatmap.frames} frames`;

  $(root, "track-count").textContent = doc.tracks.length;
  fillRows($(root, "tracks"), doc.tracks, (tr, t) => {
    tr.dataset.track = t.id;
    if (t.coasting) tr.className = "coasting";
    const id = cell(tr, t.id);
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = trackColor(t.id);
    id.prepend(swatch);
    cell(tr, t.class);
    cell(tr, fmt(t.confidence, 2));
    cell(tr, fmt(t.age_s));
    cell(tr, fmt(t.speed_px_s, 0));
    cell(tr, t.speed_kmh === null || t.speed_kmh === undefined ? "–" : fmt(t.speed_kmh, 1)).dataset.value = "speed_kmh";
    cell(tr, Object.entries(t.zones || {}).map(([z, s]) => `${z} ${fmt(s, 1)}`).join(", ") || "–").dataset.value = "zones";
  });

  const zones = Object.entries(doc.zones || {}), lines = Object.entries(doc.lines || {});
  // a zone or line that counts some classes only (its classes:) names them
  const only = (name, classes) => (classes && classes.length ? `${name} [${classes.join(", ")}]` : name);
  $(root, "counts").hidden = !zones.length && !lines.length;
  $(root, "zones-table").hidden = !zones.length;
  $(root, "lines-table").hidden = !lines.length;
  fillRows($(root, "zones"), zones, (tr, [name, z]) => {
    tr.dataset.zone = name;
    cell(tr, only(name, z.classes)); cell(tr, z.occupancy).dataset.count = "occupancy";
    cell(tr, z.entries).dataset.count = "entries"; cell(tr, z.exits).dataset.count = "exits";
    const d = z.dwell || {}, longest = Math.max(0, ...(d.inside || []).map((i) => i.seconds));
    cell(tr, `${d.mean_s === null || d.mean_s === undefined ? "–" : fmt(d.mean_s, 1)} · ${fmt(longest, 1)}`).dataset.count = "dwell";
  });
  fillRows($(root, "lines"), lines, (tr, [name, l]) => {
    tr.dataset.line = name;
    cell(tr, only(name, l.classes)); cell(tr, l.left_to_right).dataset.count = "left_to_right";
    cell(tr, l.right_to_left).dataset.count = "right_to_left";
  });
  // warnings before a predicted crossing or entry that stand now (lines and zones with predict_seconds), soonest first
  const predictions = doc.predictions || [];
  const predicting = [...zones, ...lines].some(([, c]) => c.predicted_pending !== undefined);
  $(root, "predictions-table").hidden = !predicting;
  $(root, "prediction-count").textContent = predictions.length;
  fillRows($(root, "predictions"), predictions, (tr, p) => {
    tr.dataset.track = p.track_id;
    const id = cell(tr, `#${p.track_id}`);
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = trackColor(p.track_id);
    id.prepend(swatch);
    cell(tr, p.class_name);
    const where = p.line !== undefined ? `line ${p.line} ${p.direction.replaceAll("_", " ")}` : `zone ${p.zone}`;
    cell(tr, where).dataset.value = "where";
    cell(tr, fmt(p.seconds, 1)).dataset.value = "seconds";
    cell(tr, `${Math.round(p.probability * 100)}%`);
  });

  const list = $(root, "events");
  list.replaceChildren(...[...doc.events].reverse().map((e) => {
    const li = document.createElement("li");
    const when = document.createElement("time");
    const t = e.time;
    when.textContent = t ? new Date(t * 1000).toLocaleTimeString() : "";
    li.append(when, eventText(e));
    return li;
  }));
}

function update(all) {
  maxFps = all.max_fps || maxFps;
  for (const doc of all.sources) render(doc);
}

let events = null;

function connect() {
  const banner = document.getElementById("connection");
  events = new EventSource("api/events");
  events.addEventListener("status", (message) => {
    banner.textContent = `updated ${new Date().toLocaleTimeString()}`;
    banner.dataset.state = "open";
    update(JSON.parse(message.data));
  });
  events.onerror = () => {
    banner.textContent = "connection lost: retrying…";
    banner.dataset.state = "lost";
  };
}

// A token given once in the address (?token=...) is now a cookie: take it out of the address bar.
if (new URLSearchParams(location.search).has("token")) history.replaceState(null, "", location.pathname);
// The event history (a run with --db) has its own page: link to it when this view serves one.
fetch("history", { method: "HEAD", cache: "no-store" })
  .then((r) => { document.getElementById("pages").hidden = !r.ok; }, () => {});
fetch("api/sources", { cache: "no-store" }).then((r) => (r.ok ? r.json() : null)).then((all) => all && update(all));
connect();
// A page left for another (even one kept in the back-forward cache) holds no connection open.
window.addEventListener("pagehide", () => { if (events) events.close(); events = null; });
window.addEventListener("pageshow", () => { if (!events) connect(); });
