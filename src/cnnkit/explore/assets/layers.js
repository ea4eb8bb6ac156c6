// layers.js: one forward kernel per layer kind, driven by the layer's registry keyword, its
// config (the arguments of its __init__, as cnnkit's get_config() gives them) and its
// state_dict arrays (PyTorch's keys). The semantics are cnnkit's reference engine's
// (src/cnnkit/functional/reference*.py), computed in double precision. Evaluation mode:
// dropout is the identity and batch normalisation uses the running statistics.

let ARRAYS = []; // the packed arrays, set by network.js

function param(node, key) {
  const entry = node.tensors[key];
  return entry ? ARRAYS[entry.index] : null;
}

function pair(value) {
  return Array.isArray(value) ? value : [value, value];
}

// Padded position p (0 .. before + size + after - 1) -> the input index it reads, or -1 where
// it holds zero (PyTorch's padding modes; see functional/padding.py).
function padIndex(size, before, after, mode) {
  const out = new Int32Array(before + size + after);
  for (let p = 0; p < out.length; p++) {
    const t = p - before;
    if (mode === "reflect") out[p] = t < 0 ? -t : t >= size ? 2 * (size - 1) - t : t;
    else if (mode === "replicate") out[p] = Math.min(Math.max(t, 0), size - 1);
    else if (mode === "circular") out[p] = ((t % size) + size) % size;
    else out[p] = t >= 0 && t < size ? t : -1;
  }
  return out;
}

// A convolution's geometry on an input of C x H x W: padding "same" resolved as PyTorch does
// (d(F - 1) in all, the extra one at the bottom and right), outputs rounded down.
function convGeometry(cfg, inputShape) {
  const [c, h, w] = view3(inputShape);
  const kernel = pair(cfg.kernel_size),
    stride = pair(cfg.stride),
    dilation = pair(cfg.dilation);
  let sides;
  if (cfg.padding === "same") {
    sides = kernel.map((k, a) => {
      const total = dilation[a] * (k - 1);
      return [Math.floor(total / 2), total - Math.floor(total / 2)];
    });
  } else if (cfg.padding === "valid") {
    sides = [
      [0, 0],
      [0, 0],
    ];
  } else {
    sides = pair(cfg.padding).map((p) => [p, p]);
  }
  const sizes = [h, w];
  const out = sizes.map(
    (n, a) =>
      Math.floor(
        (n + sides[a][0] + sides[a][1] - (dilation[a] * (kernel[a] - 1) + 1)) / stride[a],
      ) + 1,
  );
  const mode = cfg.padding_mode || "zeros";
  const rows = padIndex(h, sides[0][0], sides[0][1], mode);
  const cols = padIndex(w, sides[1][0], sides[1][1], mode);
  const groups = cfg.groups || 1;
  return { c, h, w, kernel, stride, dilation, sides, out, rows, cols, groups, mode };
}

// PyTorch's ceil_mode count (shapes.ceil_units): one more window when the last would still
// start inside the input or its left padding.
function ceilUnits(n, extent, stride, before, after) {
  let count = Math.ceil((n + before + after - extent) / stride) + 1;
  if ((count - 1) * stride >= n + before) count -= 1;
  return count;
}

function poolGeometry(cfg, inputShape) {
  const [c, h, w] = view3(inputShape);
  const kernel = pair(cfg.kernel_size);
  const stride = pair(
    cfg.stride === null || cfg.stride === undefined ? cfg.kernel_size : cfg.stride,
  );
  const padding = pair(cfg.padding || 0);
  const dilation = pair(cfg.dilation || 1);
  const sizes = [h, w];
  const out = sizes.map((n, a) => {
    const extent = dilation[a] * (kernel[a] - 1) + 1;
    if (cfg.ceil_mode) return ceilUnits(n, extent, stride[a], padding[a], padding[a]);
    return Math.floor((n + 2 * padding[a] - extent) / stride[a]) + 1;
  });
  return { c, h, w, kernel, stride, padding, dilation, out, kind: cfg.kind };
}

