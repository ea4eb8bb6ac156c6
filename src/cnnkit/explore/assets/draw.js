// draw.js: a digit drawn with the mouse, a pen or a finger, turned into an input the way the
// training images were made. The strokes are kept as points and drawn again at the target
// resolution, so the stroke width in the network's pixels does not depend on how large the
// digit was drawn.

const PAD_SIZE = 280; // the drawing area, in CSS pixels
const PAD_STROKE = 18; // the stroke shown while drawing

const DRAWING = {
  mnist: {
    text:
      "as MNIST was made: the digit's bounding box scaled to fit 20x20 pixels keeping its " +
      "shape, strokes 2.2 pixels wide, anti-aliased grey levels, then placed in the 28x28 " +
      "image so that its centre of mass is at the centre; ink 1, background 0",
    box: 20,
    stroke: 2.2,
    centre: "mass",
    size: 28,
  },
  optdigits: {
    text:
      "as optdigits was made: the digit's bounding box scaled to fit a 32x32 bitmap keeping " +
      "its shape and centred, strokes 3.5 bitmap pixels wide, each pixel on or off, then the " +
      "on pixels of every 4x4 block counted (0..16) and divided by 16, giving 8x8 values in [0, 1]",
    box: 32,
    stroke: 3.5,
    centre: "box",
    size: 32,
    blocks: 4,
  },
  generic: {
    text:
      "the digit's bounding box scaled to fit 80% of the input keeping its shape, strokes a " +
      "tenth of the input wide, anti-aliased, centred by its centre of mass, the same values " +
      "in every channel; ink 1, background 0",
    box: 0.8,
    stroke: 0.1,
    centre: "mass",
    relative: true,
  },
};

const STROKES = [];
let PAD_IMAGE = null; // a test image shown in the drawing area until the next stroke

function drawingRecipe() {
  return DRAWING[DATA.drawing] || DRAWING.generic;
}

// Strokes (lists of [x, y] in pad pixels) drawn into a size x size grey image: [0, 1] values.
function rasterise(strokes, size, box, stroke, centred) {
  const points = strokes.flat();
  const xs = points.map((p) => p[0]),
    ys = points.map((p) => p[1]);
  const x0 = Math.min(...xs),
    x1 = Math.max(...xs),
    y0 = Math.min(...ys),
    y1 = Math.max(...ys);
  const scale = box / Math.max(x1 - x0, y1 - y0, 1e-6);
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = size;
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, size, size);
  ctx.strokeStyle = "#fff";
  ctx.fillStyle = "#fff";
  ctx.lineWidth = stroke;
  ctx.lineCap = ctx.lineJoin = "round";
  const offX = (size - (x1 - x0) * scale) / 2,
    offY = (size - (y1 - y0) * scale) / 2;
  for (const line of strokes) {
    const at = (p) => [offX + (p[0] - x0) * scale, offY + (p[1] - y0) * scale];
    ctx.beginPath();
    const [sx, sy] = at(line[0]);
    if (line.length === 1) {
      ctx.arc(sx, sy, stroke / 2, 0, 2 * Math.PI);
      ctx.fill();
      continue;
    }
    ctx.moveTo(sx, sy);
    for (const p of line.slice(1)) ctx.lineTo(...at(p));
    ctx.stroke();
  }
  const pixels = ctx.getImageData(0, 0, size, size).data;
  const grey = new Float64Array(size * size);
  for (let i = 0; i < grey.length; i++) grey[i] = pixels[4 * i] / 255;
  return grey;
}

// Shift a size x size image so that its centre of mass is at the centre (whole pixels).
function centreOfMass(grey, size) {
  let total = 0,
    sr = 0,
    sc = 0;
  for (let r = 0; r < size; r++)
    for (let c = 0; c < size; c++) {
      const v = grey[r * size + c];
      total += v;
      sr += v * r;
      sc += v * c;
    }
  if (!total) return grey;
  const dr = Math.round((size - 1) / 2 - sr / total),
    dc = Math.round((size - 1) / 2 - sc / total);
  const out = new Float64Array(size * size);
  for (let r = 0; r < size; r++) {
    for (let c = 0; c < size; c++) {
      const fr = r - dr,
        fc = c - dc;
      if (fr >= 0 && fr < size && fc >= 0 && fc < size) out[r * size + c] = grey[fr * size + fc];
    }
  }
  return out;
}

