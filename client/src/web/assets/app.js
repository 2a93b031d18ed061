// Behavior of the web client page: tabs, forms, the models list, the cluster badge and
// the activity log. Texts come from the page's #texts element in the chosen language.
"use strict";

const T = JSON.parse(document.getElementById("texts").textContent);
const MAX_UPLOAD = Number(document.body.dataset.maxUpload);
const MAX_UPLOAD_MIB = document.body.dataset.maxUploadMib;
const CLUSTER_POLL_MS = 5000;
const $ = (id) => document.getElementById(id);

// Activity log, newest entry first, capped so a long session stays light.
const LOG_LIMIT = 200;
function log(message, kind) {
  const item = document.createElement("li");
  item.textContent = `${new Date().toLocaleTimeString()}  ${message}`;
  if (kind) item.className = kind;
  const list = $("log");
  list.prepend(item);
  while (list.children.length > LOG_LIMIT) list.lastElementChild.remove();
}

function showResult(element, state, text) {
  element.dataset.state = state;
  element.textContent = text;
}

// Sends a request and returns the JSON body; a network failure or a body that is not
// JSON becomes {success: false} with a message, so callers always have one to show.
async function requestJson(url, options) {
  let response;
  try {
    response = await fetch(url, options);
  } catch (err) {
    return { success: false, error: T.network_error, code: "NETWORK" };
  }
  try {
    return await response.json();
  } catch (err) {
    return { success: false, error: `HTTP ${response.status}`, code: "INVALID_RESPONSE" };
  }
}

function errorText(prefix, body) {
  if (body.code === "FILE_TOO_LARGE") return `${prefix}: ${T.file_too_large} ${MAX_UPLOAD_MIB} MiB`;
  return `${prefix}: ${body.error || body.code || "?"}`;
}

// ---- tabs ----
const TABS = ["train", "predict", "models"];
function selectTab(name) {
  for (const tab of TABS) {
    const selected = tab === name;
    $(`tab-${tab}`).setAttribute("aria-selected", String(selected));
    $(`panel-${tab}`).hidden = !selected;
  }
  if (name !== "train") loadModels();
}
for (const tab of TABS) $(`tab-${tab}`).addEventListener("click", () => selectTab(tab));

// ---- training ----
$("train-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const result = $("train-result");
  const name = $("model-name").value.trim();
  const file = $("csv-file").files[0];
  if (!name) return showResult(result, "error", T.missing_name);
  if (!file) return showResult(result, "error", T.missing_file);
  if (file.size > MAX_UPLOAD) {
    const text = `${T.train_failed}: ${T.file_too_large} ${MAX_UPLOAD_MIB} MiB`;
    log(text, "error");
    return showResult(result, "error", text);
  }

  const form = new FormData();
  form.append("model_name", name);
  const epochs = $("epochs").value.trim();
  if (epochs) form.append("epochs", epochs);
  form.append("file", file, file.name);

  $("train-submit").disabled = true;
  showResult(result, "pending", T.training);
  log(`${T.sent}: TRAIN ${name} (${file.name}, ${file.size} B)`);
  const started = performance.now();
  const body = await requestJson("/train", { method: "POST", body: form });
  $("train-submit").disabled = false;

  if (body.success) {
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    const accuracy = typeof body.accuracy === "number" ? `, ${T.col_accuracy.toLowerCase()} ${body.accuracy.toFixed(3)}` : "";
    const text = `${T.trained}: ${body.modelId} (${seconds} s${accuracy})`;
    showResult(result, "success", text);
    log(text, "ok");
    loadModels(body.modelId);
  } else {
    const text = errorText(T.train_failed, body);
    showResult(result, "error", text);
    log(text, "error");
  }
});

// ---- prediction ----
function parseVector(text) {
  const inner = text.trim().replace(/^\[/, "").replace(/\]$/, "");
  if (!inner.trim()) return null;
  const parts = inner.split(",").map((part) => part.trim());
  if (parts.some((part) => part === "")) return null;
  const numbers = parts.map(Number);
  return numbers.some((n) => !Number.isFinite(n)) ? null : numbers;
}

