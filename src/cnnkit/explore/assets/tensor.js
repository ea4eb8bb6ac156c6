// tensor.js: the page's data (weights, test images) decoded, and small helpers on tensors.
// A tensor is {shape, data}: shape per example ([C, H, W] or [N]), data a flat Float64Array
// in row-major (C, H, W) order, as NumPy holds one image of a batch.

function readJSON(id) {
  return JSON.parse(document.getElementById(id).textContent);
}

function decodeBase64(text) {
  const binary = atob(text.trim());
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

// IEEE 754 half precision -> number (the page stores large weight arrays so when it must).
function halfToNumber(bits) {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0) return sign * fraction * 2 ** -24;
  if (exponent === 31) return fraction ? NaN : sign * Infinity;
  return sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
}

// Every packed array as a Float32Array (float16 ones widened), in the order Python packed them.
function unpackArrays(bytes, entries) {
  return entries.map((entry) => {
    if (entry.dtype === "f4") return new Float32Array(bytes.buffer, entry.offset, entry.size);
    const halves = new Uint16Array(bytes.buffer, entry.offset, entry.size);
    const values = new Float32Array(entry.size);
    for (let i = 0; i < entry.size; i++) values[i] = halfToNumber(halves[i]);
    return values;
  });
}

function size(shape) {
  return shape.reduce((a, b) => a * b, 1);
}

function tensor(shape, data) {
  return { shape: shape.slice(), data: data || new Float64Array(size(shape)) };
}

// Any per-example shape seen as [C, H, W]: [N] is N channels of 1x1, [C, L] is C of L x 1.
function view3(shape) {
  if (shape.length === 3) return shape;
  if (shape.length === 2) return [shape[0], shape[1], 1];
  if (shape.length === 1) return [shape[0], 1, 1];
  return [size(shape), 1, 1];
}

// One image as nested arrays [C][H][W] (or a flat array of C*H*W values) -> a tensor.
// One image given as nested arrays [C][H][W] of finite numbers (window.cnnkit.forward's
// argument), checked level by level: a wrong size names the axis, anything else the entry.
function imageTensor(image, shape) {
  const [c, h, w] = shape;
  const axes = ["C", "H", "W"];
  const flat = [];
  const fail = (why) => {
    throw new Error(
      `the network takes one ${h}x${w}x${c} image as nested arrays [C][H][W] ` +
        `(${c} x ${h} x ${w} numbers): ${why}`,
    );
  };
  (function walk(value, depth, where) {
    if (depth === 3) {
      if (typeof value !== "number" || !Number.isFinite(value)) {
        const shown = typeof value === "number" ? String(value) : JSON.stringify(value);
        fail(`image${where} is ${shown ?? String(value)}, not a finite number`);
      }
      flat.push(value);
      return;
    }
    if (!Array.isArray(value) && !ArrayBuffer.isView(value)) {
      fail(`image${where} is ${typeof value}, expected an array along ${axes[depth]}`);
    }
    if (value.length !== shape[depth]) {
      fail(`image${where} has ${value.length} entries along ${axes[depth]}, expected ${shape[depth]}`);
    }
    for (let i = 0; i < value.length; i++) walk(value[i], depth + 1, `${where}[${i}]`);
  })(image, 0, "");
  return tensor(shape, Float64Array.from(flat));
}

function nested(t) {
  const [c, h, w] = view3(t.shape);
  if (t.shape.length === 1) return Array.from(t.data);
  const out = [];
  for (let i = 0; i < c; i++) {
    const rows = [];
    for (let r = 0; r < h; r++)
      rows.push(Array.from(t.data.subarray((i * h + r) * w, (i * h + r + 1) * w)));
    out.push(t.shape.length === 2 ? rows.map((row) => row[0]) : rows);
  }
  return out;
}

// Numbers as the page prints them: 5 significant digits, no trailing zeros, "-0" as "0".
function fmt(value) {
  if (!Number.isFinite(value)) return String(value);
  if (value === 0) return "0";
  const magnitude = Math.abs(value);
  if (magnitude >= 1e6 || magnitude < 1e-4) return value.toExponential(4).replace(/\.?0+e/, "e");
  const text = value.toPrecision(5);
  return (text.includes(".") ? text.replace(/\.?0+$/, "") : text).replace(/^-0$/, "0");
}

function percent(p) {
  return `${(100 * p).toFixed(1)}\u00a0%`;
}

function escapeHTML(text) {
  return String(text).replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
}

function element(tag, attributes, children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes || {})) {
    if (key === "text") node.textContent = value;
    else if (key === "html") node.innerHTML = value;
    else if (value !== null && value !== undefined && value !== false)
      node.setAttribute(key, value);
  }
  for (const child of children || []) node.append(child);
  return node;
}

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attributes) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  return node;
}