// The drawing as an input tensor of the network's shape, in loader units.
function drawingTensor() {
  const [c, h, w] = DATA.run.input_shape;
  const recipe = drawingRecipe();
  const image = tensor([c, h, w]);
  if (!STROKES.length) return image;
  let plane;
  if (recipe.blocks) {
    const bitmap = rasterise(STROKES, recipe.size, recipe.box, recipe.stroke, false);
    plane = new Float64Array(h * w);
    const b = recipe.blocks;
    for (let r = 0; r < h; r++) {
      for (let q = 0; q < w; q++) {
        let on = 0;
        for (let y = 0; y < b; y++)
          for (let x = 0; x < b; x++)
            on += bitmap[(r * b + y) * recipe.size + q * b + x] >= 0.5 ? 1 : 0;
        plane[r * w + q] = on / (b * b);
      }
    }
  } else {
    const n = Math.max(h, w);
    const box = recipe.relative ? recipe.box * n : recipe.box;
    const stroke = recipe.relative ? Math.max(1, recipe.stroke * n) : recipe.stroke;
    const square = centreOfMass(rasterise(STROKES, n, box, stroke, true), n);
    plane = new Float64Array(h * w);
    for (let r = 0; r < h; r++) for (let q = 0; q < w; q++) plane[r * w + q] = square[r * n + q];
  }
  for (let k = 0; k < c; k++) image.data.set(plane, k * h * w);
  return image;
}

function paintPad() {
  const pad = document.getElementById("pad");
  const ctx = pad.getContext("2d");
  const ratio = pad.width / PAD_SIZE;
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, pad.width, pad.height);
  if (PAD_IMAGE && !STROKES.length) {
    const [c, h, w] = view3(PAD_IMAGE.shape);
    const cell = pad.width / Math.max(h, w);
    for (let r = 0; r < h; r++) {
      for (let q = 0; q < w; q++) {
        const rgb = [0, 1, 2].map((k) =>
          Math.round(
            255 * Math.min(1, Math.max(0, PAD_IMAGE.data[((c === 3 ? k : 0) * h + r) * w + q])),
          ),
        );
        ctx.fillStyle = `rgb(${rgb.join(",")})`;
        ctx.fillRect(q * cell, r * cell, Math.ceil(cell), Math.ceil(cell));
      }
    }
  }
  ctx.strokeStyle = ctx.fillStyle = "#fff";
  ctx.lineWidth = PAD_STROKE * ratio;
  ctx.lineCap = ctx.lineJoin = "round";
  for (const line of STROKES) {
    ctx.beginPath();
    ctx.moveTo(line[0][0] * ratio, line[0][1] * ratio);
    for (const p of line) ctx.lineTo(p[0] * ratio, p[1] * ratio);
    if (line.length === 1) ctx.lineTo(line[0][0] * ratio + 0.1, line[0][1] * ratio);
    ctx.stroke();
  }
}

function setUpPad(onChange) {
  const pad = document.getElementById("pad");
  let drawing = false;
  const point = (event) => {
    const box = pad.getBoundingClientRect();
    return [
      ((event.clientX - box.left) / box.width) * PAD_SIZE,
      ((event.clientY - box.top) / box.height) * PAD_SIZE,
    ];
  };
  pad.addEventListener("pointerdown", (event) => {
    drawing = true;
    PAD_IMAGE = null;
    pad.setPointerCapture(event.pointerId);
    STROKES.push([point(event)]);
    paintPad();
    onChange();
    event.preventDefault();
  });
  pad.addEventListener("pointermove", (event) => {
    if (!drawing) return;
    STROKES[STROKES.length - 1].push(point(event));
    paintPad();
    onChange();
  });
  const stop = () => {
    drawing = false;
  };
  pad.addEventListener("pointerup", stop);
  pad.addEventListener("pointercancel", stop);
  pad.addEventListener("keydown", (event) => {
    if (event.key === "Delete" || event.key === "Backspace" || event.key.toLowerCase() === "c") {
      clearPad();
      onChange();
    }
  });
  document.getElementById("clear").addEventListener("click", () => {
    clearPad();
    onChange();
  });
  document.getElementById("drawing-note").textContent =
    `Your drawing is turned into the network's input ${drawingRecipe().text}.`;
  paintPad();
}

// Empty the drawing area; `image` (a test image) is shown in it until the next stroke.
function clearPad(image) {
  STROKES.length = 0;
  PAD_IMAGE = image || null;
  paintPad();
}
