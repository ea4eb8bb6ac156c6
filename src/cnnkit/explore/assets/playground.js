// playground.js: the lecture's formula on one CONV layer, worked out as `cnnkit explain shape`
// and `cnnkit explain sharing` print it (cnnkit/explain/shape.py, explain/sharing.py and the
// rule of shapes/formula.py: a result that is not whole is accepted only when rounding down
// loses no real input; --floor rounds down as PyTorch does), with the windows along one axis
// and the output grid drawn.

function floorDiv(a, b) {
  return Math.floor(a / b);
}

function pyMod(a, b) {
  return ((a % b) + b) % b;
}

function thousands(n) {
  return n.toLocaleString("en-US");
}

// f"{span / stride + 1:.4g}" of Python, exactly (round half to even on the exact quotient).
function pythonG4(numerator, denominator) {
  const negative = numerator < 0 !== denominator < 0 && numerator !== 0;
  const a = BigInt(Math.abs(numerator)), d = BigInt(Math.abs(denominator));
  if (a === 0n) return "0";
  let e = 0;
  while (a >= d * 10n ** BigInt(e + 1)) e++;
  while (e <= 0 && a * 10n ** BigInt(-e) < d) e--;
  const digitsOf = (exp) => {
    const shift = 3 - exp;
    const num = shift >= 0 ? a * 10n ** BigInt(shift) : a;
    const den = shift >= 0 ? d : d * 10n ** BigInt(-shift);
    let q = num / den;
    const r = num % den;
    if (2n * r > den || (2n * r === den && q % 2n === 1n)) q += 1n;
    return q;
  };
  let digits = digitsOf(e);
  if (digits >= 10000n) { e += 1; digits = digitsOf(e); }
  if (e < -4 || e >= 4) return "e";
  const text = digits.toString().padStart(4, "0");
  const point = e + 1;
  let out = point <= 0 ? "0." + "0".repeat(-point) + text : text.slice(0, point) + (point < 4 ? "." + text.slice(point) : "");
  if (out.includes(".")) out = out.replace(/0+$/, "").replace(/\.$/, "");
  return (negative ? "-" : "") + out;
}

function exactText(span, stride) {
  const whole = floorDiv(span, stride), rest = pyMod(span, stride);
  if (rest === 0) return String(whole + 1);
  if (Math.abs(span) < 1e6 && stride < 1e6) {
    const text = pythonG4(span + stride, stride);
    if (text.includes(".") && !text.includes("e")) return text;
  }
  return `${whole + 1} + ${rest}/${stride}`;
}

function extentOf(kernel, dilation) {
  return dilation * (kernel - 1) + 1;
}

function lostRows(size, extent, stride, before, after) {
  const left = pyMod(size + before + after - extent, stride);
  return Math.max(0, left - after - Math.max(0, stride - extent));
}

function nearest(candidates, target) {
  let best = null;
  for (const c of candidates) {
    if (best === null || Math.abs(c - target) < Math.abs(best - target) || (Math.abs(c - target) === Math.abs(best - target) && c < best)) best = c;
  }
  return best;
}

function range(lo, hi, keep) {
  const out = [];
  for (let v = lo; v <= hi; v++) if (keep(v)) out.push(v);
  return out;
}

// shapes.formula._fixes for symmetric padding P: one fix per letter, nearest first.
function shapeFixes(size, kernel, stride, p, dilation) {
  if (dilation !== 1) return shapeFixes(size, extentOf(kernel, dilation), stride, p, 1).filter((f) => f.letter !== "F");
  const fixes = [];
  const limit = Math.max(p + stride, kernel);
  const padding = nearest(range(0, limit, (v) => v !== p && size + 2 * v >= kernel && pyMod(size + 2 * v - kernel, stride) === 0), p);
  if (padding !== null) fixes.push({ letter: "P", value: padding, output: floorDiv(size + 2 * padding - kernel, stride) + 1 });
  const padded = size + 2 * p, left = padded - kernel;
  if (left > 0) {
    const s = nearest(range(1, left, (v) => left % v === 0 && v !== stride), stride);
    if (s !== null) fixes.push({ letter: "S", value: s, output: floorDiv(left, s) + 1 });
  }
  const f = nearest(range(1, padded, (v) => pyMod(v, stride) === pyMod(padded, stride) && v !== kernel), kernel);
  if (f !== null) fixes.push({ letter: "F", value: f, output: floorDiv(padded - f, stride) + 1 });
  return fixes;
}

