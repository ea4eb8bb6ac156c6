// shapes.js: the lecture's formula on one CONV layer, worked out as `cnnkit explain shape`
// and `cnnkit explain sharing` print it: a port of cnnkit/explain/shape.py, explain/sharing.py
// and the rule of shapes/formula.py (a result that is not whole is accepted only when rounding
// down loses no real input; --floor rounds down as PyTorch does). The tests compare its text
// with cnnkit's for random settings.

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
  const a = BigInt(Math.abs(numerator)),
    d = BigInt(Math.abs(denominator));
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
  if (digits >= 10000n) {
    e += 1;
    digits = digitsOf(e);
  }
  if (e < -4 || e >= 4) return "e";
  const text = digits.toString().padStart(4, "0");
  const point = e + 1;
  let out =
    point <= 0
      ? "0." + "0".repeat(-point) + text
      : text.slice(0, point) + (point < 4 ? "." + text.slice(point) : "");
  if (out.includes(".")) out = out.replace(/0+$/, "").replace(/\.$/, "");
  return (negative ? "-" : "") + out;
}

function exactText(span, stride) {
  const whole = floorDiv(span, stride),
    rest = pyMod(span, stride);
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
    if (
      best === null ||
      Math.abs(c - target) < Math.abs(best - target) ||
      (Math.abs(c - target) === Math.abs(best - target) && c < best)
    )
      best = c;
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
  if (dilation !== 1)
    return shapeFixes(size, extentOf(kernel, dilation), stride, p, 1).filter(
      (f) => f.letter !== "F",
    );
  const fixes = [];
  const limit = Math.max(p + stride, kernel);
  const padding = nearest(
    range(
      0,
      limit,
      (v) => v !== p && size + 2 * v >= kernel && pyMod(size + 2 * v - kernel, stride) === 0,
    ),
    p,
  );
  if (padding !== null)
    fixes.push({
      letter: "P",
      value: padding,
      output: floorDiv(size + 2 * padding - kernel, stride) + 1,
    });
  const padded = size + 2 * p,
    left = padded - kernel;
  if (left > 0) {
    const s = nearest(
      range(1, left, (v) => left % v === 0 && v !== stride),
      stride,
    );
    if (s !== null) fixes.push({ letter: "S", value: s, output: floorDiv(left, s) + 1 });
  }
  const f = nearest(
    range(1, padded, (v) => pyMod(v, stride) === pyMod(padded, stride) && v !== kernel),
    kernel,
  );
  if (f !== null) fixes.push({ letter: "F", value: f, output: floorDiv(padded - f, stride) + 1 });
  return fixes;
}

