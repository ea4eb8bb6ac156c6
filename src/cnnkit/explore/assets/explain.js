// explain.js: how one unit's value was computed, written out with the numbers the page used.
// Each explainer returns {lines: [HTML], total, marks}: total is the value the written-out
// computation gives (equal to the unit in the map), marks the input units to point at (the
// winner of a max pool). Long dot products are shown per input channel: the first channels'
// terms in full, then each channel's subtotal; the sum always comes from every term.

const FULL_CHANNELS = 2; // channels whose terms are written out one by one
const MAX_TERMS = 12; // terms of one channel shown before "..."
const MAX_SUBTOTALS = 64; // channel subtotals listed before the rest is summed up

function num(value) {
  const text = fmt(value);
  return value < 0 ? `(${text})` : text;
}

function termsText(terms) {
  const shown = terms
    .slice(0, MAX_TERMS)
    .map((t) => `${num(t.w)}&times;${num(t.x)}${t.note || ""}`);
  if (terms.length > MAX_TERMS) shown.push(`&hellip; (${terms.length - MAX_TERMS} more)`);
  return shown.join(" + ");
}

function unitName(record, unit) {
  const shape = record.tensor.shape;
  if (shape.length === 1) return `unit ${unit.ch}`;
  return `unit (row ${unit.r}, column ${unit.q}) of map ${unit.ch}`;
}

function layerName(record) {
  return record.node ? `layer ${record.node.path} ${record.node.kind}` : "the input";
}

// Terms grouped by input channel -> lines, and the exact total with the bias.
function dotProductLines(groups, bias, what) {
  const lines = [];
  let sum = 0;
  const subtotals = groups.map((group) => {
    let subtotal = 0;
    for (const t of group.terms) subtotal += t.w * t.x;
    sum += subtotal;
    return subtotal;
  });
  groups.slice(0, FULL_CHANNELS).forEach((group, k) => {
    lines.push(`${group.label}: ${termsText(group.terms)} = <b>${fmt(subtotals[k])}</b>`);
  });
  if (groups.length > FULL_CHANNELS) {
    const listed = groups.slice(FULL_CHANNELS, MAX_SUBTOTALS);
    const text = listed.map(
      (group, k) =>
        `<span class="chip">${group.short}: ${fmt(subtotals[k + FULL_CHANNELS])}</span>`,
    );
    const rest = subtotals.slice(MAX_SUBTOTALS);
    if (rest.length)
      text.push(
        `<span class="chip">&hellip; ${rest.length} more, together ${fmt(rest.reduce((a, b) => a + b, 0))}</span>`,
      );
    lines.push(
      `subtotals of the other ${groups.length - FULL_CHANNELS} ${what}: ${text.join(" ")}`,
    );
  }
  const count = groups.reduce((n, group) => n + group.terms.length, 0);
  lines.push(`sum of all ${count} products = <b>${fmt(sum)}</b>`);
  const total = bias === null ? sum : sum + bias;
  if (bias !== null) lines.push(`+ bias ${num(bias)} = <b data-role="total">${fmt(total)}</b>`);
  else lines.push(`no bias: <b data-role="total">${fmt(total)}</b>`);
  return { lines, total };
}