// How many values an average-pool window averages along one axis (PyTorch's rule,
// reference_pool.avg_divisors).
function avgCount(o, n, k, s, before, includePad) {
  let start = o * s - before;
  let end = Math.min(start + k, n + before);
  if (!includePad) {
    start = Math.max(start, 0);
    end = Math.min(end, n);
  }
  return end - start;
}

// The taps of pool window (i, j) that lie in the input: [{r, c, u, v}] in row-major order.
function poolTaps(g, i, j) {
  const taps = [];
  for (let u = 0; u < g.kernel[0]; u++) {
    const r = i * g.stride[0] - g.padding[0] + u * g.dilation[0];
    if (r < 0 || r >= g.h) continue;
    for (let v = 0; v < g.kernel[1]; v++) {
      const q = j * g.stride[1] - g.padding[1] + v * g.dilation[1];
      if (q >= 0 && q < g.w) taps.push({ r, c: q, u, v });
    }
  }
  return taps;
}

function poolUnit(g, x, channel, i, j, includePad) {
  const taps = poolTaps(g, i, j);
  const base = channel * g.h * g.w;
  if (g.kind === "max") {
    let best = -Infinity,
      winner = null;
    for (const tap of taps) {
      const value = x[base + tap.r * g.w + tap.c];
      if (value > best || winner === null) {
        best = value;
        winner = tap;
      }
    }
    return { value: best, taps, winner };
  }
  let sum = 0;
  for (const tap of taps) sum += x[base + tap.r * g.w + tap.c];
  const rows = avgCount(i, g.h, g.kernel[0], g.stride[0], g.padding[0], includePad);
  const cols = avgCount(j, g.w, g.kernel[1], g.stride[1], g.padding[1], includePad);
  return { value: sum / (rows * cols), taps, sum, divisor: rows * cols, rows, cols };
}

// PyTorch's adaptive windows on one axis: output i reads floor(i n / o) .. ceil((i + 1) n / o).
function adaptiveWindow(i, n, o) {
  return [Math.floor((i * n) / o), Math.ceil(((i + 1) * n) / o)];
}

function mapUnits(x, fn) {
  const y = tensor(x.shape);
  for (let i = 0; i < x.data.length; i++) y.data[i] = fn(x.data[i]);
  return y;
}

function perChannel(x, fn) {
  const [c, h, w] = view3(x.shape);
  const y = tensor(x.shape);
  for (let ch = 0; ch < c; ch++) {
    for (let i = ch * h * w; i < (ch + 1) * h * w; i++) y.data[i] = fn(x.data[i], ch);
  }
  return y;
}

function batchNormUnit(node, value, ch) {
  const mean = param(node, "running_mean"),
    variance = param(node, "running_var");
  const weight = param(node, "weight"),
    bias = param(node, "bias");
  const invStd = 1 / Math.sqrt(variance[ch] + node.config.eps);
  const normed = (value - mean[ch]) * invStd;
  return weight ? normed * weight[ch] + bias[ch] : normed;
}

function sigmoid(v) {
  const small = Math.exp(-Math.abs(v));
  return v >= 0 ? 1 / (1 + small) : small / (1 + small);
}

function convForward(node, x) {
  const g = convGeometry(node.config, x.shape);
  const weight = param(node, "weight"),
    bias = param(node, "bias");
  const d = node.config.out_channels,
    [oh, ow] = g.out,
    [kh, kw] = g.kernel;
  const perGroup = g.c / g.groups,
    filtersPerGroup = d / g.groups;
  const y = tensor([d, oh, ow]);
  for (let f = 0; f < d; f++) {
    const first = Math.floor(f / filtersPerGroup) * perGroup;
    for (let i = 0; i < oh; i++) {
      for (let j = 0; j < ow; j++) {
        let sum = bias ? bias[f] : 0;
        for (let k = 0; k < perGroup; k++) {
          const plane = (first + k) * g.h * g.w,
            wBase = (f * perGroup + k) * kh * kw;
          for (let u = 0; u < kh; u++) {
            const r = g.rows[i * g.stride[0] + u * g.dilation[0]];
            if (r < 0) continue;
            for (let v = 0; v < kw; v++) {
              const q = g.cols[j * g.stride[1] + v * g.dilation[1]];
              if (q >= 0) sum += weight[wBase + u * kw + v] * x.data[plane + r * g.w + q];
            }
          }
        }
        y.data[(f * oh + i) * ow + j] = sum;
      }
    }
  }
  return y;
}