function shapeProblem(size, kernel, stride, p, dilation) {
  const padded = size + 2 * p, extent = extentOf(kernel, dilation);
  if (extent <= padded && lostRows(size, extent, stride, p, p) === 0) return null;
  const span = padded - extent;
  const problem = {
    tooLarge: extent > padded, padded, fixes: shapeFixes(size, kernel, stride, p, dilation),
    exactText: exactText(span, stride), floorOutput: floorDiv(span, stride) + 1, dropped: pyMod(span, stride),
  };
  problem.describe = () => {
    if (problem.tooLarge) {
      const wide = dilation === 1 ? `${kernel}-wide` : `${kernel}-tap, dilation-${dilation} (${extent}-wide)`;
      return `the ${wide} filter is larger than the padded input (${size} + 2*${p} = ${padded})`;
    }
    return `${shapeFormula(size, kernel, stride, p, dilation)} = ${problem.exactText} is not a whole number`;
  };
  problem.advice = () => {
    const options = problem.fixes.map((f) => `${f.letter}=${f.value} (-> ${f.output})`);
    if (problem.tooLarge) return options.length ? "use " + options.join(" or ") : "use a larger input";
    const lines = problem.dropped > 1 ? "rows and columns" : "row and column";
    const floor = `--floor (-> ${problem.floorOutput}, never reads the last ${problem.dropped} ${lines}, as PyTorch does)`;
    return options.length ? `use ${options.join(" or ")}, or ${floor}` : `use ${floor}`;
  };
  return problem;
}

function shapeFormula(size, kernel, stride, p, dilation) {
  if (dilation !== 1) return `(${size} + 2*${p} - ${dilation}*(${kernel} - 1) - 1)/${stride} + 1`;
  return `(${size} - ${kernel} + 2*${p})/${stride} + 1`;
}

// shapes.notes.unread_note for symmetric padding P.
function unreadNote(size, extent, stride, before, after) {
  const padded = size + before + after;
  if (padded < extent || pyMod(padded - extent, stride) === 0) return null;
  const left = pyMod(padded - extent, stride), first = padded - left, last = padded - 1;
  const span = first === last ? String(first) : `${first}..${last}`;
  let where = `${span} of 0..${last}`;
  const verb = left === 1 ? "is" : "are";
  if (lostRows(size, extent, stride, before, after)) return `floor: padded rows ${span} (of 0..${last}) are never read`;
  const padding = Math.min(left, after), real = left - padding;
  if (real === 0) {
    const which = left === 1 ? "the last padding row" : `the last ${left} padding rows`;
    return `${which} (${where}) ${verb} never read: the same as padding ${before} before and ${after - left} after`;
  }
  let which;
  if (padding === 0) which = real === 1 ? "the last input row" : `the last ${real} input rows`;
  else {
    which = `the last ${left} padded rows`;
    where += `: ${real} ${real === 1 ? "row" : "rows"} of input, ${padding} ${padding === 1 ? "row" : "rows"} of padding`;
  }
  const gap = stride - extent;
  return `${which} (${where}) ${verb} never read, no more than the ${gap === 1 ? "row" : gap + " rows"} S=${stride} skips after every ${extent}-wide window anyway`;
}

