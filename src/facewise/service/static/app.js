// facewise web page: plain JavaScript over the /v1 API. Every value from the server goes into the page
// through textContent (never innerHTML), so names cannot inject markup.
"use strict";

const $ = (sel) => document.querySelector(sel);
const KEY = "facewise.key";
const COLL = "facewise.collection";
const state = {
  key: sessionStorage.getItem(KEY),
  collection: sessionStorage.getItem(COLL),
  me: null,
  page: { offset: 0, limit: 50, total: 0 },
  person: null,
  profile: null,
  blobs: [],
  uploadRun: 0,
  cancelWait: null,
};

// -- helpers ---------------------------------------------------------------------------------------
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== null && v !== undefined && v !== false) node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) node.append(c);
  return node;
}

function clearMessages() {
  // Every new action starts clean: no stale banner, no pending question, no earlier per-file results.
  say("");
  state.uploadRun += 1;
  if (state.cancelWait) { const c = state.cancelWait; state.cancelWait = null; c(); }
  $("#picker").hidden = true;
  $("#confirm").hidden = true;
  $("#person-results").replaceChildren();
}

function clearResults() {
  // A collection switch: nothing shown may belong to the previous collection.
  clearMessages();
  state.person = null;
  $("#person-detail").hidden = true;
  for (const c of document.querySelectorAll("canvas")) { c.width = 0; c.height = 0; }
  $("#identify-table tbody").replaceChildren();
  $("#identify-table").hidden = true;
  $("#identify-note").textContent = "";
  $("#verify-result").textContent = "";
  $("#timeline").replaceChildren();
  $("#timeline-card").hidden = true;
  $("#video-state").textContent = "";
  $("#video-progress").hidden = true;
  if (typeof onCollectionChanged === "function") onCollectionChanged();
}

function say(message, kind = "") {
  const s = $("#status");
  s.textContent = message;
  s.className = "status " + kind;
}

async function api(path, { method = "GET", json, form, raw = false } = {}) {
  const headers = { Authorization: "Bearer " + state.key };
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form) {
    body = form;
  }
  const res = await fetch(path, { method, headers, body });
  if (res.ok && raw) return res;
  if (res.status === 204) return null;
  let data = null;
  try { data = await res.json(); } catch (e) { data = null; }
  if (!res.ok) {
    const err = new Error((data && data.error && data.error.message) || res.statusText || "request failed");
    err.status = res.status;
    err.code = data && data.error && data.error.code;
    throw err;
  }
  return data;
}

const coll = () => "/v1/collections/" + encodeURIComponent(state.collection);
const fmt = (x, digits = 3) => (x === null || x === undefined ? "n/a" : Number(x).toFixed(digits));
const far = (x) => (x === null || x === undefined ? "n/a" : Number(x).toExponential(1));
const mmss = (ms) => {
  const s = Math.max(0, ms / 1000);
  return Math.floor(s / 60) + ":" + (s % 60).toFixed(1).padStart(4, "0");
};

async function blobUrl(path) {
  const res = await api(path, { raw: true });
  const url = URL.createObjectURL(await res.blob());
  state.blobs.push(url);
  return url;
}

function freeBlobs() {
  state.blobs.forEach((u) => URL.revokeObjectURL(u));
  state.blobs = [];
}

function failed(err) {
  if (err.status === 401) {
    signOut("Your key was refused (" + err.message + "). Sign in again.");
    return;
  }
  say(err.message, "error");
}

function dropZone(zone, input, onFiles) {
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    if (e.dataTransfer.files.length) onFiles([...e.dataTransfer.files]);
  });
  input.addEventListener("change", () => {
    if (input.files.length) onFiles([...input.files]);
    input.value = "";
  });
}

// -- sign in / out ---------------------------------------------------------------------------------
async function signIn(key) {
  state.key = key;
  try {
    state.me = await api("/v1/me");
  } catch (err) {
    state.key = null;
    sessionStorage.removeItem(KEY);
    say(err.status === 401 ? "That key was not accepted." : err.message, "error");
    return;
  }
  sessionStorage.setItem(KEY, key);
  $("#signin-view").hidden = true;
  $("#app-view").hidden = false;
  $("#session").hidden = false;
  $("#whoami").textContent = state.me.key.name + " · " + state.me.key.scopes.join(", ");
  if (typeof onSignedIn === "function") onSignedIn();
  say("Signed in as " + state.me.key.name + ".", "ok");
  await loadCollections();
}

