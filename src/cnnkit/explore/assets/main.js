// main.js: the page put together. The current image (a drawing or a test image) goes through
// the network; the prediction, every layer's maps and the selected unit follow it.

let CURRENT = null; // the image tensor now shown
let PENDING = false;

function showImage(image) {
  CURRENT = image;
  VIEW.result = runNetwork(image);
  const list = document.getElementById("layer-list");
  if (!list.children.length) {
    VIEW.result.records.forEach((record) => buildBlock(record, list));
    if (VIEW.result.unsupported) {
      list.append(
        element("section", { class: "layer unsupported", id: "unsupported", role: "note" }, [
          element("h3", { text: `${VIEW.result.stoppedAt.path} ${VIEW.result.stoppedAt.label}` }),
          element("p", {
            text: `${VIEW.result.unsupported}; the layers from here on are not shown and there is no prediction.`,
          }),
        ]),
      );
    }
  }
  showPrediction(VIEW.result);
  paintSeen();
  if (VIEW.selection && !VIEW.result.records[VIEW.selection.id]) VIEW.selection = null;
  showSelection(false);
}

function showPrediction(result) {
  const bars = document.getElementById("bars"),
    verdict = document.getElementById("verdict");
  const short = document.getElementById("verdict-short");
  bars.replaceChildren();
  if (!result.probabilities) {
    verdict.textContent = result.unsupported
      ? `No prediction: ${result.unsupported}.`
      : "No prediction: the network's output is not one score per class.";
    short.textContent = "no prediction";
    return;
  }
  const classes = DATA.run.classes,
    p = result.probabilities;
  const order = p.map((v, k) => k).sort((a, b) => p[b] - p[a] || a - b);
  verdict.textContent = `Predicted ${classes[order[0]]} (${percent(p[order[0]])})`;
  short.textContent = `${classes[order[0]]} (${percent(p[order[0]])})`;
  for (const k of order) {
    const bar = element(
      "div",
      {
        class: "bar",
        "data-class": classes[k],
        role: "img",
        "aria-label": `${classes[k]}: ${percent(p[k])}`,
      },
      [
        element("span", { class: "name", text: classes[k] }),
        element("span", {
          class: "fill",
          style: `width: ${Math.max(0.5, 100 * p[k]).toFixed(1)}%`,
        }),
        element("span", { class: "value", text: percent(p[k]) }),
      ],
    );
    bars.append(bar);
  }
}

function paintSeen() {
  const canvas = document.getElementById("seen");
  const record = VIEW.result.records[0];
  const [c, h, w] = view3(record.tensor.shape);
  const s = Math.max(2, Math.floor(112 / Math.max(h, w)));
  canvas.width = w * s;
  canvas.height = h * s;
  const ctx = canvas.getContext("2d");
  for (let r = 0; r < h; r++) {
    for (let q = 0; q < w; q++) {
      const rgb = [0, 1, 2].map((k) =>
        Math.round(
          255 * Math.min(1, Math.max(0, record.tensor.data[((c === 3 ? k : 0) * h + r) * w + q])),
        ),
      );
      ctx.fillStyle = `rgb(${rgb.join(",")})`;
      ctx.fillRect(q * s, r * s, s, s);
    }
  }
  const region = VIEW.regions[0];
  if (region) {
    ctx.strokeStyle = "#ff9100";
    ctx.lineWidth = 2;
    ctx.strokeRect(
      region.q0 * s + 1,
      region.r0 * s + 1,
      (region.q1 - region.q0 + 1) * s - 2,
      (region.r1 - region.r0 + 1) * s - 2,
    );
  }
}

function scheduleDrawing() {
  if (PENDING) return;
  PENDING = true;
  requestAnimationFrame(() => {
    PENDING = false;
    document
      .querySelectorAll("#samples button")
      .forEach((b) => b.setAttribute("aria-pressed", "false"));
    showImage(drawingTensor());
  });
}

function setUpSamples() {
  const box = document.getElementById("samples");
  DATA.samples.forEach((sample) => {
    const image = sampleTensor(sample);
    const [c, h, w] = view3(image.shape);
    const thumb = element("canvas", { width: w, height: h, "aria-hidden": "true" });
    const ctx = thumb.getContext("2d");
    const pixels = ctx.createImageData(w, h);
    for (let k = 0; k < h * w; k++) {
      for (let ch = 0; ch < 3; ch++)
        pixels.data[4 * k + ch] = Math.round(
          255 * Math.min(1, Math.max(0, image.data[(c === 3 ? ch : 0) * h * w + k])),
        );
      pixels.data[4 * k + 3] = 255;
    }
    ctx.putImageData(pixels, 0, 0);
    const name = DATA.run.classes[sample.label];
    const button = element(
      "button",
      {
        type: "button",
        "aria-pressed": "false",
        "data-index": sample.index,
        "aria-label": `test image ${sample.index}, class ${name}`,
      },
      [thumb, element("span", { text: name })],
    );
    button.addEventListener("click", () => {
      clearPad(image);
      box
        .querySelectorAll("button")
        .forEach((b) => b.setAttribute("aria-pressed", String(b === button)));
      showImage(image);
    });
    box.append(button);
  });
}

// This page's probabilities for its test images against cnnkit's, computed when it was written.
function agreement() {
  let worst = 0;
  for (const sample of DATA.samples) {
    const mine = runNetwork(sampleTensor(sample)).probabilities;
    if (!mine) return null;
    sample.cnnkit.forEach((p, k) => {
      worst = Math.max(worst, Math.abs(p - mine[k]));
    });
  }
  return worst;
}

function showFacts() {
  const run = DATA.run;
  const parts = [
    `checkpoint ${run.checkpoint}.npz (epoch ${run.epoch}${run.epochs ? " of " + run.epochs : ""})`,
    `data ${run.data}`,
    `input ${shapeText(run.input_shape)}`,
  ];
  if (run.val_accuracy !== null && run.val_accuracy !== undefined)
    parts.push(`validation accuracy ${(100 * run.val_accuracy).toFixed(2)}%`);
  document.getElementById("run-facts").textContent = parts.join(" · ");
  document.getElementById("spec").textContent = run.spec;
  const notices = document.getElementById("notices");
  for (const text of [...DATA.unsupported, ...DATA.notes]) notices.append(element("li", { text }));
  notices.hidden = !notices.children.length;
  const worst = DATA.samples.length ? agreement() : null;
  document.getElementById("agreement").textContent =
    worst === null
      ? ""
      : `On the ${DATA.samples.length} test images above, this page's probabilities differ from those cnnkit computed when it wrote the page by at most ${worst.toExponential(1)}.`;
  window.cnnkit.agreement = worst;
}

function start() {
  setUpNetwork();
  showFacts();
  setUpSamples();
  setUpPad(scheduleDrawing);
  drawFilters(document.getElementById("filter-grid"), document.getElementById("filter-note"));
  drawCurves(document.getElementById("curve-charts"), document.getElementById("history"));
  setUpPlayground();
  document.getElementById("unit-close").addEventListener("click", () => {
    const id = VIEW.selection && VIEW.selection.id;
    VIEW.selection = null;
    showSelection(false);
    if (id !== null && VIEW.blocks[id]) VIEW.blocks[id].maps.focus();
  });
  const first = DATA.samples[0];
  if (first) document.querySelector("#samples button").click();
  else showImage(drawingTensor());
  // What the page shows now: the image (nested [C][H][W]) and its probabilities.
  window.cnnkit.current = () => ({
    image: nested(CURRENT),
    probabilities: VIEW.result.probabilities,
  });
  window.cnnkit.ready = true;
}

start();