function explainConv(record, unit, input) {
  const node = record.node,
    x = input.tensor;
  const g = convGeometry(node.config, x.shape);
  const weight = param(node, "weight"),
    bias = param(node, "bias");
  const [kh, kw] = g.kernel,
    perGroup = g.c / g.groups;
  const first = Math.floor(unit.ch / (node.config.out_channels / g.groups)) * perGroup;
  const groups = [];
  for (let k = 0; k < perGroup; k++) {
    const channel = first + k,
      terms = [];
    for (let u = 0; u < kh; u++) {
      for (let v = 0; v < kw; v++) {
        const pr = unit.r * g.stride[0] + u * g.dilation[0],
          pq = unit.q * g.stride[1] + v * g.dilation[1];
        const r = g.rows[pr],
          q = g.cols[pq];
        const inside =
          pr - g.sides[0][0] >= 0 &&
          pr - g.sides[0][0] < g.h &&
          pq - g.sides[1][0] >= 0 &&
          pq - g.sides[1][0] < g.w;
        const value = r >= 0 && q >= 0 ? x.data[(channel * g.h + r) * g.w + q] : 0;
        const note = inside ? "" : r < 0 || q < 0 ? "<sub>pad</sub>" : `<sub>${g.mode}</sub>`;
        terms.push({ w: weight[((unit.ch * perGroup + k) * kh + u) * kw + v], x: value, note });
      }
    }
    groups.push({ label: `input map ${channel}`, short: `map ${channel}`, terms });
  }
  const top = unit.r * g.stride[0] - g.sides[0][0],
    left = unit.q * g.stride[1] - g.sides[1][0];
  const bottom = top + g.dilation[0] * (kh - 1),
    right = left + g.dilation[1] * (kw - 1);
  const outside = top < 0 || left < 0 || bottom >= g.h || right >= g.w;
  const head =
    `filter ${unit.ch} (${kh}x${kw}x${perGroup}${g.groups > 1 ? `, group ${first / perGroup}` : ""}) on rows ` +
    `${top}..${bottom}, columns ${left}..${right} of ${layerName(input)}'s output` +
    `${g.dilation[0] > 1 || g.dilation[1] > 1 ? ` (taps ${g.dilation.join("x")} apart)` : ""}` +
    `${outside ? ` (beyond ${g.h}x${g.w}: ${g.mode === "zeros" ? "zero padding" : g.mode + " padding"})` : ""}; weight &times; input:`;
  const done = dotProductLines(groups, bias ? bias[unit.ch] : null, "input maps");
  return { lines: [head, ...done.lines], total: done.total, marks: [] };
}

function explainLinear(record, unit, input) {
  const node = record.node,
    x = input.tensor;
  const weight = param(node, "weight"),
    bias = param(node, "bias");
  const n = node.config.in_features;
  // Inputs grouped as the layer before the flattening held them (one group per map), or by 16.
  const source = input.node && input.node.kind === "FLATTEN" ? input.node.input : [n];
  const [c, h, w] = source.length === 3 ? source : [Math.ceil(n / 16), 16, 1];
  const per = source.length === 3 ? h * w : 16;
  const groups = [];
  for (let start = 0, k = 0; start < n; start += per, k++) {
    const terms = [];
    for (let i = start; i < Math.min(start + per, n); i++)
      terms.push({ w: weight[unit.ch * n + i], x: x.data[i] });
    const label =
      source.length === 3
        ? `inputs from map ${k}`
        : `inputs ${start}..${Math.min(start + per, n) - 1}`;
    groups.push({ label, short: source.length === 3 ? `map ${k}` : `${start}..`, terms });
  }
  const head = `row ${unit.ch} of the weight matrix &middot; all ${n} inputs (weight &times; input):`;
  const done = dotProductLines(
    groups,
    bias ? bias[unit.ch] : null,
    source.length === 3 ? "maps" : "groups",
  );
  return { lines: [head, ...done.lines], total: done.total, marks: [] };
}

