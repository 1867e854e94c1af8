// facewise operator's console, part 2: collections, admin (keys, threshold), live camera, verify boxes,
// timeline downloads and "enrol this face" from identify and video results. Uses the helpers of app.js.
"use strict";

const isAdmin = () => state.me && state.me.key.scopes.includes("admin");
const canEnrol = () => state.me && ["enroll", "admin"].some((s) => state.me.key.scopes.includes(s));
const isGlobalAdmin = () => isAdmin() && state.me.key.collections.includes("*");

// Called by app.js --------------------------------------------------------------------------------
function onSignedIn() {
  $("#tab-admin").hidden = !isAdmin();
  $("#new-collection-form").hidden = !isAdmin();
  $("#new-key-form").hidden = !isGlobalAdmin();
}

function onCollectionChanged() {
  liveStop();
  if (!$("#panel-collections").hidden) loadCollectionsTable().catch(failed);
  if (!$("#panel-admin").hidden) loadAdmin().catch(failed);
}

function onTab(tab) {
  if (tab.id !== "tab-live") liveStop();
  if (tab.id === "tab-collections") loadCollectionsTable().catch(failed);
  if (tab.id === "tab-admin") loadAdmin().catch(failed);
}

// -- collections -----------------------------------------------------------------------------------
async function loadCollectionsTable() {
  const [list, profiles] = await Promise.all([api("/v1/collections"), isAdmin() ? api("/v1/profiles") : []]);
  state.collections = list;
  $("#collections-table tbody").replaceChildren(...list.map((c) => {
    const current = c.name === state.collection;
    return el("tr", { "data-collection": c.name, class: current ? "current" : "" },
      el("td", { text: c.name }), el("td", { text: c.profile }),
      el("td", { text: String(c.persons) }), el("td", { text: String(c.samples) }),
      el("td", {}, current ? el("span", { class: "muted", text: "in use" })
        : el("button", { type: "button", class: "secondary small", "aria-label": `Use ${c.name}`,
          onclick: () => useCollection(c.name) }, "Use")));
  }));
  if (profiles.length) fillProfiles(profiles);
}

function fillProfiles(profiles) {
  const sel = $("#new-collection-profile");
  const keep = sel.value;
  sel.replaceChildren(...profiles.map((p) => el("option", {
    value: p.name, disabled: !p.available,
    text: `${p.name}${p.default ? " (server default)" : ""}${p.available ? "" : " — models not installed"}`,
  })));
  const pick = profiles.find((p) => p.name === keep && p.available) || profiles.find((p) => p.default);
  if (pick) sel.value = pick.name;
  const note = () => {
    const p = profiles.find((x) => x.name === sel.value);
    const use = p && typeof p.commercial_use === "string" ? p.commercial_use
      : p && p.commercial_use === true ? "yes" : p && p.commercial_use === false ? "no" : "unclear";
    $("#profile-note").textContent = p ? `${p.description} · commercial use: ${use}` : "";
  };
  sel.onchange = note;
  note();
}

async function useCollection(name) {
  clearMessages();
  await switchCollection(name);
  await loadCollectionsTable();
}

async function createCollection(e) {
  e.preventDefault();
  clearMessages();
  const name = $("#new-collection-name").value.trim();
  const profile = $("#new-collection-profile").value || null;
  try {
    const c = await api("/v1/collections", { method: "POST", json: { name, profile } });
    $("#new-collection-name").value = "";
    await loadCollections();
    await switchCollection(c.name);
    await loadCollectionsTable();
    say(`Created collection ${c.name} (profile ${c.profile}); it is now in use.`, "ok");
  } catch (err) { failed(err); }
}

// -- admin: decision threshold and API keys ---------------------------------------------------------
async function loadAdmin() {
  const c = await api(coll());
  $("#threshold-now").textContent = `(${c.name}: ${fmt(c.decision.threshold, 4)}, ${c.decision.source})`;
  if (isGlobalAdmin()) await loadKeys();
}

