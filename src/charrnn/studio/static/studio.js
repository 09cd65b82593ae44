// charrnn studio: the page's script. Every text from a model, a run or a corpus goes into the
// page with textContent (or as canvas pixels), never as markup.
"use strict";

const DIVERGING = ["#053061", "#2065ab", "#4393c3", "#90c4dd", "#d1e5f0", "#f7f6f6", "#fddbc7", "#f3a481", "#d6604d", "#b1182b", "#67001f"];
const SEQUENTIAL = ["#440154", "#482475", "#414487", "#355f8d", "#2a788e", "#21918c", "#22a884", "#44bf70", "#7ad151", "#bddf26", "#fde725"];
const SURPRISE_MAX_BITS = 8;  // the surprise view's fixed scale: 0 to 8 bits
const LANGUAGE_KEY = "charrnn-studio-language";

const $ = (id) => document.getElementById(id);

// -- small helpers ---------------------------------------------------------------------------
function el(tag, options = {}, children = []) {
  const node = document.createElement(tag);
  if (options.className) node.className = options.className;
  if (options.text !== undefined) node.textContent = options.text;
  if (options.title !== undefined) node.title = options.title;
  for (const child of children) node.appendChild(child);
  return node;
}

function hexToRgb(hex) {
  return [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
}

function colourOf(value, low, high, stops) {
  if (value === null || value === undefined || Number.isNaN(value)) return "transparent";
  const t = Math.min(1, Math.max(0, (value - low) / (high - low))) * (stops.length - 1);
  const i = Math.min(stops.length - 2, Math.floor(t));
  const a = hexToRgb(stops[i]), b = hexToRgb(stops[i + 1]);
  const f = t - i;
  return `rgb(${a.map((x, k) => Math.round(x + (b[k] - x) * f)).join(",")})`;
}

async function api(path, body) {
  const options = body === undefined ? {} : {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  };
  const response = await fetch(path, options);
  const data = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
  if (!response.ok) throw new Error(data.error || `HTTP ${response.status}`);
  return data;
}

// Server-Sent Events over fetch (GET or POST), so that one reader serves every stream and an
// AbortController closes it (the server then stops that stream's work).
async function streamEvents(path, body, signal, onEvent) {
  const options = { signal, headers: { Accept: "text/event-stream" } };
  if (body !== undefined) {
    options.method = "POST";
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  if (!response.ok) {
    const data = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
    throw new Error(data.error || `HTTP ${response.status}`);
  }
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let event = "message", data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event: ")) event = line.slice(7);
        else if (line.startsWith("data: ")) data += line.slice(6);
      }
      if (data) onEvent(event, JSON.parse(data));
    }
  }
}

// -- strings (English / Korean) ----------------------------------------------------------------
let STRINGS = { en: {} };
let language = "en";

function t(key) {
  return (STRINGS[language] && STRINGS[language][key]) || STRINGS.en[key] || key;
}

function applyStrings() {
  document.documentElement.lang = language;
  for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  $("language").value = language;
  if (runChart) {  // its legend names the series: make it again in the new language
    runChart.destroy();
    runChart = null;
    if (runs.chosen) { ensureRunChart(); drawRunChart(); }
  }
}

async function loadStrings() {
  STRINGS = await (await fetch("/static/strings.json")).json();
  const saved = localStorage.getItem(LANGUAGE_KEY);
  language = saved && STRINGS[saved] ? saved : ((navigator.language || "en").startsWith("ko") ? "ko" : "en");
  applyStrings();
  $("language").addEventListener("change", () => {
    language = $("language").value;
    localStorage.setItem(LANGUAGE_KEY, language);
    applyStrings();
  });
}

// -- tabs ------------------------------------------------------------------------------------
function showTab(name) {
  $("lecture-panel").hidden = name !== "lecture";
  $("runs-panel").hidden = name !== "runs";
  $("tab-lecture").classList.toggle("active", name === "lecture");
  $("tab-runs").classList.toggle("active", name === "runs");
  if (name === "runs") loadRuns();
  resizeCharts();
}