function signOut(message = "Signed out.") {
  sessionStorage.removeItem(KEY);
  state.key = null;
  state.me = null;
  freeBlobs();
  $("#app-view").hidden = true;
  $("#session").hidden = true;
  $("#signin-view").hidden = false;
  $("#apikey").value = "";
  $("#apikey").focus();
  say(message, message === "Signed out." ? "" : "error");
}

async function loadCollections() {
  const list = await api("/v1/collections");
  const sel = $("#collection");
  sel.replaceChildren(...list.map((c) => el("option", { value: c.name, text: `${c.name} (${c.profile})` })));
  if (!list.length) {
    say("This key sees no collection. Ask an admin to create one.", "error");
    return;
  }
  if (!list.some((c) => c.name === state.collection)) state.collection = list[0].name;
  sel.value = state.collection;
  state.profile = list.find((c) => c.name === state.collection).profile;
  state.collections = list;
  sessionStorage.setItem(COLL, state.collection);
  state.page.offset = 0;
  await loadPeople();
}

async function switchCollection(name) {
  state.collection = name;
  sessionStorage.setItem(COLL, name);
  $("#collection").value = name;
  const c = (state.collections || []).find((x) => x.name === name);
  state.profile = c ? c.profile : null;
  clearResults();
  state.page.offset = 0;
  await loadPeople();
  say(`Collection ${name}${c ? " (profile " + c.profile + ")" : ""}.`, "ok");
}

// -- tabs ------------------------------------------------------------------------------------------
function selectTab(tab) {
  say("");
  for (const t of document.querySelectorAll("[role=tab]")) {
    const on = t === tab;
    t.setAttribute("aria-selected", String(on));
    t.tabIndex = on ? 0 : -1;
    document.getElementById(t.getAttribute("aria-controls")).hidden = !on;
  }
  if (tab.id === "tab-verify") fillPersonSelect();
  if (typeof onTab === "function") onTab(tab);
}

function tabKeys(e) {
  const tabs = [...document.querySelectorAll("[role=tab]")].filter((t) => !t.hidden);
  const i = tabs.indexOf(document.activeElement);
  if (i < 0) return;
  let j = null;
  if (e.key === "ArrowRight") j = (i + 1) % tabs.length;
  if (e.key === "ArrowLeft") j = (i - 1 + tabs.length) % tabs.length;
  if (e.key === "Home") j = 0;
  if (e.key === "End") j = tabs.length - 1;
  if (j === null) return;
  e.preventDefault();
  tabs[j].focus();
  selectTab(tabs[j]);
}

// -- people ----------------------------------------------------------------------------------------
async function loadPeople() {
  const { offset, limit } = state.page;
  const data = await api(`${coll()}/persons?offset=${offset}&limit=${limit}`);
  state.page.total = data.total;
  $("#people-count").textContent = `(${data.total})`;
  const list = $("#people-list");
  list.replaceChildren(...data.items.map((p) => el("li", {},
    el("button", {
      type: "button", "data-person-id": p.id, "aria-current": state.person && state.person.id === p.id ? "true" : null,
      onclick: () => { clearMessages(); showPerson(p.id); },
    }, el("span", { text: p.name }), el("span", { class: "muted", text: `${p.samples} photo${p.samples === 1 ? "" : "s"}` })))));
  if (!data.items.length) list.append(el("li", { class: "muted", text: "Nobody yet: create a person above." }));
  $("#people-prev").disabled = offset === 0;
  $("#people-next").disabled = offset + limit >= data.total;
}

async function createPerson(e) {
  e.preventDefault();
  clearMessages();
  const input = $("#new-person-name");
  try {
    const p = await api(`${coll()}/persons`, { method: "POST", json: { name: input.value } });
    input.value = "";
    say(`Created ${p.name}. Add photos of them.`, "ok");
    await loadPeople();
    await showPerson(p.id);
    $("#person-files").focus();
  } catch (err) { failed(err); }
}

async function showPerson(id, { keepResults = false } = {}) {
  try {
    const p = await api(`${coll()}/persons/${id}`);
    state.person = p;
    $("#person-detail").hidden = false;
    $("#person-name").textContent = p.name;
    if (!keepResults) $("#person-results").replaceChildren();
    for (const b of document.querySelectorAll("#people-list button")) {
      b.setAttribute("aria-current", String(Number(b.dataset.personId) === p.id));
    }
    await renderSamples(p);
  } catch (err) { failed(err); }
}

