// facewise web page: enrolling photos of a person, one request per photo (uses the helpers of app.js).
"use strict";

// -- enrol: one request per photo, so each file gets its own row and one bad file refuses only itself --
function resultRow(file) {
  const what = el("span", { class: "what", text: "checking…" });
  const li = el("li", { class: "pending", "data-status": "pending", "data-file": file.name },
    el("strong", { text: file.name + ": " }), what);
  $("#person-results").append(li);
  return (status, text) => { li.className = status; li.dataset.status = status; what.textContent = text; };
}

function waitFor(buttons) {
  // Resolves with the value of the first of [[element, value], …] that is clicked.
  return new Promise((resolve) => {
    const handlers = buttons.map(([node, value]) => {
      const h = (e) => { handlers.forEach(([n, hh]) => n.removeEventListener("click", hh)); resolve(value(e)); };
      node.addEventListener("click", h);
      return [node, h];
    });
    state.cancelWait = () => { handlers.forEach(([n, hh]) => n.removeEventListener("click", hh)); resolve(null); };
  });
}

async function pickFace(file, det) {
  // Several faces: the photo with numbered boxes; the user clicks one (or its button), or skips the photo.
  const bitmap = await createImageBitmap(file, { imageOrientation: "from-image" });
  const canvas = $("#picker-canvas");
  const labels = det.faces.map((f, i) => ({ box: f.box, label: `face ${i + 1}` }));
  const geo = drawBoxes(canvas, bitmap, det.image, labels, "#0b57d0");
  canvas.setAttribute("aria-label", `${file.name}: ${det.faces.length} faces; pick the one to enrol`);
  $("#picker-prompt").textContent = `${file.name} shows ${det.faces.length} faces. Click the face of ` +
    `${state.person.name} on the photo.`;
  const buttons = det.faces.map((f, i) => el("button", { type: "button", class: "secondary", "data-face": i },
    `Face ${i + 1}`));
  const skip = el("button", { type: "button", class: "danger" }, "Skip this photo");
  $("#picker-buttons").replaceChildren(...buttons, skip);
  $("#picker").hidden = false;
  canvas.classList.add("pickable");
  for (;;) {
    const choice = await waitFor([...buttons.map((b, i) => [b, () => i]), [skip, () => "skip"],
      [canvas, (e) => faceAt(e, canvas, geo, det.faces)]]);
    if (choice === undefined) continue;  // a click between the boxes
    $("#picker").hidden = true;
    canvas.classList.remove("pickable");
    return choice === "skip" || choice === null ? null : det.faces[choice].index;
  }
}

function faceAt(e, canvas, geo, faces) {
  const r = canvas.getBoundingClientRect();
  const x = (e.clientX - r.left) * (canvas.width / r.width) / geo.sx;
  const y = (e.clientY - r.top) * (canvas.height / r.height) / geo.sy;
  const i = faces.findIndex((f) => x >= f.box[0] && x <= f.box[2] && y >= f.box[1] && y <= f.box[3]);
  return i < 0 ? undefined : i;
}

async function confirmWeak(text, file, det, face) {
  const bitmap = await createImageBitmap(file, { imageOrientation: "from-image" });
  drawBoxes($("#confirm-canvas"), bitmap, det.image, [{ box: face.box, known: false,
    label: `quality ${fmt(face.quality, 2)}` }], "#8a4b00");
  $("#confirm-text").textContent = text;
  $("#confirm").hidden = false;
  $("#confirm-store").focus();
  const ok = await waitFor([[$("#confirm-store"), () => true], [$("#confirm-cancel"), () => false]]);
  $("#confirm").hidden = true;
  return ok === true;
}

async function enrolOne(person, file, setRow) {
  const probe = new FormData();
  probe.append("image", file, file.name);
  const det = await api(`/v1/detect?profile=${encodeURIComponent(state.profile || "")}`,
    { method: "POST", form: probe });
  if (!det.faces.length) {
    setRow("rejected", "refused — no face found");
    return "rejected";
  }
  let index = det.faces[0].index;
  if (det.faces.length > 1) {
    setRow("pending", `${det.faces.length} faces: pick one on the photo`);
    index = await pickFace(file, det);
    if (index === null) {
      setRow("skipped", "skipped — no face picked");
      return "skipped";
    }
  }
  const face = det.faces.find((f) => f.index === index);
  if (face.quality_reasons.length) {
    const why = `quality ${fmt(face.quality, 2)}: ${face.quality_reasons.join("; ")}`;
    setRow("pending", `weak face (${why}): store it?`);
    if (!await confirmWeak(`${file.name}: weak face, ${why}. A weak face makes later matches less reliable. ` +
      "Store it anyway?", file, det, face)) {
      setRow("skipped", `not stored — ${why}`);
      return "skipped";
    }
  }
  const form = new FormData();
  form.append("files", file, file.name);
  form.append("face", String(index));
  const r = await api(`${coll()}/persons/${person.id}/faces`, { method: "POST", form });
  const x = r.results[0];
  const added = `added (face ${index + 1} of ${det.faces.length}, quality ${fmt(face.quality, 2)})`;
  setRow(x.status, x.status === "added" ? added
    : `${x.status === "rejected" ? "refused" : x.status} — ${x.reason || "no reason given"}`);
  return x.status;
}

async function uploadPhotos(files) {
  if (!state.person) return;
  clearMessages();
  const person = state.person;
  const run = ++state.uploadRun;
  const counts = {};
  say(`Enrolling ${files.length} photo${files.length === 1 ? "" : "s"}…`);
  for (const file of files) {
    if (run !== state.uploadRun) return;  // a later action took over
    const setRow = resultRow(file);
    let status;
    try {
      status = await enrolOne(person, file, setRow);
    } catch (err) {
      if (err.status === 401) { failed(err); return; }
      status = "rejected";
      setRow("rejected", `refused — ${err.message}`);
    }
    if (status === null || run !== state.uploadRun) return;
    counts[status] = (counts[status] || 0) + 1;
  }
  const summary = Object.entries(counts).map(([k, n]) => `${n} ${k === "rejected" ? "refused" : k}`).join(", ");
  say(`${person.name}: ${summary}.`, counts.added ? "ok" : "error");
  try {
    await showPerson(person.id, { keepResults: true });
    await loadPeople();
  } catch (err) { failed(err); }
}