// -- charts (uPlot) --------------------------------------------------------------------------
function makeChart(target, series, xLabel) {
  const width = Math.max(300, target.clientWidth || 500);
  return new uPlot({
    width, height: 240,
    scales: { x: { time: false } },
    series: [{ label: xLabel }, ...series],
    axes: [{}, { size: 55 }],
    legend: { show: true },
  }, [[], ...series.map(() => [])], target);
}

let lossChart = null, runChart = null;

function resizeCharts() {
  for (const [chart, id] of [[lossChart, "loss-chart"], [runChart, "run-chart"]]) {
    if (chart && $(id).clientWidth) chart.setSize({ width: $(id).clientWidth, height: 240 });
  }
}

function ensureRunChart() {
  if (!runChart) {
    runChart = makeChart($("run-chart"), [
      { label: t("train"), stroke: "#2065ab", width: 1.2 },
      { label: t("validation"), stroke: "#d6604d", width: 2, spanGaps: true, points: { show: true } },
    ], t("step_axis"));
  }
}

// -- the lecture panel -----------------------------------------------------------------------
const lecture = {
  examples: [], chosen: null, job: null, jobSettings: null, stream: null, losses: [], drawQueued: false, last: null,
};

function currentSettings() {
  const example = lecture.chosen;
  const dense = $("dense").checked;
  return {
    example: example.name,
    cell: $("cell").value,
    hidden_size: dense ? Number($("hidden-size").value) : example.num_classes,
    learning_rate: Number($("learning-rate").value),
    optimizer: $("optimizer").value,
    dense,
    seed: Number($("seed").value),
    iterations: Number($("iterations").value),
  };
}

function chooseExample(example) {
  lecture.chosen = example;
  $("cell").value = example.cell;
  $("hidden-size").value = example.hidden_size;
  $("learning-rate").value = example.learning_rate;
  $("dense").checked = example.dense;
  $("iterations").value = example.iterations;
  $("tf-code").textContent = example.tensorflow_code;
  $("target-text").textContent = example.target_text;
  updateDense();
  startJob().catch(showLectureError);
}

function updateDense() {
  const dense = $("dense").checked;
  $("hidden-size").disabled = !dense;
  if (!dense && lecture.chosen) $("hidden-size").value = lecture.chosen.num_classes;
  $("dense-note").hidden = dense;
}

function showLectureError(error) {
  $("lecture-error").textContent = error ? String(error.message || error) : "";
}

// Job starts run one after another: two in flight at once would each replace the other's job.
let jobQueue = Promise.resolve();
function serial(task) {
  const run = jobQueue.then(task, task);
  jobQueue = run.catch(() => {});
  return run;
}

function startJob() {
  return serial(doStartJob);
}

async function doStartJob() {
  showLectureError(null);
  const settings = currentSettings();
  if (lecture.stream) lecture.stream.abort();
  const started = await api("/api/lecture/start", settings);
  lecture.job = started.job;
  lecture.jobSettings = JSON.stringify(settings);
  lecture.losses = [];
  $("charrnn-code").textContent = started.code;
  render(started.snapshot);
  listen(started.job);
  return started.job;
}

function ensureJob() {
  return serial(async () => {
    const ended = lecture.last && lecture.last.stopped;  // a job that failed or was replaced
    if (!lecture.job || ended || lecture.jobSettings !== JSON.stringify(currentSettings())) return doStartJob();
    return lecture.job;
  });
}