// The text of `cnnkit explain shape I F S P [--dilation d] [--floor]`, and its numbers.
function explainShape(i, f, s, p, d, floor) {
  const problem = shapeProblem(i, f, s, p, d);
  const extent = extentOf(f, d), span = i + 2 * p - extent;
  const possible = problem === null || (floor && !problem.tooLarge);
  const output = possible ? floorDiv(span, s) + 1 : null;
  const count = span >= 0 ? floorDiv(span, s) + 1 : 0;
  const unread = span >= 0 ? pyMod(span, s) : 0;
  const formula = shapeFormula(i, f, s, p, d);
  const lead = "units along one axis = ", pad = " ".repeat(lead.length - 2);
  let general = "(I - F + 2P)/S + 1", given = `I=${i}, F=${f}, S=${s}, P=${p}`;
  if (d !== 1) { general = "(I + 2P - d(F - 1) - 1)/S + 1"; given += `, dilation d=${d}`; }
  const lines = [`${lead}${general}   with ${given}`, `${pad}= ${formula}`, `${pad}= ${span}/${s} + 1`, `${pad}= ${exactText(span, s)}`];
  const padded = i + 2 * p;
  if (span >= 0) {
    const starts = [];
    for (let v = 0; v <= Math.min(span, 63 * s); v += s) starts.push(v);
    const lastStart = (count - 1) * s;
    if (starts[starts.length - 1] !== lastStart) starts.push(lastStart);
    const shown = count <= 8 ? starts.join(", ") : `${starts[0]}, ${starts[1]}, ..., ${starts[starts.length - 1]}`;
    const last = starts[starts.length - 1] + extent - 1;
    const wide = d === 1 ? `${f}-wide` : `${f}-tap (${extent}-wide)`;
    let read;
    if (unread) read = `: the last ${unread} ${unread === 1 ? "is" : "are"} never read`;
    else if (s > extent && count > 1) {
      const gap = s - extent;
      read = `: the ${gap} ${gap === 1 ? "pixel after each window is" : "pixels after each window are"} skipped (S is larger than the window)`;
    } else read = d === 1 ? ": every pixel is read" : "";
    const lost = lostRows(i, extent, s, p, p);
    const lostText = lost ? ` (${unread === 1 ? "it is input" : `${lost} of them input`} that one more window would read)` : "";
    lines.push(`the ${wide} filter starts at padded pixels ${shown} (${thousands(count)} position${count > 1 ? "s" : ""}, S=${s} apart) and reads up to pixel ${last} of 0..${padded - 1}${read}${lostText}`);
  }
  if (problem === null) {
    const units = `${output} unit${output !== 1 ? "s" : ""}`;
    lines.push(unread ? `${formula} = ${exactText(span, s)} -> ${output}: possible, ${output} units along this axis; ${unreadNote(i, extent, s, p, p)}` : `${formula} = ${output}: possible, ${units} along this axis`);
  } else if (floor && !problem.tooLarge) {
    lines.push(`${formula} = ${problem.exactText} -> floor ${problem.floorOutput} (as PyTorch): the last ${problem.dropped} of the ${problem.padded} padded input positions are never read`);
  } else {
    lines.push(`${problem.describe()}: impossible`, problem.advice());
  }
  return { text: lines.join("\n"), possible, output, count, unread, extent, span };
}

// The text of `cnnkit explain sharing "INPUT(CxIxI) - CONV(...)"` for one layer.
function explainSharing(i, c, f, s, p, d, depth, floor, output) {
  const conv = `CONV(D=${depth}, F=${f}, S=${s}, P=${p}${d !== 1 ? `, dilation=${d}` : ""}${floor ? ", round=floor" : ""})`;
  const per = f * f * c + 1, shared = depth * per, units = output * output, unshared = units * shared;
  const sharedText = `${depth}*(${f}*${f}*${c} + 1) = ${thousands(shared)}`;
  const unsharedText = `${output}*${output}*${depth}*(${f}*${f}*${c} + 1) = ${thousands(unshared)}`;
  const width = Math.max(sharedText.length, unsharedText.length);
  return {
    shared, unshared,
    text: [
      `parameter sharing in INPUT(${c}x${i}x${i}) - ${conv}`,
      "all units of one depth slice use the same filter and bias (tied weights)",
      "",
      `layer 0 ${conv}: ${i}x${i}x${c} -> ${output}x${output}x${depth}`,
      `  one filter: ${f}*${f}*${c} weights + 1 bias = ${per} parameters`,
      `  with sharing, one filter per depth slice:  ${sharedText.padStart(width)}`,
      `  without sharing, one filter per unit:      ${unsharedText.padStart(width)}`,
      `  sharing divides the count by ${output}*${output} = ${thousands(units)}, the number of units in each depth slice`,
    ].join("\n"),
  };
}

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attributes) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  return node;
}

