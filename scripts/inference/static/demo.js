// The demo page: POST render {"text"} and show displaCy's entity markup and one bar per category.
"use strict";

const $ = (id) => document.getElementById(id);

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
    const n = body.entities.length;
    setStatus(`${n} ${n === 1 ? "entity" : "entities"} · ${body.model_version}`, false);
  } catch (err) {
    setStatus(`The server did not answer (${err.message}).`, true);
  } finally {
    $("go").disabled = false;
  }
}

async function showModel() {
  try {
    const health = await (await fetch("health")).json();
    $("model").textContent = `${health.model_version} (${health.pipeline.join(", ")})`;
  } catch (err) {
    $("model").textContent = "unknown";
  }
}

$("go").addEventListener("click", analyse);
$("text").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) analyse();
});
showModel();