function listen(job) {
  const controller = new AbortController();
  lecture.stream = controller;
  streamEvents(`/api/lecture/${encodeURIComponent(job)}/events`, undefined, controller.signal, (event, data) => {
    if (event === "end" && data.job === lecture.job && lecture.last) {
      render(Object.assign({}, lecture.last, { stopped: true, playing: false, error: data.error }));
      return;
    }
    if (event !== "snapshot" || data.job !== lecture.job) return;
    if (data.losses_start === 0) lecture.losses = [];
    lecture.losses.length = data.losses_start;
    lecture.losses.push(...data.losses);
    render(data);
  }).catch((error) => { if (error.name !== "AbortError") showLectureError(error); });
}

function render(snapshot) {
  lecture.last = snapshot;
  if (!lecture.drawQueued) {
    lecture.drawQueued = true;
    requestAnimationFrame(draw);
  }
}

function draw() {
  lecture.drawQueued = false;
  const s = lecture.last;
  if (!s) return;
  $("iteration").textContent = s.iteration;
  $("iterations-total").textContent = s.iterations;
  $("loss").textContent = s.loss === null ? "–" : s.loss.toPrecision(6);
  $("prediction-text").textContent = s.prediction;
  $("target-text").textContent = s.target;
  for (const id of ["prediction-text", "target-text"]) $(id).classList.toggle("long", s.target.length > 30);
  $("play").disabled = s.playing || s.done;
  $("pause").disabled = !s.playing;
  $("step").disabled = s.done;
  if (s.error) showLectureError(s.error);
  drawPositions(s);
  drawHeatmap(s);
  const xs = lecture.losses.map((_, i) => i);
  if (lossChart) lossChart.setData([xs, lecture.losses]);
}

function drawPositions(s) {
  const box = $("positions");
  const columns = s.positions.map((position) => {
    const chars = el("div", { className: "chars" }, [
      el("span", { text: t("input") }), el("code", { text: shown(position.input) }),
      el("span", { text: t("target") }), el("code", { text: shown(position.target) }),
      el("span", { text: t("prediction") }), el("code", { text: shown(position.prediction) }),
    ]);
    const guesses = position.guesses.map(([character, p]) => {
      const fill = el("div", { className: "fill" });
      fill.style.width = `${(100 * p).toFixed(1)}%`;
      return el("div", { className: "guess" }, [el("code", { text: shown(character) }), el("div", { className: "bar" }, [fill]),
        el("span", { className: "p", text: p.toFixed(2) })]);
    });
    return el("div", { className: "position" + (position.prediction === position.target ? "" : " wrong") },
      [chars, ...guesses]);
  });
  box.replaceChildren(...columns);
}

function drawHeatmap(s) {
  const canvas = $("heatmap");
  const select = $("heatmap-layer");
  if (select.options.length !== s.hidden.length) {  // one choice per layer, the top one first shown
    select.replaceChildren(...s.hidden.map((_, index) => {
      const option = el("option", { text: String(index) });
      option.value = String(index);
      return option;
    }));
    select.value = String(s.hidden.length - 1);
  }
  $("heatmap-layer-label").hidden = s.hidden.length < 2;
  const hidden = s.hidden[Number(select.value)] || s.hidden[s.hidden.length - 1];
  const columns = hidden.length, rows = s.hidden_size;
  const cellWidth = Math.max(6, Math.min(28, Math.floor(1100 / Math.max(1, columns))));
  const cellHeight = Math.max(4, Math.min(18, Math.floor(320 / Math.max(1, rows))));
  const labels = 16;
  canvas.width = columns * cellWidth + 30;
  canvas.height = rows * cellHeight + labels;
  const context = canvas.getContext("2d");
  context.clearRect(0, 0, canvas.width, canvas.height);
  context.font = "11px monospace";
  context.fillStyle = "#5b6570";
  context.textAlign = "right";
  for (let unit = 0; unit < rows; unit += Math.max(1, Math.ceil(rows / 16))) {
    context.fillText(String(unit), 26, labels + unit * cellHeight + cellHeight - 2);
  }
  context.textAlign = "center";
  hidden.forEach((values, column) => {
    if (cellWidth >= 9) {
      const input = s.positions[column].input;
      context.fillStyle = "#1d232b";
      context.fillText(shown(input), 30 + column * cellWidth + cellWidth / 2, 12);
    }
    values.forEach((value, unit) => {
      context.fillStyle = colourOf(value, -1, 1, DIVERGING);
      context.fillRect(30 + column * cellWidth, labels + unit * cellHeight, cellWidth - 1, cellHeight - 1);
    });
  });
}

