// field.js: receptive fields traced back through the recorded layers. A region is a box
// {c0, c1, r0, r1, q0, q1} of channels, rows and columns (inclusive) of one record's output;
// the units a selected unit depends on are a region in every record before it (a bounding
// box: circular padding can wrap a window around to the far edge).

function wholeRegion(shape) {
  const [c, h, w] = view3(shape);
  return { c0: 0, c1: c - 1, r0: 0, r1: h - 1, q0: 0, q1: w - 1 };
}

function unionRegion(a, b) {
  if (!a) return b;
  return {
    c0: Math.min(a.c0, b.c0),
    c1: Math.max(a.c1, b.c1),
    r0: Math.min(a.r0, b.r0),
    r1: Math.max(a.r1, b.r1),
    q0: Math.min(a.q0, b.q0),
    q1: Math.max(a.q1, b.q1),
  };
}

// The input positions read by windows first..last: min and max of the padded positions'
// sources (index: padded position -> input index or -1 for zero padding).
function windowSpan(index, first, last, stride, kernel, dilation) {
  let low = Infinity,
    high = -Infinity;
  for (let o = first; o <= last; o++) {
    for (let k = 0; k < kernel; k++) {
      const source = index[o * stride + k * dilation];
      if (source >= 0) {
        low = Math.min(low, source);
        high = Math.max(high, source);
      }
    }
  }
  return low <= high ? [low, high] : null;
}

function clampSpan(first, last, n) {
  const low = Math.max(first, 0),
    high = Math.min(last, n - 1);
  return low <= high ? [low, high] : null;
}

// The region of a layer's input that the region `out` of its output depends on.
function regionBack(node, out, inputShape) {
  const all = wholeRegion(inputShape);
  const [c, h, w] = view3(inputShape);
  const kind = node.kind;
  if (kind === "CONV") {
    const g = convGeometry(node.config, inputShape);
    const rows = windowSpan(g.rows, out.r0, out.r1, g.stride[0], g.kernel[0], g.dilation[0]);
    const cols = windowSpan(g.cols, out.q0, out.q1, g.stride[1], g.kernel[1], g.dilation[1]);
    if (!rows || !cols) return null;
    const perGroup = c / g.groups,
      filters = node.config.out_channels / g.groups;
    const c0 = Math.floor(out.c0 / filters) * perGroup,
      c1 = (Math.floor(out.c1 / filters) + 1) * perGroup - 1;
    return { c0, c1, r0: rows[0], r1: rows[1], q0: cols[0], q1: cols[1] };
  }
  if (kind === "POOL") {
    const g = poolGeometry(node.config, inputShape);
    const span = (o0, o1, a) =>
      clampSpan(
        o0 * g.stride[a] - g.padding[a],
        o1 * g.stride[a] - g.padding[a] + g.dilation[a] * (g.kernel[a] - 1),
        a === 0 ? h : w,
      );
    const rows = span(out.r0, out.r1, 0),
      cols = span(out.q0, out.q1, 1);
    if (!rows || !cols) return null;
    return { c0: out.c0, c1: out.c1, r0: rows[0], r1: rows[1], q0: cols[0], q1: cols[1] };
  }
  if (kind === "GAP") {
    const [oh, ow] = pair(node.config.output_size);
    return {
      c0: out.c0,
      c1: out.c1,
      r0: adaptiveWindow(out.r0, h, oh)[0],
      r1: adaptiveWindow(out.r1, h, oh)[1] - 1,
      q0: adaptiveWindow(out.q0, w, ow)[0],
      q1: adaptiveWindow(out.q1, w, ow)[1] - 1,
    };
  }
  if (kind === "FC") return all;
  if (kind === "FLATTEN") {
    if (out.c0 !== out.c1 || inputShape.length === 1) return out.c0 === out.c1 ? { ...out } : all;
    const k = out.c0,
      ch = Math.floor(k / (h * w)),
      r = Math.floor((k % (h * w)) / w),
      q = k % w;
    return { c0: ch, c1: ch, r0: r, r1: r, q0: q, q1: q };
  }
  if (node.own_kernel && !node.pointwise) return all; // a user's kernel: read as a whole
  return { ...out }; // pointwise layers, and both branches of a residual sum
}

// {record id: region} for the unit (channel, row, col) of record `id`.
function receptiveField(records, id, unit) {
  const regions = {};
  regions[id] = { c0: unit.ch, c1: unit.ch, r0: unit.r, r1: unit.r, q0: unit.q, q1: unit.q };
  for (let k = id; k > 0; k--) {
    const record = records[k];
    if (!regions[k] || !record) continue;
    for (const source of record.inputs) {
      const back = regionBack(record.node, regions[k], records[source].tensor.shape);
      if (back) regions[source] = unionRegion(regions[source], back);
    }
  }
  return regions;
}