async function setThreshold(e) {
  e.preventDefault();
  clearMessages();
  const kind = $("#threshold-kind").value;
  const value = Number($("#threshold-value").value);
  try {
    const c = await api(coll(), { method: "PATCH", json: { [kind]: value } });
    $("#threshold-now").textContent = `(${c.name}: ${fmt(c.decision.threshold, 4)}, ${c.decision.source})`;
    say(`${c.name} now decides at ${fmt(c.decision.threshold, 4)} (${c.decision.source}).`, "ok");
  } catch (err) { failed(err); }
}

async function loadKeys() {
  const keys = await api("/v1/keys");
  $("#keys-table tbody").replaceChildren(...keys.map((k) => el("tr", { "data-key": k.name },
    el("td", { text: k.name }), el("td", { text: k.scopes.join(", ") }), el("td", { text: k.collections.join(", ") }),
    el("td", { text: k.last_used_at || "never" }), el("td", { text: k.revoked_at ? "revoked" : "active" }),
    el("td", {}, keyAction(k)))));
}

function keyAction(k) {
  if (k.revoked_at) return "";
  if (k.id === state.me.key.key_id) return el("span", { class: "muted", text: "this key" });
  return el("button", { type: "button", class: "danger small", "aria-label": `Revoke ${k.name}`,
    onclick: () => revokeKey(k) }, "Revoke");
}

async function createKey(e) {
  e.preventDefault();
  clearMessages();
  const scopes = [...document.querySelectorAll("#new-key-form input[name=scope]:checked")].map((x) => x.value);
  const collections = $("#new-key-collections").value.split(",").map((x) => x.trim()).filter(Boolean);
  try {
    const r = await api("/v1/keys", { method: "POST", json: { name: $("#new-key-name").value.trim(), scopes, collections } });
    const token = $("#new-key-token");
    token.replaceChildren(el("span", { text: `Key ${r.key.name} created. Copy its token now; it is not shown again: ` }),
      el("code", { text: r.token }));
    token.hidden = false;
    $("#new-key-name").value = "";
    await loadKeys();
    say(`Created key ${r.key.name}.`, "ok");
  } catch (err) { failed(err); }
}

async function revokeKey(k) {
  clearMessages();
  $("#new-key-token").hidden = true;
  if (!confirm(`Revoke key ${k.name}? Clients using it stop working at once.`)) return;
  try {
    await api(`/v1/keys/${encodeURIComponent(k.id)}`, { method: "DELETE" });
    await loadKeys();
    say(`Revoked key ${k.name}.`, "ok");
  } catch (err) { failed(err); }
}

// -- enrol a face that identify or a video called unknown ("Enrol" then "Add") --------------------
function enrolForm(blobOrFile, filename, face, onDone) {
  const sel = el("select", { "aria-label": "Enrol as" },
    el("option", { value: "", text: "new person…" }));
  const name = el("input", { "aria-label": "New person's name", placeholder: "name", maxlength: "200" });
  api(`${coll()}/persons?limit=500`).then((d) => {
    sel.append(...d.items.map((p) => el("option", { value: p.id, text: p.name })));
  }).catch(failed);
  sel.addEventListener("change", () => { name.hidden = sel.value !== ""; });
  const add = el("button", { type: "button", class: "small" }, "Add");
  const box = el("span", { class: "enrol" }, sel, name, add);
  add.addEventListener("click", async () => {
    clearMessages();
    try {
      let id = sel.value;
      if (!id) {
        const p = await api(`${coll()}/persons`, { method: "POST", json: { name: name.value.trim() } });
        id = p.id;
      }
      const form = new FormData();
      form.append("files", blobOrFile, filename);
      form.append("face", String(face));
      const r = await api(`${coll()}/persons/${id}/faces`, { method: "POST", form });
      const x = r.results[0];
      say(`${filename}: ${x.status === "added" ? "added to" : x.status + " for"} ${r.person.name}` +
        `${x.reason ? " — " + x.reason : ""}.`, x.status === "added" ? "ok" : "error");
      box.replaceChildren(el("span", { class: x.status, text: `${x.status}: ${r.person.name}` }));
      if (onDone) onDone();
      await loadPeople();
    } catch (err) { failed(err); }
  });
  return box;
}

function enrolButton(makeForm) {
  const b = el("button", { type: "button", class: "secondary small" }, "Enrol");
  b.addEventListener("click", () => b.replaceWith(makeForm()));
  return b;
}

