// charts.js: the first CONV layer's filters as pictures, and the run's training curves.

function firstConv() {
  return allNodes().find((node) => node.kind === "CONV" && node.tensors.weight) || null;
}

// One tile per filter, each on its own scale: one channel grey (black = most negative weight,
// mid-grey = 0, white = most positive), three channels as RGB from the filter's min to max;
// other channel counts show channel 0.
function drawFilters(target, note) {
  const node = firstConv();
  if (!node) {
    note.textContent = "The network has no CONV layer, so no filters to draw.";
    return;
  }
  const weight = param(node, "weight");
  const [d, c, kh, kw] = node.tensors.weight.shape;
  const s = Math.max(4, Math.floor(48 / Math.max(kh, kw)));
  for (let f = 0; f < d; f++) {
    const canvas = element("canvas", {
      width: kw * s,
      height: kh * s,
      class: "filter",
      role: "img",
      "aria-label": `filter ${f} of layer ${node.path}`,
    });
    const ctx = canvas.getContext("2d");
    const values = weight.subarray(f * c * kh * kw, (f + 1) * c * kh * kw);
    const low = Math.min(...values),
      high = Math.max(...values),
      top = Math.max(Math.abs(low), Math.abs(high)) || 1;
    for (let u = 0; u < kh; u++) {
      for (let v = 0; v < kw; v++) {
        let rgb;
        if (c === 3)
          rgb = [0, 1, 2].map((k) =>
            Math.round((255 * (values[(k * kh + u) * kw + v] - low)) / (high - low || 1)),
          );
        else {
          const g = Math.round(127.5 + (127.5 * values[u * kw + v]) / top);
          rgb = [g, g, g];
        }
        ctx.fillStyle = `rgb(${rgb.join(",")})`;
        ctx.fillRect(v * s, u * s, s, s);
      }
    }
    target.append(canvas);
  }
  const how =
    c === 3
      ? "RGB from each filter's smallest to its largest weight"
      : c === 1
        ? "black = the filter's most negative weight, mid-grey = 0, white = its most positive"
        : `input channel 0 of ${c}, black = most negative, mid-grey = 0, white = most positive`;
  note.textContent = `Layer ${node.path} ${node.label}: ${d} filters of ${kh}x${kw}x${c}, each on its own scale (${how}).`;
}

function lineChart(title, series, epochs, percent) {
  const width = 420,
    height = 220,
    left = 48,
    bottom = 32,
    top = 24,
    right = 12;
  const values = series.flatMap((s) => s.values.filter((v) => v !== null && v !== undefined));
  let low = Math.min(...values),
    high = Math.max(...values);
  if (percent) {
    low = Math.min(low, 1);
    high = 1;
  }
  if (high - low < 1e-9) {
    low -= 0.5;
    high += 0.5;
  }
  const x = (e) => left + ((e - 1) / Math.max(1, epochs - 1)) * (width - left - right);
  const y = (v) => top + ((high - v) / (high - low)) * (height - top - bottom);
  const chart = svg("svg", {
    viewBox: `0 0 ${width} ${height}`,
    class: "chart",
    role: "img",
    "aria-label": `${title} per epoch`,
  });
  chart.append(
    svg("rect", {
      x: left,
      y: top,
      width: width - left - right,
      height: height - top - bottom,
      fill: "#fafafa",
      stroke: "#ccc",
    }),
  );
  const label = (text, attributes) => {
    const t = svg("text", attributes);
    t.textContent = text;
    chart.append(t);
  };
  label(title, { x: left, y: 16, "font-size": 13, "font-weight": "bold" });
  for (const v of [low, (low + high) / 2, high])
    label(percent ? `${(100 * v).toFixed(0)}%` : fmt(v), {
      x: left - 4,
      y: y(v) + 4,
      "font-size": 11,
      "text-anchor": "end",
    });
  label("epoch", { x: width - right, y: height - 4, "font-size": 11, "text-anchor": "end" });
  for (const e of [1, epochs])
    label(String(e), {
      x: x(e),
      y: height - bottom + 14,
      "font-size": 11,
      "text-anchor": "middle",
    });
  series.forEach((s, k) => {
    const points = s.values
      .map((v, i) => (v === null || v === undefined ? null : [x(i + 1), y(v)]))
      .filter(Boolean);
    if (points.length > 1)
      chart.append(
        svg("polyline", {
          points: points.map((p) => p.join(",")).join(" "),
          fill: "none",
          stroke: s.colour,
          "stroke-width": 2,
          "stroke-dasharray": k ? "5 3" : "",
        }),
      );
    for (const p of points)
      chart.append(svg("circle", { cx: p[0], cy: p[1], r: 3, fill: s.colour }));
    label(s.name, {
      x: left + 8 + k * 120,
      y: height - bottom - 8,
      "font-size": 11,
      fill: s.colour,
    });
  });
  return chart;
}

function drawCurves(target, table) {
  const history = DATA.history;
  if (!history.length) {
    target.append(element("p", { class: "note", text: "The run has no history of epochs." }));
    return;
  }
  const get = (key) => history.map((r) => (r[key] === undefined ? null : r[key]));
  const n = history.length;
  target.append(
    lineChart(
      "loss",
      [
        { name: "training", values: get("train_loss"), colour: "#1565c0" },
        { name: "validation", values: get("val_loss"), colour: "#e65100" },
      ],
      n,
      false,
    ),
    lineChart(
      "accuracy",
      [
        { name: "training", values: get("train_accuracy"), colour: "#1565c0" },
        { name: "validation", values: get("val_accuracy"), colour: "#e65100" },
      ],
      n,
      true,
    ),
  );
  const show = (v, p) =>
    v === null || v === undefined ? "-" : p ? `${(100 * v).toFixed(2)}%` : v.toFixed(4);
  const rows = history.map(
    (r) =>
      `<tr><td>${r.epoch}</td><td>${show(r.train_loss)}</td><td>${show(r.train_accuracy, true)}</td><td>${show(r.val_loss)}</td><td>${show(r.val_accuracy, true)}</td><td>${r.lr === undefined ? "-" : Number(r.lr).toPrecision(3)}</td></tr>`,
  );
  table.innerHTML =
    "<caption>Per epoch (training values are means over the epoch's batches; validation after the epoch)</caption>" +
    "<tr><th scope=col>epoch</th><th scope=col>train loss</th><th scope=col>train acc</th><th scope=col>val loss</th><th scope=col>val acc</th><th scope=col>lr</th></tr>" +
    rows.join("");
}
