// The demo page: GET demo.json to fit the page to the model, then POST render {"text"} and show
// displaCy's entity markup and one bar per category.
"use strict";

const $ = (id) => document.getElementById(id);
const MAX_LABELS_IN_HINT = 4;

function setStatus(message, isError) {
  $("status").textContent = message;
  $("status").className = isError ? "error" : "";
}

function showCategories(cats, chosen) {
  const box = $("cats");
  box.replaceChildren();
  const labels = Object.keys(cats).sort((a, b) => cats[b] - cats[a]);
  if (labels.length === 0) {
    const none = document.createElement("p");
    none.className = "hint";
    none.textContent = "This model has no categories.";
    box.append(none);
  }
  for (const label of labels) {
    const score = cats[label];
    const row = document.createElement("div");
    row.className = chosen.includes(label) ? "cat chosen" : "cat";
    row.dataset.label = label;
    const name = document.createElement("span");
    name.className = "cat-label";
    name.textContent = label;
    name.title = label;
    const bar = document.createElement("div");
    bar.className = "bar";
    const fill = document.createElement("div");
    fill.className = "bar-fill";
    fill.style.width = `${Math.max(0, Math.min(1, score)) * 100}%`;
    bar.append(fill);
    const value = document.createElement("span");
    value.className = "score";
    value.textContent = score.toFixed(3);
    row.append(name, bar, value);
    box.append(row);
  }
}

async function analyse() {
  const text = $("text").value;
  if (!text.trim()) {
    setStatus("Paste a text first.", true);
    return;
  }
  const headers = { "Content-Type": "application/json" };
  const key = $("key").value.trim();
  if (key) headers.Authorization = `Bearer ${key}`;
  $("go").disabled = true;
  setStatus("Analysing…", false);
  try {
    const response = await fetch("render", { method: "POST", headers, body: JSON.stringify({ text }) });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      const detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
      setStatus(`${response.status}: ${detail || response.statusText}`, true);
      return;
    }
    // displaCy's markup, rendered and escaped by the server
    $("entities").innerHTML = body.html;
    showCategories(body.cats, body.chosen);
    const found = [];
    if (!$("entities-panel").hidden) {
      const n = body.entities.length;
      found.push(`${n} ${n === 1 ? "entity" : "entities"}`);
    }
    if (!$("cats-panel").hidden) found.push(body.chosen.length ? body.chosen.join(", ") : "no category");
    setStatus([...found, body.model_version].join(" · "), false);
  } catch (err) {
    setStatus(`The server did not answer (${err.message}).`, true);
  } finally {
    $("go").disabled = false;
  }
}

function listed(labels) {
  const shown = labels.slice(0, MAX_LABELS_IN_HINT).join(", ");
  return labels.length > MAX_LABELS_IN_HINT ? `${shown}, …` : shown;
}

// The panels for what the model predicts, and a hint that names its labels.
async function showModel() {
  try {
    const model = await (await fetch("demo.json")).json();
    $("model").textContent = `${model.model_version} (${model.pipeline.join(", ")})`;
    const ents = model.entity_labels;
    const cats = model.category_labels;
    $("entities-panel").hidden = ents.length === 0;
    $("cats-panel").hidden = cats.length === 0;
    const does = [];
    if (ents.length) does.push(`mark its entities (${listed(ents)})`);
    if (cats.length) does.push(`score its categories (${listed(cats)})`);
    if (does.length) $("text").placeholder = `Paste a text here to ${does.join(" and ")}.`;
  } catch (err) {
    $("model").textContent = "unknown";
    $("entities-panel").hidden = $("cats-panel").hidden = false; // what the model answers
  }
}

$("go").addEventListener("click", analyse);
$("text").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) analyse();
});
showModel();