// One axis: the padded input's positions (blue input, grey padding, red never read) and the
// first windows below it (their taps, or the span they cover when the axis is long).
function drawAxis(target, i, f, s, p, d, shape) {
  target.replaceChildren();
  const padded = i + 2 * p, width = 600;
  const cell = width / Math.max(padded, 1), each = cell >= 6;
  const windows = Math.min(shape.count, 8), row = 14;
  const picture = svg("svg", { viewBox: `0 0 ${width + 2} ${(windows + 2) * (row + 4) + 6}`, class: "axis", role: "img",
    "aria-label": `the ${padded} padded positions along one axis and the first ${windows} of ${shape.count} windows` });
  const band = (from, to, y, fill) => picture.append(svg("rect", { x: 1 + from * cell, y, width: Math.max(1, (to - from) * cell - (each ? 1 : 0)), height: row, fill }));
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
    const y = (o + 1) * (row + 4) + 2, start = o * s;
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
  if (output > 64) { target.append(element("p", { class: "note", text: `output ${output}x${output}x${depth}: too many units to draw` })); return; }
  const cell = Math.max(3, Math.min(16, Math.floor(240 / output)));
  const picture = svg("svg", { width: output * cell + 1, height: output * cell + 1, role: "img", "aria-label": `the output grid: ${output}x${output} units per depth slice, ${depth} slices` });
  for (let r = 0; r < output; r++) for (let c = 0; c < output; c++) picture.append(svg("rect", { x: c * cell + 1, y: r * cell + 1, width: cell - 1, height: cell - 1, fill: "#ffcc80" }));
  target.append(picture, element("p", { class: "note", text: `${output}x${output} units in each of the ${depth} depth slices` }));
}

function readPlayground() {
  const value = (id, low) => Math.max(low, Math.floor(Number(document.getElementById(id).value) || 0));
  return {
    i: value("pg-i", 1), c: value("pg-c", 1), f: value("pg-f", 1), s: value("pg-s", 1),
    p: value("pg-p", 0), d: value("pg-d", 1), depth: value("pg-depth", 1), floor: document.getElementById("pg-floor").checked,
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
  const presets = [{ name: "AlexNet conv1: 227x227x3, D=96, F=11, S=4, P=0", values: { i: 227, c: 3, f: 11, s: 4, p: 0, d: 1, depth: 96, floor: false } },
    { name: "the lecture's impossible one: 10 wide, F=3, S=2, P=0", values: { i: 10, c: 3, f: 3, s: 2, p: 0, d: 1, depth: 16, floor: false } }];
  for (const node of allNodes()) {
    if (node.kind !== "CONV") continue;
    const cfg = node.config, k = pair(cfg.kernel_size), st = pair(cfg.stride), dl = pair(cfg.dilation);
    const [c, h, w] = view3(node.input);
    const pd = cfg.padding === "same" || cfg.padding === "valid" ? null : pair(cfg.padding);
    if (h !== w || k[0] !== k[1] || st[0] !== st[1] || dl[0] !== dl[1] || !pd || pd[0] !== pd[1] || cfg.groups !== 1) continue;
    presets.push({ name: `this run's layer ${node.path}: ${node.label} on ${h}x${w}x${c}`,
      values: { i: h, c, f: k[0], s: st[0], p: pd[0], d: dl[0], depth: cfg.out_channels, floor: cfg.rounding === "floor" } });
  }
  const menu = document.getElementById("pg-preset");
  presets.forEach((preset, k) => menu.append(element("option", { value: k, text: preset.name })));
  menu.addEventListener("change", () => setPlayground(presets[Number(menu.value)].values));
  for (const input of document.querySelectorAll("#playground input")) input.addEventListener("input", updatePlayground);
  setPlayground(presets[0].values);
  window.cnnkit.explainShape = (i, f, s = 1, p = 0, options = {}) => explainShape(i, f, s, p, options.dilation || 1, !!options.floor).text;
  window.cnnkit.explainSharing = (i, c, f, s, p, d, depth, floor) => {
    const shape = explainShape(i, f, s, p, d, floor);
    return shape.possible ? explainSharing(i, c, f, s, p, d, depth, floor, shape.output).text : null;
  };
}
