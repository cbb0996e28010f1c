// trackstream history page: a camera's stored events (GET api/events), newest first, with the track's
// snapshot as thumbnail; a click plays the event's clip (H.264 mp4 from /media) in the page's player.
"use strict";

const $ = (id) => document.getElementById(id);
const list = $("events"), statusLine = $("status"), older = $("older"), player = $("player"), caption = $("caption");
let cursor = null;

// A token given once in the address (?token=...) is now a cookie: take it out of the address bar.
const given = new URLSearchParams(location.search);
if (given.has("token")) {
  given.delete("token");
  history.replaceState(null, "", location.pathname + (given.toString() ? `?${given}` : ""));
}

async function getJson(url) {
  const response = await fetch(url, { cache: "no-store", headers: { Accept: "application/json" } });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
  return body;
}

function query() {
  const params = new URLSearchParams();
  if ($("source").value) params.append("source", $("source").value);
  for (const kind of $("kind").value.split(",").filter(Boolean)) params.append("type", kind);
  if ($("since").value.trim()) params.set("since", $("since").value.trim());
  params.set("limit", "50");
  return params;
}

function describe(e) {
  const where = e.zone ? `zone ${e.zone}` : e.line ? `line ${e.line}${e.direction ? ` (${e.direction.replaceAll("_", " ")})` : ""}` : "";
  const who = e.track_id !== null && e.track_id !== undefined ? `${e.class_name || "track"} ${e.track_id}` : "";
  return { label: `${e.event.replaceAll("_", " ")}${where ? ` · ${where}` : ""}`, detail: who };
}

function row(e) {
  const item = $("event-template").content.firstElementChild.cloneNode(true);
  const text = describe(e);
  item.dataset.id = e.id;
  item.dataset.event = e.event;
  item.dataset.clip = clipState(e);
  item.querySelector('[data-field="time"]').textContent = new Date(e.time * 1000).toLocaleString();
  item.querySelector('[data-field="label"]').textContent = text.label;
  item.querySelector('[data-field="detail"]').textContent = text.detail;
  if (e.snapshot && e.snapshot.available) item.querySelector('[data-field="thumb"]').src = e.snapshot.url;
  const play = () => show(e, item);
  item.addEventListener("click", play);
  item.addEventListener("keydown", (ev) => { if (ev.key === "Enter") play(); });
  return item;
}

// ready, pending (its post-event part is still being recorded, or it is being encoded), deleted (by media
// retention), missing (never written: the run stopped first); none: this kind of event gets no clip.
function clipState(e) {
  if (!e.clip) return "none";
  return e.clip.state || (e.clip.available ? "ready" : "deleted");
}

const CLIP_SAYS = {
  pending: "its clip is being recorded; it plays here when it is ready",
  deleted: "its clip was deleted (media retention)",
  missing: "its clip was never written (the run stopped before it was finished)",
};
const RECHECK_MS = 2000, RECHECK_FOR_MS = 180000;

// A pending clip: ask for it again every 2 s until it is there (then play it if its event is still the one
// shown), for up to 3 minutes.
async function awaitClip(e, item) {
  const until = Date.now() + RECHECK_FOR_MS;
  while (Date.now() < until) {
    await new Promise((done) => setTimeout(done, RECHECK_MS));
    if (item.dataset.clip !== "pending") return;
    const response = await fetch(e.clip.url, { method: "HEAD", cache: "no-store" }).catch(() => null);
    if (response && response.ok) {
      e.clip = { ...e.clip, available: true, state: "ready" };
      item.dataset.clip = "ready";
      if (item.getAttribute("aria-current") === "true") show(e, item);
      return;
    }
  }
  if (item.getAttribute("aria-current") === "true") {
    caption.textContent = `${describe(e).label}: its clip has not appeared yet; reload the page to look again`;
  }
}

function show(e, item) {
  for (const other of list.querySelectorAll('[aria-current="true"]')) other.removeAttribute("aria-current");
  item.setAttribute("aria-current", "true");
  const text = describe(e);
  const state = clipState(e);
  if (state === "none") { caption.textContent = `${text.label}: no clip for this kind of event`; return; }
  if (state !== "ready") {
    caption.textContent = `${text.label}: ${CLIP_SAYS[state] || CLIP_SAYS.missing}`;
    if (state === "pending" && !item.dataset.waiting) {
      item.dataset.waiting = "yes";
      awaitClip(e, item).finally(() => { delete item.dataset.waiting; });
    }
    return;
  }
  player.src = e.clip.url;
  player.dataset.eventId = e.id;
  caption.textContent = `${text.label} ${text.detail ? `· ${text.detail}` : ""} · ${new Date(e.time * 1000).toLocaleString()}`;
  player.play().catch(() => {});
}

async function load(more) {
  const params = query();
  if (more && cursor) params.set("cursor", cursor);
  statusLine.textContent = "loading…";
  try {
    const page = await getJson(`api/events?${params}`);
    if (!more) list.replaceChildren();
    for (const e of page.events) list.append(row(e));
    cursor = page.next;
    older.hidden = !cursor;
    statusLine.textContent = list.children.length ? "" : "no events stored for this choice";
  } catch (err) {
    statusLine.textContent = `cannot load the history: ${err.message}`;
  }
}

async function start() {
  try {
    const { sources } = await getJson("api/history/sources");
    for (const id of sources) $("source").append(new Option(id, id));
  } catch (err) {
    statusLine.textContent = `cannot load the cameras: ${err.message}`;
  }
  const wanted = given.get("source");
  if (wanted) $("source").value = wanted;
  await load(false);
}

$("filters").addEventListener("submit", (ev) => { ev.preventDefault(); load(false); });
$("source").addEventListener("change", () => load(false));
$("kind").addEventListener("change", () => load(false));
older.addEventListener("click", () => load(true));
start();