function shapeProblem(size, kernel, stride, p, dilation) {
  const padded = size + 2 * p,
    extent = extentOf(kernel, dilation);
  if (extent <= padded && lostRows(size, extent, stride, p, p) === 0) return null;
  const span = padded - extent;
  const problem = {
    tooLarge: extent > padded,
    padded,
    fixes: shapeFixes(size, kernel, stride, p, dilation),
    exactText: exactText(span, stride),
    floorOutput: floorDiv(span, stride) + 1,
    dropped: pyMod(span, stride),
  };
  problem.describe = () => {
    if (problem.tooLarge) {
      const wide =
        dilation === 1 ? `${kernel}-wide` : `${kernel}-tap, dilation-${dilation} (${extent}-wide)`;
      return `the ${wide} filter is larger than the padded input (${size} + 2*${p} = ${padded})`;
    }
    return `${shapeFormula(size, kernel, stride, p, dilation)} = ${problem.exactText} is not a whole number`;
  };
  problem.advice = () => {
    const options = problem.fixes.map((f) => `${f.letter}=${f.value} (-> ${f.output})`);
    if (problem.tooLarge)
      return options.length ? "use " + options.join(" or ") : "use a larger input";
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
  const left = pyMod(padded - extent, stride),
    first = padded - left,
    last = padded - 1;
  const span = first === last ? String(first) : `${first}..${last}`;
  let where = `${span} of 0..${last}`;
  const verb = left === 1 ? "is" : "are";
  if (lostRows(size, extent, stride, before, after))
    return `floor: padded rows ${span} (of 0..${last}) are never read`;
  const padding = Math.min(left, after),
    real = left - padding;
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
  const extent = extentOf(f, d),
    span = i + 2 * p - extent;
  const possible = problem === null || (floor && !problem.tooLarge);
  const output = possible ? floorDiv(span, s) + 1 : null;
  const count = span >= 0 ? floorDiv(span, s) + 1 : 0;
  const unread = span >= 0 ? pyMod(span, s) : 0;
  const formula = shapeFormula(i, f, s, p, d);
  const lead = "units along one axis = ",
    pad = " ".repeat(lead.length - 2);
  let general = "(I - F + 2P)/S + 1",
    given = `I=${i}, F=${f}, S=${s}, P=${p}`;
  if (d !== 1) {
    general = "(I + 2P - d(F - 1) - 1)/S + 1";
    given += `, dilation d=${d}`;
  }
  const lines = [
    `${lead}${general}   with ${given}`,
    `${pad}= ${formula}`,
    `${pad}= ${span}/${s} + 1`,
    `${pad}= ${exactText(span, s)}`,
  ];
  const padded = i + 2 * p;
  if (span >= 0) {
    const starts = [];
    for (let v = 0; v <= Math.min(span, 63 * s); v += s) starts.push(v);
    const lastStart = (count - 1) * s;
    if (starts[starts.length - 1] !== lastStart) starts.push(lastStart);
    const shown =
      count <= 8
        ? starts.join(", ")
        : `${starts[0]}, ${starts[1]}, ..., ${starts[starts.length - 1]}`;
    const last = starts[starts.length - 1] + extent - 1;
    const wide = d === 1 ? `${f}-wide` : `${f}-tap (${extent}-wide)`;
    let read;
    if (unread) read = `: the last ${unread} ${unread === 1 ? "is" : "are"} never read`;
    else if (s > extent && count > 1) {
      const gap = s - extent;
      read = `: the ${gap} ${gap === 1 ? "pixel after each window is" : "pixels after each window are"} skipped (S is larger than the window)`;
    } else read = d === 1 ? ": every pixel is read" : "";
    const lost = lostRows(i, extent, s, p, p);
    const lostText = lost
      ? ` (${unread === 1 ? "it is input" : `${lost} of them input`} that one more window would read)`
      : "";
    lines.push(
      `the ${wide} filter starts at padded pixels ${shown} (${thousands(count)} position${count > 1 ? "s" : ""}, S=${s} apart) and reads up to pixel ${last} of 0..${padded - 1}${read}${lostText}`,
    );
  }
  if (problem === null) {
    const units = `${output} unit${output !== 1 ? "s" : ""}`;
    lines.push(
      unread
        ? `${formula} = ${exactText(span, s)} -> ${output}: possible, ${output} units along this axis; ${unreadNote(i, extent, s, p, p)}`
        : `${formula} = ${output}: possible, ${units} along this axis`,
    );
  } else if (floor && !problem.tooLarge) {
    lines.push(
      `${formula} = ${problem.exactText} -> floor ${problem.floorOutput} (as PyTorch): the last ${problem.dropped} of the ${problem.padded} padded input positions are never read`,
    );
  } else {
    lines.push(`${problem.describe()}: impossible`, problem.advice());
  }
  return { text: lines.join("\n"), possible, output, count, unread, extent, span };
}

// The text of `cnnkit explain sharing "INPUT(CxIxI) - CONV(...)"` for one layer.
function explainSharing(i, c, f, s, p, d, depth, floor, output) {
  const conv = `CONV(D=${depth}, F=${f}, S=${s}, P=${p}${d !== 1 ? `, dilation=${d}` : ""}${floor ? ", round=floor" : ""})`;
  const per = f * f * c + 1,
    shared = depth * per,
    units = output * output,
    unshared = units * shared;
  const sharedText = `${depth}*(${f}*${f}*${c} + 1) = ${thousands(shared)}`;
  const unsharedText = `${output}*${output}*${depth}*(${f}*${f}*${c} + 1) = ${thousands(unshared)}`;
  const width = Math.max(sharedText.length, unsharedText.length);
  return {
    shared,
    unshared,
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