// Decorate identify rows: unknown faces get an "Enrol" button (face index of the same photo).
function addEnrolToIdentify(file, r) {
  const rows = document.querySelectorAll("#identify-table tbody tr");
  r.faces.forEach((f, i) => {
    const cell = el("td");
    if (f.person === "unknown" && canEnrol()) cell.append(enrolButton(() => enrolForm(file, file.name, f.index)));
    rows[i].append(cell);
  });
}

// Decorate video tracks: every unknown track gets "Enrol" (its best-view thumbnail is the photo).
function addEnrolToTracks(job) {
  const items = document.querySelectorAll("#timeline > li");
  job.result.tracks.forEach((t, i) => {
    if (!canEnrol() || t.person !== "unknown" || t.thumbnail === null || t.thumbnail === undefined || !items[i]) return;
    const fetchThumb = async () => (await api(`/v1/jobs/${job.id}/thumbnails/${t.thumbnail}`, { raw: true })).blob();
    items[i].lastChild.append(enrolButton(() => {
      const holder = el("span", { class: "enrol" }, "loading…");
      fetchThumb().then((blob) => holder.replaceWith(enrolForm(blob, `track-${t.track}.jpg`, "largest")))
        .catch(failed);
      return holder;
    }));
  });
}

// -- timeline downloads -----------------------------------------------------------------------------
function timelineLinks(job) {
  const r = job.result;
  const base = (job.filename || "video").replace(/\.[^.]*$/, "");
  const json = new Blob([JSON.stringify(r, null, 1)], { type: "application/json" });
  const cols = ["track", "person", "score", "first_ms", "last_ms", "frames"];
  // a cell a spreadsheet would run as a formula (= + - @ tab CR first) gets a leading quote, as core/outfiles.py does
  const q = (v) => {
    let s = v === null || v === undefined ? "" : String(v);
    if (typeof v === "string" && /^[=+\-@\t\r]/.test(s)) s = "'" + s;
    return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  };
  const csv = new Blob([[cols.join(","), ...r.tracks.map((t) => cols.map((c) => q(t[c])).join(","))].join("\n") + "\n"],
    { type: "text/csv" });
  for (const [id, blob, ext] of [["#timeline-json", json, "json"], ["#timeline-csv", csv, "csv"]]) {
    const a = $(id);
    const url = URL.createObjectURL(blob);
    state.blobs.push(url);
    a.href = url;
    a.download = `${base}-timeline.${ext}`;
  }
}

async function annotatedVideo(job) {
  // The job's annotated H.264 video in the page's player (fetched with the key, played from a blob URL).
  const video = $("#annotated");
  const link = $("#annotated-link");
  video.hidden = true;
  link.hidden = true;
  video.removeAttribute("src");
  if (!job.annotated_video) return;
  const url = await blobUrl(`/v1/jobs/${job.id}/video`);
  video.src = url;
  video.setAttribute("aria-label", `${job.filename} with the tracked faces boxed and named`);
  link.href = url;
  link.download = `${(job.filename || "video").replace(/\.[^.]*$/, "")}-annotated.mp4`;
  video.onerror = () => {
    video.hidden = true;
    say("This browser cannot play the annotated video (the server wrote it without H.264: install PyAV, " +
      "pip install facewise[video]); it can still be downloaded.", "error");
  };
  video.hidden = false;
  link.hidden = false;
}

// -- verify with boxes ------------------------------------------------------------------------------
async function verifyBoxes(v) {
  // The compared face of each photo is the largest; draw it with the verdict, the others grey.
  const pairs = [[$("#verify-a").files[0], $("#verify-canvas-a")]];
  if (!$("#verify-person").value && $("#verify-b").files[0]) pairs.push([$("#verify-b").files[0], $("#verify-canvas-b")]);
  else { $("#verify-canvas-b").width = 0; $("#verify-canvas-b").height = 0; }
  for (const [file, canvas] of pairs) {
    const form = new FormData();
    form.append("image", file, file.name);
    const [det, bitmap] = await Promise.all([
      api(`/v1/detect?profile=${encodeURIComponent(state.profile || "")}`, { method: "POST", form }),
      createImageBitmap(file, { imageOrientation: "from-image" })]);
    const area = (f) => (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]);
    const largest = det.faces.reduce((a, f) => (!a || area(f) > area(a) ? f : a), null);
    const faces = det.faces.map((f) => (f === largest
      ? { box: f.box, known: v.same, label: `compared · ${fmt(v.score, 2)}` }
      : { box: f.box, known: true, label: "not used" }));
    drawBoxes(canvas, bitmap, det.image, faces.filter((f) => f.label === "not used"), "#8a93a0");
    const ctxFaces = faces.filter((f) => f.label !== "not used");
    if (ctxFaces.length) drawOver(canvas, det.image, ctxFaces);
    canvas.setAttribute("aria-label", `${file.name}: ${det.faces.length} face${det.faces.length === 1 ? "" : "s"}, ` +
      `the largest compared (${v.same ? "same" : "different"})`);
  }
}