async function setupLecture() {
  const { examples } = await api("/api/lecture/examples");
  lecture.examples = examples;
  const fieldset = $("examples");
  examples.forEach((example, index) => {
    const input = el("input");
    input.type = "radio";
    input.name = "example";
    input.value = example.name;
    input.id = `example-${example.name}`;
    input.checked = index === 0;
    input.addEventListener("change", () => chooseExample(example));
    const label = el("label", { className: "check" }, [input, el("span", { text: example.name })]);
    fieldset.appendChild(label);
  });
  lossChart = makeChart($("loss-chart"), [{ label: "loss", stroke: "#2065ab", width: 1.5 }], "iteration");
  $("dense").addEventListener("change", updateDense);
  $("heatmap-layer").addEventListener("change", () => lecture.last && drawHeatmap(lecture.last));
  $("play").addEventListener("click", async () => {
    try {
      const job = await ensureJob();
      await api(`/api/lecture/${encodeURIComponent(job)}/play`, {});
    } catch (error) { showLectureError(error); }
  });
  $("pause").addEventListener("click", () => lecture.job && api(`/api/lecture/${encodeURIComponent(lecture.job)}/pause`, {}).catch(showLectureError));
  $("step").addEventListener("click", async () => {
    try {
      const job = await ensureJob();
      const stepped = await api(`/api/lecture/${encodeURIComponent(job)}/step`, { count: 1 });
      lecture.losses = stepped.losses;
      render(stepped.snapshot);
    } catch (error) { showLectureError(error); }
  });
  $("reset").addEventListener("click", async () => {
    try {
      await serial(async () => {
        if (lecture.job && lecture.jobSettings === JSON.stringify(currentSettings())) {
          const reset = await api(`/api/lecture/${encodeURIComponent(lecture.job)}/reset`, {});
          lecture.losses = reset.losses;
          render(reset.snapshot);
        } else {
          await doStartJob();
        }
      });
    } catch (error) { showLectureError(error); }
  });
  chooseExample(examples[0]);
}

// -- the runs panel --------------------------------------------------------------------------
const runs = { chosen: null, metrics: null, sample: null, records: [], inspected: null, request: null };

async function loadRuns() {
  const { runs: list } = await api("/api/runs");
  const ul = $("run-list");
  ul.replaceChildren(...list.map((run) => {
    const button = el("button", {}, [el("span", { text: run.name }),
      el("span", { className: "source", text: run.source === "pretrained" ? t("pretrained") : "" })]);
    button.type = "button";
    button.dataset.source = run.source;
    button.dataset.name = run.name;
    if (runs.chosen && runs.chosen.source === run.source && runs.chosen.name === run.name) button.classList.add("active");
    button.addEventListener("click", () => chooseRun(run, button));
    return el("li", {}, [button]);
  }));
  $("no-runs").hidden = list.some((run) => run.source === "runs");
}