function explainPool(record, unit, input) {
  const g = poolGeometry(record.node.config, input.tensor.shape);
  const includePad = record.node.config.count_include_pad !== false;
  const found = poolUnit(g, input.tensor.data, unit.ch, unit.r, unit.q, includePad);
  const at = (tap) => input.tensor.data[(unit.ch * g.h + tap.r) * g.w + tap.c];
  const listed = found.taps.map((tap) => {
    const text = `${fmt(at(tap))}<sub>(${tap.r},${tap.c})</sub>`;
    return tap === found.winner ? `<mark>${text}</mark>` : text;
  });
  if (g.kind === "max") {
    const w = found.winner;
    return {
      lines: [
        `max over the window of map ${unit.ch} of ${layerName(input)} (value<sub>(row,column)</sub>; padding never wins):`,
        listed.join(", "),
        `winner: row ${w.r}, column ${w.c} = <b data-role="total">${fmt(found.value)}</b>`,
      ],
      total: found.value,
      marks: [{ id: input.id, ch: unit.ch, r: w.r, q: w.c }],
    };
  }
  return {
    lines: [
      `mean over the window of map ${unit.ch} of ${layerName(input)} (padding adds 0):`,
      `(${listed.join(" + ")}) / ${found.divisor}`,
      `= ${fmt(found.sum)} / ${found.divisor} (${found.rows}x${found.cols} positions counted${includePad ? ", padding included" : ", padding left out"}) = <b data-role="total">${fmt(found.value)}</b>`,
    ],
    total: found.value,
    marks: [],
  };
}

function explainAdaptive(record, unit, input) {
  const [c, h, w] = view3(input.tensor.shape);
  const [oh, ow] = pair(record.node.config.output_size);
  const [top, bottom] = adaptiveWindow(unit.r, h, oh),
    [left, right] = adaptiveWindow(unit.q, w, ow);
  let sum = 0;
  for (let r = top; r < bottom; r++)
    for (let q = left; q < right; q++) sum += input.tensor.data[(unit.ch * h + r) * w + q];
  const count = (bottom - top) * (right - left),
    total = sum / count;
  return {
    lines: [
      `mean of map ${unit.ch} of ${layerName(input)} over rows ${top}..${bottom - 1} and columns ${left}..${right - 1} (PyTorch's adaptive window):`,
      `${fmt(sum)} / ${count} = <b data-role="total">${fmt(total)}</b>`,
    ],
    total,
    marks: [],
  };
}

function inputValue(input, unit) {
  const [c, h, w] = view3(input.tensor.shape);
  return input.tensor.data[(unit.ch * h + unit.r) * w + unit.q];
}

// A layer that brought its own JavaScript (explorer_js): its value, and its input's when
// the layer is pointwise; the page knows no formula for it.
function explainOwnKernel(record, unit, input) {
  const total = inputValue(record, unit);
  const read = record.node.pointwise
    ? `${layerName(input)} gave x = ${fmt(inputValue(input, unit))}; `
    : `it reads the whole of ${layerName(input)}'s output; `;
  return {
    lines: [
      `${read}the layer's own kernel (its class's explorer_js) computed ` +
        `<b data-role="total">${fmt(total)}</b>`,
    ],
    total,
    marks: [],
  };
}

function pointwise(formula) {
  return (record, unit, input) => {
    const x = inputValue(input, unit);
    const [text, total] = formula(record.node, x, unit.ch);
    return {
      lines: [
        `${layerName(input)} gave x = ${fmt(x)}`,
        `${text} = <b data-role="total">${fmt(total)}</b>`,
      ],
      total,
      marks: [],
    };
  };
}

function batchNormText(node, x, ch) {
  const m = param(node, "running_mean")[ch],
    v = param(node, "running_var")[ch];
  const weight = param(node, "weight"),
    bias = param(node, "bias");
  const affine = weight ? ` &times; ${num(weight[ch])} + ${num(bias[ch])}` : "";
  return [
    `(x &minus; running_mean) / &radic;(running_var + eps)${weight ? " &times; weight + bias" : ""} = ` +
      `(${fmt(x)} &minus; ${num(m)}) / &radic;(${fmt(v)} + ${fmt(node.config.eps)})${affine}`,
    batchNormUnit(node, x, ch),
  ];
}