function drawOver(canvas, size, faces) {
  // Draw boxes over what the canvas already shows (same scale as drawBoxes).
  const copy = document.createElement("canvas");
  copy.width = canvas.width;
  copy.height = canvas.height;
  copy.getContext("2d").drawImage(canvas, 0, 0);
  const scale = canvas.width / size.width;
  drawBoxes(canvas, copy, { width: copy.width / scale, height: copy.height / scale }, faces);
}

// -- live camera -------------------------------------------------------------------------------------
// A live session on the server (POST …/live): each frame is named like identify, the tracked face gets its
// liveness with the cues that fired (and, when asked, the occlusion map), and with the challenge box ticked
// the server asks for random head motions and checks them on its own clock.
const live = { stream: null, timer: null, busy: false, frames: 0, session: null, collection: null };

async function liveStart() {
  clearMessages();
  const every = Math.max(200, Number($("#live-every").value) || 1000);
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    say("This browser gives no camera to this page: open it over https, or on localhost.", "error");
    return;
  }
  try {
    const steps = $("#live-steps").value.split(",").map((x) => x.trim().toLowerCase()).filter(Boolean);
    const challenge = $("#live-challenge").checked;
    const seconds = Math.min(120, Math.max(1, Number($("#live-time").value) || 20));
    const body = challenge ? { challenge, time_limit_s: seconds, ...(steps.length ? { steps } : {}) } : {};
    live.session = await api(`${coll()}/live`, { method: "POST", json: body });
    live.collection = coll();
  } catch (err) {
    failed(err);
    return;
  }
  try {
    live.stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
  } catch (err) {
    liveEnd();
    say(`The camera could not be opened: ${err.message}`, "error");
    return;
  }
  const video = $("#live-video");
  video.srcObject = live.stream;
  await video.play();
  $("#live-start").disabled = true;
  $("#live-stop").disabled = false;
  live.frames = 0;
  showChallenge(live.session.challenge);
  $("#live-liveness").replaceChildren();
  $("#live-state").textContent = `Camera on; a frame every ${every} ms goes to the live session.`;
  live.timer = setInterval(liveTick, every);
  liveTick();
}

function liveEnd() {
  // the session ends on the server too (best effort: an idle session expires anyway)
  if (live.session) api(`${live.collection}/live/${live.session.session_id}`, { method: "DELETE" }).catch(() => {});
  live.session = null;
}

function liveStop() {
  if (live.timer) clearInterval(live.timer);
  live.timer = null;
  if (live.stream) {
    live.stream.getTracks().forEach((t) => t.stop());
    live.stream = null;
    $("#live-state").textContent = `Camera off after ${live.frames} frame${live.frames === 1 ? "" : "s"}.`;
  }
  liveEnd();
  $("#live-start").disabled = false;
  $("#live-stop").disabled = true;
}

function showChallenge(ch) {
  const p = $("#live-prompt");
  if (!ch) { p.hidden = true; return; }
  p.hidden = false;
  const done = ch.done.map((d) => d.step);
  const steps = ch.steps.map((s) => (done.includes(s) ? `✓ ${s}` : s)).join(" → ");
  if (!ch.finished) {
    p.className = "verdict";
    p.textContent = `Challenge (${steps}): now ${ch.prompt}.`;
  } else if (ch.passed) {
    p.className = "verdict same";
    p.textContent = `Challenge passed (${steps})` +
      (ch.passive_live !== null ? `; passive P(live) ${fmt(ch.passive_live, 2)}.` : ".");
  } else {
    p.className = "verdict different";
    p.textContent = `Challenge failed (${steps}): ${ch.reason}.`;
  }
}