function chooseRun(run, button) {
  runs.chosen = run;
  for (const other of document.querySelectorAll("#run-list button")) other.classList.toggle("active", other === button);
  $("run-title").removeAttribute("data-i18n");
  $("run-title").textContent = run.name;
  $("run-body").hidden = false;
  ensureRunChart();
  resizeCharts();
  runs.records = [];
  runChart.setData([[], [], []]);
  if (runs.metrics) runs.metrics.abort();
  $("metrics-note").textContent = "";
  const controller = new AbortController();
  runs.metrics = controller;
  const query = `source=${encodeURIComponent(run.source)}&name=${encodeURIComponent(run.name)}`;
  streamEvents(`/api/metrics/events?${query}`, undefined, controller.signal, (event, data) => {
    if (event !== "metrics") return;
    if (data.reset) runs.records = [];
    runs.records.push(...data.records);
    $("metrics-note").textContent = data.exists ? t("metrics_live") : t("no_metrics");
    $("run-chart").hidden = !data.exists;
    if (data.exists) resizeCharts();
    drawRunChart();
  }).catch((error) => { if (error.name !== "AbortError") $("metrics-note").textContent = String(error.message); });
  $("sample-text").textContent = "";
  $("sample-prime").textContent = "";
  $("inspect-text").replaceChildren();
  $("best-units").replaceChildren();
  runs.inspected = null;
}

function drawRunChart() {
  const bySteps = new Map();
  for (const record of runs.records) {
    const entry = bySteps.get(record.step) || { train: null, val: null };
    if (record.train_loss !== undefined) entry.train = record.train_loss;
    if (record.val_loss !== undefined) entry.val = record.val_loss;
    bySteps.set(record.step, entry);
  }
  const steps = [...bySteps.keys()].sort((a, b) => a - b);
  runChart.setData([steps, steps.map((s) => bySteps.get(s).train), steps.map((s) => bySteps.get(s).val)]);
}

function optionalNumber(id) {
  const value = $(id).value.trim();
  return value === "" ? null : Number(value);
}

function startSample() {
  if (!runs.chosen) return;
  if (runs.sample) runs.sample.abort();
  const controller = new AbortController();
  runs.sample = controller;
  $("sample-error").textContent = "";
  $("sample-text").textContent = "";
  $("sample-prime").textContent = $("prime").value;
  $("sample-button").disabled = true;
  $("sample-stop").disabled = false;
  const body = {
    source: runs.chosen.source, name: runs.chosen.name, prime: $("prime").value,
    temperature: Number($("temperature").value), top_k: optionalNumber("top-k"),
    length: Number($("length").value), seed: optionalNumber("sample-seed"),
  };
  const output = $("sample-text");
  streamEvents("/api/sample", body, controller.signal, (event, data) => {
    if (event === "text") output.appendChild(document.createTextNode(data.text));
    else if (event === "error") $("sample-error").textContent = data.error;
  }).catch((error) => {
    if (error.name !== "AbortError") $("sample-error").textContent = String(error.message);
  }).finally(() => {
    if (runs.sample === controller) {
      $("sample-button").disabled = false;
      $("sample-stop").disabled = true;
    }
  });
}

async function inspect(layer, kind) {
  if (!runs.chosen) return;
  $("inspect-error").textContent = "";
  const body = { source: runs.chosen.source, name: runs.chosen.name, text: $("inspect-input").value };
  if (layer !== undefined) body.layer = layer;
  if (kind !== undefined) body.kind = kind;
  try {
    runs.inspected = await api("/api/inspect", body);
  } catch (error) {
    $("inspect-error").textContent = String(error.message);
    return;
  }
  const view = runs.inspected;
  $("inspect-layer").replaceChildren(...view.layers.map((layerInfo, index) => {
    const option = el("option", { text: `${index} (${layerInfo.cell})` });
    option.value = String(index);
    return option;
  }));
  $("inspect-layer").value = String(view.layer);
  $("inspect-kind").replaceChildren(...view.layers[view.layer].kinds.map((name) => {
    const option = el("option", { text: name });
    option.value = name;
    return option;
  }));
  $("inspect-kind").value = view.kind;
  $("inspect-unit").max = String(view.units - 1);
  if (layer === undefined) $("inspect-unit").value = String(liveliestUnit(view));  // a fresh text: a unit that moves
  if (Number($("inspect-unit").value) >= view.units) $("inspect-unit").value = "0";
  $("best-units").replaceChildren(...view.best_units.map((best) => {
    const button = el("button", { text: `${best.feature}: layer ${best.layer} ${best.kind} unit ${best.unit} (${best.measure} ${best.score})` });
    button.type = "button";
    button.addEventListener("click", async () => {
      $("inspect-view").value = "unit";
      $("inspect-unit").value = String(best.unit);
      if (best.layer !== view.layer || best.kind !== view.kind) await inspect(best.layer, best.kind);
      else colourText();
    });
    return button;
  }));
  const spans = view.characters.map((character, position) => {
    const span = el("span", { className: "ch" + (character === "\n" ? " nl" : character === "\t" ? " tab" : ""), text: character });
    span.addEventListener("mouseenter", () => showGuesses(position));
    return span;
  });
  $("inspect-text").replaceChildren(...spans);
  colourText();
}