$("predict-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const result = $("predict-result");
  const model = $("predict-model").value;
  const vector = parseVector($("predict-vector").value);
  if (!model) return showResult(result, "error", T.missing_model);
  if (!vector) return showResult(result, "error", T.missing_vector);

  $("predict-submit").disabled = true;
  showResult(result, "pending", T.predicting);
  log(`${T.sent}: PREDICT ${model} [${vector.join(", ")}]`);
  const body = await requestJson("/predict", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ model_id: model, input_vector: vector }),
  });
  $("predict-submit").disabled = false;

  if (body.success) {
    const values = body.prediction.map((v) => v.toFixed(4)).join(", ");
    let text = `${T.prediction}: [${values}]`;
    if (body.label !== undefined && body.label !== null) text += `\n${T.label}: ${body.label}`;
    showResult(result, "success", text);
    log(`${model}: [${values}]${body.label != null ? " → " + body.label : ""}`, "ok");
  } else {
    const text = errorText(T.predict_failed, body);
    showResult(result, "error", text);
    log(text, "error");
  }
});
$("predict-reload").addEventListener("click", () => loadModels());

// ---- models ----
async function loadModels(select) {
  const body = await requestJson("/models");
  const status = $("models-result");
  if (!body.success) {
    const text = errorText(T.models_failed, body);
    showResult(status, "error", text);
    log(text, "error");
    return;
  }
  showResult(status, "idle", "");
  renderModels(body.models);
  fillModelSelect(body.models, select);
}

function renderModels(models) {
  const rows = $("models-table").tBodies[0];
  rows.replaceChildren();
  for (const m of models) {
    const row = rows.insertRow();
    row.dataset.model = m.id;
    const accuracy = typeof m.accuracy === "number" ? m.accuracy.toFixed(3) : "-";
    for (const value of [m.id, m.dataset, m.date, m.status, accuracy, m.task ?? "-", m.features ?? "-"]) {
      row.insertCell().textContent = String(value);
    }
  }
  $("models-empty").hidden = models.length > 0;
}

function fillModelSelect(models, preferred) {
  const select = $("predict-model");
  const keep = preferred || select.value;
  select.replaceChildren();
  for (const m of models) {
    const option = new Option(m.features ? `${m.id} (${m.features})` : m.id, m.id);
    select.add(option);
  }
  if (models.some((m) => m.id === keep)) select.value = keep;
}

$("models-refresh").addEventListener("click", async () => {
  await loadModels();
  log(T.loaded_models);
});

// ---- cluster badge, polled ----
let lastLeader;
async function pollCluster() {
  const body = await requestJson("/cluster");
  const badge = $("cluster-status");
  if (!body.success) {
    badge.className = "badge error";
    badge.textContent = `${T.cluster}: ${T.unreachable}`;
    return;
  }
  const up = body.nodes.filter((n) => n.reachable);
  const leaderNode = up.find((n) => n.status.isLeader);
  const leader = leaderNode ? leaderNode.status.node : null;
  if (up.length === 0) {
    badge.className = "badge error";
  } else if (leader) {
    badge.className = "badge ok";
  } else {
    badge.className = "badge";
  }
  const leaderText = leader ? `${T.leader} ${leader}` : T.no_leader;
  badge.textContent = `${T.cluster}: ${up.length}/${body.nodes.length} ${T.nodes_up}, ${leaderText}`;
  if (leader !== lastLeader) {
    if (lastLeader !== undefined || leader) log(`${T.leader_changed}: ${leader ?? T.no_leader}`, leader ? "ok" : "error");
    lastLeader = leader;
  }
}

// ---- language: the server remembers ?lang= in a cookie; localStorage restores it if
// the cookie is gone ----
for (const code of ["en", "es"]) {
  $(`lang-${code}`).addEventListener("click", () => localStorage.setItem("lang", code));
}
const stored = localStorage.getItem("lang");
if (stored && stored !== document.documentElement.lang && !new URLSearchParams(location.search).has("lang")) {
  location.replace(`?lang=${stored}`);
}

loadModels();
pollCluster();
setInterval(pollCluster, CLUSTER_POLL_MS);