function showLiveness(face) {
  const out = $("#live-liveness");
  if (!face || !face.live) { out.replaceChildren(); return; }
  const lv = face.live;
  const verdict = lv.is_live ? "live" : "not live";
  const cues = lv.cues ? Object.entries(lv.cues).filter(([, c]) => c.fired)
    .map(([name, c]) => `${name} ${fmt(c.value, 2)} (pull ${fmt(c.pull, 2)})`) : [];
  out.className = lv.is_live ? "liveness live" : "liveness attack";
  out.textContent = `Liveness of the tracked face: ${verdict}, P(live) ${fmt(lv.score, 2)} ` +
    `(threshold ${fmt(lv.threshold, 2)}, ${lv.model || "model"})` +
    (cues.length ? `; cues toward attack: ${cues.join(", ")}` : "; no cue toward attack");
}

function drawLiveMap(canvas, size, map) {
  // each cell: how much P(live) rose when it was blurred out (red: held evidence of an attack)
  const ctx = canvas.getContext("2d");
  const sx = canvas.width / size.width;
  const sy = canvas.height / size.height;
  const [x1, y1, x2, y2] = map.box;
  const cw = ((x2 - x1) * sx) / map.grid;
  const ch = ((y2 - y1) * sy) / map.grid;
  map.delta.forEach((row, i) => row.forEach((d, j) => {
    const a = Math.min(0.6, Math.abs(d) * 3);
    ctx.fillStyle = d > 0 ? `rgba(217, 48, 37, ${a})` : `rgba(10, 143, 60, ${a})`;
    ctx.fillRect(x1 * sx + j * cw, y1 * sy + i * ch, cw, ch);
  }));
}

async function liveTick() {
  const video = $("#live-video");
  if (live.busy || !live.stream || !live.session || !video.videoWidth) return;  // one frame in flight at a time
  live.busy = true;
  try {
    const grab = document.createElement("canvas");
    grab.width = video.videoWidth;
    grab.height = video.videoHeight;
    grab.getContext("2d").drawImage(video, 0, 0);
    const blob = await new Promise((res) => grab.toBlob(res, "image/jpeg", 0.85));
    const form = new FormData();
    form.append("image", blob, "frame.jpg");
    form.append("live_map", $("#live-map").checked ? "true" : "false");
    const r = await api(`${live.collection}/live/${live.session.session_id}/frames`, { method: "POST", form });
    if (!live.stream) return;
    live.frames += 1;
    const canvas = $("#live-canvas");
    drawBoxes(canvas, grab, r.image, r.faces);
    const tracked = r.tracked === null ? null : r.faces[r.tracked];
    if (tracked && tracked.live && tracked.live.map) drawLiveMap(canvas, r.image, tracked.live.map);
    showLiveness(tracked);
    if (r.challenge) showChallenge(r.challenge);
    const names = r.faces.map((f) => f.person);
    canvas.setAttribute("aria-label", names.length ? "Camera view: " + names.join(", ") : "Camera view: no face");
    $("#live-names").replaceChildren(...(names.length
      ? r.faces.map((f) => el("li", { class: f.person === "unknown" ? "rejected" : "added",
        text: f.person === "unknown" ? "unknown" : `${f.person} (${fmt(f.score, 2)})` }))
      : [el("li", { class: "muted", text: "no face in view" })]));
  } catch (err) {
    if (err.status === 429 && (err.code === "busy" || err.code === "session_busy")) return;  // the key's other image work is ahead: next tick
    liveStop();
    failed(err);
  } finally {
    live.busy = false;
  }
}

// -- wiring ------------------------------------------------------------------------------------------
document.addEventListener("DOMContentLoaded", () => {
  $("#new-collection-form").addEventListener("submit", createCollection);
  $("#threshold-form").addEventListener("submit", setThreshold);
  $("#new-key-form").addEventListener("submit", createKey);
  $("#live-start").addEventListener("click", liveStart);
  $("#live-stop").addEventListener("click", liveStop);
});