function poolForward(node, x) {
  const g = poolGeometry(node.config, x.shape);
  const [oh, ow] = g.out;
  const includePad = node.config.count_include_pad !== false;
  const y = tensor([g.c, oh, ow]);
  for (let ch = 0; ch < g.c; ch++) {
    for (let i = 0; i < oh; i++) {
      for (let j = 0; j < ow; j++)
        y.data[(ch * oh + i) * ow + j] = poolUnit(g, x.data, ch, i, j, includePad).value;
    }
  }
  return y;
}

function adaptiveForward(node, x) {
  const [c, h, w] = view3(x.shape);
  const [oh, ow] = pair(node.config.output_size);
  const y = tensor([c, oh, ow]);
  for (let ch = 0; ch < c; ch++) {
    for (let i = 0; i < oh; i++) {
      const [top, bottom] = adaptiveWindow(i, h, oh);
      for (let j = 0; j < ow; j++) {
        const [left, right] = adaptiveWindow(j, w, ow);
        let sum = 0;
        for (let r = top; r < bottom; r++)
          for (let q = left; q < right; q++) sum += x.data[(ch * h + r) * w + q];
        y.data[(ch * oh + i) * ow + j] = sum / ((bottom - top) * (right - left));
      }
    }
  }
  return y;
}

function flattenShape(cfg, shape) {
  const full = [1, ...shape];
  const start = cfg.start_dim < 0 ? cfg.start_dim + full.length : cfg.start_dim;
  const end = cfg.end_dim < 0 ? cfg.end_dim + full.length : cfg.end_dim;
  const merged = full.slice(start, end + 1).reduce((a, b) => a * b, 1);
  return [...full.slice(0, start), merged, ...full.slice(end + 1)].slice(1);
}

function linearForward(node, x) {
  const weight = param(node, "weight"),
    bias = param(node, "bias");
  const outputs = node.config.out_features,
    inputs = node.config.in_features;
  const y = tensor([outputs]);
  for (let o = 0; o < outputs; o++) {
    let sum = bias ? bias[o] : 0;
    for (let i = 0; i < inputs; i++) sum += weight[o * inputs + i] * x.data[i];
    y.data[o] = sum;
  }
  return y;
}

const identity = (node, x) => tensor(x.shape, x.data.slice());

// kind -> forward(node, x) for one example. RES runs its branches (network.js).
const KERNELS = {
  NORMALIZE: (node, x) =>
    perChannel(x, (v, ch) => (v - param(node, "mean")[ch]) / param(node, "std")[ch]),
  CONV: convForward,
  POOL: poolForward,
  GAP: adaptiveForward,
  BN: (node, x) => perChannel(x, (v, ch) => batchNormUnit(node, v, ch)),
  BN1D: (node, x) => perChannel(x, (v, ch) => batchNormUnit(node, v, ch)),
  DROPOUT: identity,
  DROPOUT2D: identity,
  RELU: (node, x) => mapUnits(x, (v) => (v <= 0 ? 0 : v)),
  LEAKYRELU: (node, x) => mapUnits(x, (v) => (v > 0 ? v : v * node.config.negative_slope)),
  SIGMOID: (node, x) => mapUnits(x, sigmoid),
  TANH: (node, x) => mapUnits(x, Math.tanh),
  FLATTEN: (node, x) => tensor(flattenShape(node.config, x.shape), x.data.slice()),
  FC: linearForward,
  RES: null, // network.js: body(x) + shortcut(x)
};
