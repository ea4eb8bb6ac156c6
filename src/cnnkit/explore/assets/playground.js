// playground.js: the playground's form, the windows along one axis and the output grid drawn
// beside the texts of shapes.js.

// One axis: the padded input's positions (blue input, grey padding, red never read) and the
// first windows below it (their taps, or the span they cover when the axis is long).
function drawAxis(target, i, f, s, p, d, shape) {
  target.replaceChildren();
  const padded = i + 2 * p,
    width = 600;
  const cell = width / Math.max(padded, 1),
    each = cell >= 6;
  const windows = Math.min(shape.count, 8),
    row = 14;
  const picture = svg("svg", {
    viewBox: `0 0 ${width + 2} ${(windows + 2) * (row + 4) + 6}`,
    class: "axis",
    role: "img",
    "aria-label": `the ${padded} padded positions along one axis and the first ${windows} of ${shape.count} windows`,
  });
  const band = (from, to, y, fill) =>
    picture.append(
      svg("rect", {
        x: 1 + from * cell,
        y,
        width: Math.max(1, (to - from) * cell - (each ? 1 : 0)),
        height: row,
        fill,
      }),
    );
  if (each) {
    for (let k = 0; k < padded; k++) {
      const unread = shape.unread && k >= padded - shape.unread;
      band(k, k + 1, 2, unread ? "#ef9a9a" : k < p || k >= p + i ? "#cfd8dc" : "#90caf9");
    }
  } else {
    band(0, padded, 2, "#90caf9");
    band(0, p, 2, "#cfd8dc");
    band(p + i, padded, 2, "#cfd8dc");
    if (shape.unread) band(padded - shape.unread, padded, 2, "#ef9a9a");
  }
  for (let o = 0; o < windows; o++) {
    const y = (o + 1) * (row + 4) + 2,
      start = o * s;
    if (each) for (let t = 0; t < f; t++) band(start + t * d, start + t * d + 1, y, "#ff9100");
    else band(start, start + shape.extent, y, "#ff9100");
  }
  const label = svg("text", { x: 2, y: (windows + 2) * (row + 4), "font-size": 12 });
  label.textContent = `${padded} padded positions; the first ${windows} of ${shape.count} windows, each ${shape.extent} wide, S=${s} apart`;
  picture.append(label);
  target.append(picture);
}

function drawOutputGrid(target, output, depth) {
  target.replaceChildren();
  if (!output) return;
  if (output > 64) {
    target.append(
      element("p", {
        class: "note",
        text: `output ${output}x${output}x${depth}: too many units to draw`,
      }),
    );
    return;
  }
  const cell = Math.max(3, Math.min(16, Math.floor(240 / output)));
  const picture = svg("svg", {
    width: output * cell + 1,
    height: output * cell + 1,
    role: "img",
    "aria-label": `the output grid: ${output}x${output} units per depth slice, ${depth} slices`,
  });
  for (let r = 0; r < output; r++)
    for (let c = 0; c < output; c++)
      picture.append(
        svg("rect", {
          x: c * cell + 1,
          y: r * cell + 1,
          width: cell - 1,
          height: cell - 1,
          fill: "#ffcc80",
        }),
      );
  target.append(
    picture,
    element("p", {
      class: "note",
      text: `${output}x${output} units in each of the ${depth} depth slices`,
    }),
  );
}

function readPlayground() {
  const value = (id, low) =>
    Math.max(low, Math.floor(Number(document.getElementById(id).value) || 0));
  return {
    i: value("pg-i", 1),
    c: value("pg-c", 1),
    f: value("pg-f", 1),
    s: value("pg-s", 1),
    p: value("pg-p", 0),
    d: value("pg-d", 1),
    depth: value("pg-depth", 1),
    floor: document.getElementById("pg-floor").checked,
  };
}

function updatePlayground() {
  const v = readPlayground();
  const shape = explainShape(v.i, v.f, v.s, v.p, v.d, v.floor);
  const shapeBox = document.getElementById("pg-shape");
  shapeBox.textContent = shape.text;
  shapeBox.classList.toggle("impossible", !shape.possible);
  const sharing = document.getElementById("pg-sharing");
  if (shape.possible && shape.output >= 1) {
    const found = explainSharing(v.i, v.c, v.f, v.s, v.p, v.d, v.depth, v.floor, shape.output);
    sharing.textContent = found.text;
  } else {
    sharing.textContent = "no parameter count: the layer is impossible (see above)";
  }
  drawAxis(document.getElementById("pg-axis"), v.i, v.f, v.s, v.p, v.d, shape);
  drawOutputGrid(document.getElementById("pg-grid"), shape.possible ? shape.output : 0, v.depth);
}

function setPlayground(values) {
  for (const [key, value] of Object.entries(values)) {
    const input = document.getElementById(`pg-${key}`);
    if (key === "floor") input.checked = value;
    else input.value = value;
  }
  updatePlayground();
}

function setUpPlayground() {
  const presets = [
    {
      name: "AlexNet conv1: 227x227x3, D=96, F=11, S=4, P=0",
      values: { i: 227, c: 3, f: 11, s: 4, p: 0, d: 1, depth: 96, floor: false },
    },
    {
      name: "the lecture's impossible one: 10 wide, F=3, S=2, P=0",
      values: { i: 10, c: 3, f: 3, s: 2, p: 0, d: 1, depth: 16, floor: false },
    },
  ];
  for (const node of allNodes()) {
    if (node.kind !== "CONV") continue;
    const cfg = node.config,
      k = pair(cfg.kernel_size),
      st = pair(cfg.stride),
      dl = pair(cfg.dilation);
    const [c, h, w] = view3(node.input);
    const pd = cfg.padding === "same" || cfg.padding === "valid" ? null : pair(cfg.padding);
    if (
      h !== w ||
      k[0] !== k[1] ||
      st[0] !== st[1] ||
      dl[0] !== dl[1] ||
      !pd ||
      pd[0] !== pd[1] ||
      cfg.groups !== 1
    )
      continue;
    presets.push({
      name: `this run's layer ${node.path}: ${node.label} on ${h}x${w}x${c}`,
      values: {
        i: h,
        c,
        f: k[0],
        s: st[0],
        p: pd[0],
        d: dl[0],
        depth: cfg.out_channels,
        floor: cfg.rounding === "floor",
      },
    });
  }
  const menu = document.getElementById("pg-preset");
  presets.forEach((preset, k) => menu.append(element("option", { value: k, text: preset.name })));
  menu.addEventListener("change", () => setPlayground(presets[Number(menu.value)].values));
  for (const input of document.querySelectorAll("#playground input"))
    input.addEventListener("input", updatePlayground);
  setPlayground(presets[0].values);
  window.cnnkit.explainShape = (i, f, s = 1, p = 0, options = {}) =>
    explainShape(i, f, s, p, options.dilation || 1, !!options.floor).text;
  window.cnnkit.explainSharing = (i, c, f, s, p, d, depth, floor) => {
    const shape = explainShape(i, f, s, p, d, floor);
    return shape.possible
      ? explainSharing(i, c, f, s, p, d, depth, floor, shape.output).text
      : null;
  };
}