// The unit whose value spans the widest range over the text: a better first picture than unit 0.
function liveliestUnit(view) {
  let best = 0, widest = -1;
  for (let unit = 0; unit < view.units; unit += 1) {
    let low = Infinity, high = -Infinity;
    for (const row of view.values) { low = Math.min(low, row[unit]); high = Math.max(high, row[unit]); }
    if (high - low > widest) { widest = high - low; best = unit; }
  }
  return best;
}

function shown(character) {
  return character === " " ? "␣" : character === "\n" ? "↵" : character === "\t" ? "→" : character;
}

function colourText() {
  const view = runs.inspected;
  if (!view) return;
  const surprise = $("inspect-view").value === "surprise";
  $("inspect-unit").disabled = surprise;
  const unit = Math.min(view.units - 1, Math.max(0, Number($("inspect-unit").value) || 0));
  const [low, high] = surprise ? [0, SURPRISE_MAX_BITS] : view.range;
  const stops = surprise || low === 0 ? SEQUENTIAL : DIVERGING;
  $("inspect-scale").className = "scale " + (stops === SEQUENTIAL ? "sequential" : "diverging");
  $("inspect-low").textContent = String(low);
  $("inspect-high").textContent = surprise ? `${high} bits` : String(high);
  const spans = $("inspect-text").children;
  for (let position = 0; position < spans.length; position += 1) {
    const value = surprise ? view.surprise_bits[position] : view.values[position][unit];
    spans[position].style.backgroundColor = colourOf(value, low, high, stops);
    spans[position].style.color = value !== null && ((value - low) / (high - low) > 0.8 || (value - low) / (high - low) < 0.2) ? "#fff" : "";
  }
}

function showGuesses(position) {
  const view = runs.inspected;
  const rows = view.guesses[position].map(([character, p]) => {
    const fill = el("div", { className: "fill" });
    fill.style.width = `${(100 * p).toFixed(1)}%`;
    return el("div", { className: "guess row" }, [el("code", { text: shown(character) }),
      el("div", { className: "bar" }, [fill]), el("span", { className: "p", text: p.toFixed(2) })]);
  });
  $("guess-rows").replaceChildren(...rows);
  $("guesses").hidden = false;
}

function setupRuns() {
  $("sample-button").addEventListener("click", startSample);
  $("sample-stop").addEventListener("click", () => runs.sample && runs.sample.abort());
  $("inspect-button").addEventListener("click", () => inspect());
  $("inspect-view").addEventListener("change", colourText);
  $("inspect-unit").addEventListener("input", colourText);
  $("inspect-layer").addEventListener("change", () => inspect(Number($("inspect-layer").value), "h"));
  $("inspect-kind").addEventListener("change", () => inspect(Number($("inspect-layer").value), $("inspect-kind").value));
}

// -- start -----------------------------------------------------------------------------------
window.addEventListener("DOMContentLoaded", async () => {
  $("tab-lecture").addEventListener("click", () => showTab("lecture"));
  $("tab-runs").addEventListener("click", () => showTab("runs"));
  window.addEventListener("resize", resizeCharts);
  await loadStrings();
  setupRuns();
  await setupLecture().catch(showLectureError);
  document.body.dataset.ready = "true";
});