async function renderSamples(p) {
  freeBlobs();
  $("#samples-count").textContent = `(${p.faces.length})`;
  const items = p.faces.map((s) => {
    const img = el("img", { alt: `face ${s.id} of ${p.name}` });
    blobUrl(`${coll()}/persons/${p.id}/faces/${s.id}/thumbnail`).then((u) => { img.src = u; }).catch(() => {});
    return el("li", { "data-sample-id": s.id }, img,
      el("div", { text: s.source || `face ${s.id}` }),
      el("div", { class: "muted", text: `quality ${fmt(s.quality, 2)} · yaw ${fmt(s.yaw, 0)}°` }),
      el("button", { type: "button", class: "danger small", "aria-label": `Delete face ${s.id}`,
        onclick: () => deleteSample(s.id) }, "Delete"));
  });
  $("#samples").replaceChildren(...items);
}

async function deleteSample(id) {
  clearMessages();
  if (!confirm(`Delete face ${id}?`)) return;
  try {
    await api(`${coll()}/faces/${id}`, { method: "DELETE" });
    say(`Deleted face ${id}.`, "ok");
    await showPerson(state.person.id);
    await loadPeople();
  } catch (err) { failed(err); }
}

async function deletePerson() {
  clearMessages();
  const p = state.person;
  if (!p || !confirm(`Delete ${p.name} and all their faces?`)) return;
  try {
    await api(`${coll()}/persons/${p.id}`, { method: "DELETE" });
    state.person = null;
    $("#person-detail").hidden = true;
    say(`Deleted ${p.name}.`, "ok");
    await loadPeople();
  } catch (err) { failed(err); }
}

// -- identify --------------------------------------------------------------------------------------
async function identify(files) {
  clearMessages();
  const file = files[0];
  const form = new FormData();
  form.append("image", file, file.name);
  say("Identifying…");
  try {
    const [r, bitmap] = await Promise.all([
      api(`${coll()}/identify`, { method: "POST", form }),
      createImageBitmap(file, { imageOrientation: "from-image" }),
    ]);
    drawFaces(bitmap, r);
    const rows = r.faces.map((f, i) => el("tr", { "data-person": f.person },
      el("td", { text: String(i + 1) }),
      el("td", { class: f.person === "unknown" ? "unknown" : "known", text: f.person }),
      el("td", { text: fmt(f.score) }), el("td", { text: far(f.far) }),
      el("td", { text: fmt(f.quality, 2) + (f.quality_reasons.length ? " (" + f.quality_reasons.join("; ") + ")" : "") }),
      el("td", { text: fmt(f.yaw, 0) + "°" })));
    $("#identify-table tbody").replaceChildren(...rows);
    addEnrolToIdentify(file, r);
    $("#identify-table").hidden = !rows.length;
    $("#identify-note").textContent = `threshold ${fmt(r.threshold)} (${r.threshold_source}), profile ${r.profile}`;
    const names = r.faces.map((f) => f.person);
    say(rows.length ? `${rows.length} face${rows.length === 1 ? "" : "s"}: ${names.join(", ")}.` : "No face found.",
      rows.length ? "ok" : "error");
  } catch (err) { failed(err); }
}

function drawBoxes(canvas, bitmap, size, faces, colourOverride = null) {
  // The photo scaled to at most 960 px wide, a box and a label per face; returns the image→canvas scale.
  const scale = Math.min(1, 960 / bitmap.width);
  canvas.width = Math.round(bitmap.width * scale);
  canvas.height = Math.round(bitmap.height * scale);
  const ctx = canvas.getContext("2d");
  ctx.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  const sx = canvas.width / size.width;
  const sy = canvas.height / size.height;
  const font = Math.max(14, Math.round(canvas.width / 45));
  ctx.font = `600 ${font}px system-ui, sans-serif`;
  ctx.lineWidth = Math.max(2, Math.round(canvas.width / 300));
  for (const f of faces) {
    const [x1, y1, x2, y2] = f.box;
    const known = f.known !== undefined ? f.known : f.person !== "unknown";
    const colour = colourOverride || (known ? "#0a8f3c" : "#d93025");
    ctx.strokeStyle = colour;
    ctx.strokeRect(x1 * sx, y1 * sy, (x2 - x1) * sx, (y2 - y1) * sy);
    const label = f.label || (known && f.score !== undefined ? `${f.person} ${fmt(f.score, 2)}` : f.person);
    const w = ctx.measureText(label).width + 10;
    const ly = Math.max(0, y1 * sy - font - 8);
    ctx.fillStyle = colour;
    ctx.fillRect(x1 * sx, ly, w, font + 8);
    ctx.fillStyle = "#fff";
    ctx.fillText(label, x1 * sx + 5, ly + font + 1);
  }
  return { sx, sy };
}