const EXPLAINERS = {
  CONV: explainConv,
  FC: explainLinear,
  POOL: explainPool,
  GAP: explainAdaptive,
  NORMALIZE: pointwise((node, x, ch) => [
    `(x &minus; mean) / std = (${fmt(x)} &minus; ${num(param(node, "mean")[ch])}) / ${fmt(param(node, "std")[ch])}`,
    (x - param(node, "mean")[ch]) / param(node, "std")[ch],
  ]),
  BN: pointwise(batchNormText),
  BN1D: pointwise(batchNormText),
  RELU: pointwise((node, x) => [`max(0, x) = max(0, ${fmt(x)})`, x <= 0 ? 0 : x]),
  LEAKYRELU: pointwise((node, x) => {
    const slope = node.config.negative_slope;
    return [
      x > 0 ? `x (x &gt; 0)` : `${fmt(slope)} &times; x = ${fmt(slope)} &times; ${num(x)}`,
      x > 0 ? x : slope * x,
    ];
  }),
  SIGMOID: pointwise((node, x) => [
    `1 / (1 + e<sup>&minus;x</sup>) with x = ${fmt(x)}`,
    sigmoid(x),
  ]),
  TANH: pointwise((node, x) => [`tanh(${fmt(x)})`, Math.tanh(x)]),
  DROPOUT: pointwise((node, x) => ["in evaluation dropout passes x unchanged: x", x]),
  DROPOUT2D: pointwise((node, x) => ["in evaluation dropout passes x unchanged: x", x]),
};

function explainFlatten(record, unit, input) {
  const [c, h, w] = view3(input.tensor.shape),
    k = unit.ch;
  const at = { ch: Math.floor(k / (h * w)), r: Math.floor((k % (h * w)) / w), q: k % w };
  const total = input.tensor.data[k];
  return {
    lines: [
      `position ${k} = ${unitName(input, at)} of ${layerName(input)} (C, H, W order: ${k} = ${at.ch}&times;${h * w} + ${at.r}&times;${w} + ${at.q})`,
      `value <b data-role="total">${fmt(total)}</b>`,
    ],
    total,
    marks: [{ id: input.id, ...at }],
  };
}

function explainResidual(record, unit, records) {
  const [body, side] = record.inputs.map((id) => records[id]);
  const a = inputValue(body, unit),
    b = inputValue(side, unit);
  const sideName = record.node.config.shortcut
    ? `the shortcut (${layerName(side)})`
    : `the block's input x (${layerName(side)})`;
  return {
    lines: [
      `body (${layerName(body)}) + ${sideName}:`,
      `${fmt(a)} + ${num(b)} = <b data-role="total">${fmt(a + b)}</b>`,
    ],
    total: a + b,
    marks: [],
  };
}

// The explanation of unit {ch, r, q} of record `id`, with what the next layer does with it
// when that is an activation.
function explainUnit(records, id, unit) {
  const record = records[id];
  if (!record.node) {
    const value = inputValue(record, unit);
    return {
      lines: [`the image as cnnkit's loader gives it: <b data-role="total">${fmt(value)}</b>`],
      total: value,
      marks: [],
    };
  }
  const input = records[record.inputs[0]];
  let found;
  if (record.node.kind === "RES") found = explainResidual(record, unit, records);
  else if (record.node.kind === "FLATTEN") found = explainFlatten(record, unit, input);
  else if (record.node.own_kernel) found = explainOwnKernel(record, unit, input);
  else found = EXPLAINERS[record.node.kind](record, unit, input);
  const next = records.find(
    (r) => r.node && r.inputs.length === 1 && r.inputs[0] === id && r.id === id + 1,
  );
  if (
    next &&
    ["RELU", "LEAKYRELU"].includes(next.node.kind) &&
    !["RELU", "LEAKYRELU"].includes(record.node.kind)
  ) {
    const after = inputValue(next, unit);
    found.lines.push(
      `then ${layerName(next)}: ${next.node.kind === "RELU" ? `max(0, ${fmt(found.total)})` : `leaky ReLU of ${fmt(found.total)}`} = ${fmt(after)}`,
    );
  }
  return found;
}