function drawFaces(bitmap, r) {
  const canvas = $("#identify-canvas");
  drawBoxes(canvas, bitmap, r.image, r.faces);
  canvas.setAttribute("aria-label", r.faces.length
    ? "Photo with faces: " + r.faces.map((f) => f.person).join(", ") : "Photo with no face found");
}

// -- verify ----------------------------------------------------------------------------------------
async function fillPersonSelect() {
  try {
    const data = await api(`${coll()}/persons?limit=500`);
    const sel = $("#verify-person");
    const keep = sel.value;
    sel.replaceChildren(el("option", { value: "", text: "(use the second photo)" }),
      ...data.items.map((p) => el("option", { value: p.id, text: p.name })));
    sel.value = keep;
  } catch (err) { failed(err); }
}

async function verify(e) {
  e.preventDefault();
  clearMessages();
  const a = $("#verify-a").files[0];
  const b = $("#verify-b").files[0];
  const person = $("#verify-person").value;
  const out = $("#verify-result");
  if (!person && !b) {
    out.textContent = "Choose a second photo or an enrolled person.";
    out.className = "verdict different";
    return;
  }
  const form = new FormData();
  form.append("image", a, a.name);
  if (person) form.append("person_id", person);
  else form.append("other", b, b.name);
  form.append("face", "largest");  // the console compares the largest face of each photo and draws which
  out.textContent = "Comparing…";
  out.className = "verdict";
  try {
    const v = await api(`${coll()}/verify`, { method: "POST", form });
    const who = v.person ? ` as ${v.person.name}` : "";
    out.textContent = `${v.same ? "Same person" : "Different people"}${v.same ? who : ""}: score ${fmt(v.score)}, ` +
      `threshold ${fmt(v.threshold)}, est. FAR ${far(v.far)}${v.reason ? " — " + v.reason : ""}`;
    out.className = "verdict " + (v.same ? "same" : "different");
    await verifyBoxes(v);
  } catch (err) {
    out.textContent = "";
    failed(err);
  }
}

// -- video -----------------------------------------------------------------------------------------
async function submitVideo(e) {
  e.preventDefault();
  clearMessages();
  const file = $("#video-file").files[0];
  const form = new FormData();
  form.append("video", file, file.name);
  const task = $("#video-task").value;
  const redact = task.startsWith("redact-");
  if (redact) {
    form.append("mode", task.slice("redact-".length));
    form.append("style", $("#video-style").value);
  } else {
    form.append("fps", $("#video-fps").value || "5");
  }
  const bar = $("#video-progress");
  bar.hidden = false;
  bar.value = 0;
  $("#timeline-card").hidden = true;
  $("#video-state").textContent = "Uploading…";
  try {
    const job = await api(`${coll()}/${redact ? "redactions" : "videos"}`, { method: "POST", form });
    await pollJob(job.id);
  } catch (err) {
    $("#video-state").textContent = "";
    failed(err);
  }
}

async function pollJob(id) {
  for (;;) {
    const job = await api(`/v1/jobs/${id}`);
    $("#video-progress").value = job.progress;
    $("#video-state").textContent = `${job.state} · ${Math.round(job.progress * 100)} %`;
    if (job.state === "done" || job.state === "failed" || job.state === "cancelled") {
      if (job.state === "failed") say(`Video failed: ${job.error.message}`, "error");
      if (job.result) await renderTimeline(job);
      return;
    }
    await new Promise((res) => setTimeout(res, 1000));
  }
}

function renderRedaction(job) {
  // A redaction job: per track, blurred or spared and why; the redacted video in the player.
  const r = job.result;
  const spared = r.tracks.filter((t) => t.frames_shown > 0);
  $("#timeline-summary").textContent = `${job.filename}: ${r.tracks.length} track${r.tracks.length === 1 ? "" : "s"}, ` +
    `${spared.length} left visible`;
  const items = r.tracks.map((t) => el("li", {}, el("div", {},
    el("strong", { class: t.frames_shown ? "known" : "unknown", text: `#${t.track} ${t.action}` }),
    el("div", { class: "muted", text: `${mmss(t.first_ms)} – ${mmss(t.last_ms)} · ${t.reason}` +
      (t.frames_shown ? ` · ${t.person} (score ${fmt(t.score)})` : "") }))));
  $("#timeline").replaceChildren(...items);
  if (!items.length) $("#timeline").append(el("li", { class: "muted", text: "No face was found in this video." }));
  timelineLinks(job);
  $("#timeline-csv").hidden = true;
  $("#timeline-json").textContent = "Download the report (JSON)";
  annotatedVideo(job).then(() => {
    $("#annotated-link").download = `${(job.filename || "video").replace(/\.[^.]*$/, "")}-redacted.mp4`;
    $("#annotated-link").textContent = "Download the redacted video (MP4)";
  }).catch(failed);
  $("#timeline-card").hidden = false;
  say(`Video redacted: ${r.tracks.length - spared.length} of ${r.tracks.length} tracks hidden.`, "ok");
}

async function renderTimeline(job) {
  if (job.kind === "redact") return renderRedaction(job);
  $("#timeline-csv").hidden = false;
  $("#timeline-json").textContent = "Download the timeline (JSON)";
  $("#annotated-link").textContent = "Download the annotated video (MP4)";
  const r = job.result;
  const duration = (r.video && r.video.duration_s ? r.video.duration_s * 1000 : 0) ||
    Math.max(1, ...r.tracks.map((t) => t.last_ms));
  const names = [...new Set(r.tracks.map((t) => t.person))];
  $("#timeline-summary").textContent = `${job.filename}: ${r.tracks.length} track${r.tracks.length === 1 ? "" : "s"}` +
    (names.length ? ` (${names.join(", ")})` : "");
  const items = r.tracks.map((t) => {
    const img = el("img", { alt: `best view of ${t.person}` });
    if (t.thumbnail !== null && t.thumbnail !== undefined) {
      blobUrl(`/v1/jobs/${job.id}/thumbnails/${t.thumbnail}`).then((u) => { img.src = u; }).catch(() => {});
    }
    const span = el("span");
    span.style.left = (100 * t.first_ms / duration) + "%";
    span.style.width = (100 * Math.max(0, t.last_ms - t.first_ms) / duration) + "%";
    return el("li", {}, img, el("div", {},
      el("strong", { class: t.person === "unknown" ? "unknown" : "known", text: t.person }),
      el("div", { class: "muted", text: `${mmss(t.first_ms)} – ${mmss(t.last_ms)} · score ${fmt(t.score)} · ${t.frames} frames` }),
      el("div", { class: "bar", role: "img", "aria-label": `on screen ${mmss(t.first_ms)} to ${mmss(t.last_ms)}` }, span)));
  });
  $("#timeline").replaceChildren(...items);
  if (!items.length) $("#timeline").append(el("li", { class: "muted", text: "No face was tracked in this video." }));
  timelineLinks(job);
  addEnrolToTracks(job);
  annotatedVideo(job).catch(failed);
  $("#timeline-card").hidden = false;
  say(`Video processed: ${r.tracks.length} track${r.tracks.length === 1 ? "" : "s"}.`, "ok");
}

// -- wiring ----------------------------------------------------------------------------------------
document.addEventListener("DOMContentLoaded", () => {
  $("#signin-form").addEventListener("submit", (e) => { e.preventDefault(); signIn($("#apikey").value.trim()); });
  $("#signout").addEventListener("click", () => signOut());
  $("#collection").addEventListener("change", (e) => switchCollection(e.target.value).catch(failed));
  for (const t of document.querySelectorAll("[role=tab]")) t.addEventListener("click", () => selectTab(t));
  $(".tabs").addEventListener("keydown", tabKeys);
  $("#new-person-form").addEventListener("submit", createPerson);
  $("#person-delete").addEventListener("click", deletePerson);
  $("#people-prev").addEventListener("click", () => {
    state.page.offset = Math.max(0, state.page.offset - state.page.limit);
    loadPeople().catch(failed);
  });
  $("#people-next").addEventListener("click", () => {
    state.page.offset += state.page.limit;
    loadPeople().catch(failed);
  });
  dropZone($("#person-drop"), $("#person-files"), uploadPhotos);
  dropZone($("#identify-drop"), $("#identify-file"), identify);
  $("#verify-form").addEventListener("submit", verify);
  $("#video-form").addEventListener("submit", submitVideo);
  if (state.key) signIn(state.key);
});
