// render.js: every layer's output as pictures (one per depth slice, a strip of cells for flat
// layers), drawn on one colour scale per layer; the selected unit, its receptive field and the
// winner of a max pool drawn over them. Units are reachable by mouse and by keyboard: each
// layer's maps are one focusable group (arrow keys move, Page Up/Down change map, Enter
// explains the unit).

const MAX_MAPS = 64; // maps drawn per layer; the others are left out (said under the layer)
const MAP_PIXELS = 64; // a map's drawn size, about
// A flat layer's units as rows of cells: up to 32 a row (64 for long layers), smaller cells
// for long layers, so a FLATTEN of thousands of units stays a picture.
function flatColumns(n) {
  return n <= 512 ? Math.min(n, 32) : 64;
}

const VIEW = { result: null, selection: null, regions: {}, marks: [], cursors: {}, blocks: {} };

function scaleOf(shape) {
  if (shape.length === 1) return shape[0] <= 64 ? 14 : shape[0] <= 512 ? 8 : 4;
  const [, h, w] = view3(shape);
  return Math.max(2, Math.min(14, Math.round(MAP_PIXELS / Math.max(h, w))));
}

// Value -> [r, g, b]: grey from 0 when the layer has no negative values, else blue-white-red.
function colourScale(data) {
  let low = 0,
    high = 0;
  for (const v of data) {
    if (v < low) low = v;
    if (v > high) high = v;
  }
  if (low >= 0) {
    const top = high || 1;
    return {
      text: `black 0 to white ${fmt(high)}`,
      colour: (v) => {
        const g = Math.round(255 * Math.min(1, Math.max(0, v / top)));
        return [g, g, g];
      },
    };
  }
  const top = Math.max(-low, high) || 1;
  return {
    text: `blue ${fmt(-top)}, white 0, red ${fmt(top)}`,
    colour: (v) => {
      const t = Math.max(-1, Math.min(1, v / top));
      return t >= 0
        ? [255, Math.round(255 * (1 - t)), Math.round(255 * (1 - t))]
        : [Math.round(255 * (1 + t)), Math.round(255 * (1 + t)), 255];
    },
  };
}

function gridOf(shape) {
  if (shape.length === 1)
    return {
      maps: 1,
      rows: Math.ceil(shape[0] / flatColumns(shape[0])),
      cols: flatColumns(shape[0]),
      flat: true,
    };
  const [c, h, w] = view3(shape);
  return { maps: Math.min(c, MAX_MAPS), rows: h, cols: w, flat: false };
}

// Unit {ch, r, q} <-> (map index, cell row, cell column) of the drawing.
function unitAt(shape, map, row, col) {
  if (shape.length !== 1) return { ch: map, r: row, q: col };
  const k = row * flatColumns(shape[0]) + col;
  return k < shape[0] ? { ch: k, r: 0, q: 0 } : null;
}

function cellOf(shape, unit) {
  if (shape.length !== 1) return { map: unit.ch, row: unit.r, col: unit.q };
  const columns = flatColumns(shape[0]);
  return { map: 0, row: Math.floor(unit.ch / columns), col: unit.ch % columns };
}

function layerTitle(record) {
  if (!record.node) return "input";
  return `${record.node.path} ${record.node.label}`;
}

function shapeText(shape) {
  if (shape.length === 3) return `${shape[1]}x${shape[2]}x${shape[0]}`;
  return shape.join("x");
}

function buildBlock(record, container) {
  const shape = record.tensor.shape,
    grid = gridOf(shape),
    s = scaleOf(shape);
  const id = record.id;
  const depth = record.node ? record.node.path.split(".").length - 1 : 0;
  const title = `${layerTitle(record)}`;
  const maps = element("div", {
    class: "maps",
    tabindex: "0",
    role: "group",
    "aria-label": `${title}, output ${shapeText(shape)}: ${grid.flat ? shape[0] + " units" : grid.maps + " maps"}; arrow keys move the unit, Page Up and Page Down change the map, Enter explains the unit`,
  });
  const canvases = [];
  for (let m = 0; m < grid.maps; m++) {
    const canvas = element("canvas", {
      class: "map",
      width: grid.cols * s,
      height: grid.rows * s,
      "data-map": m,
      "data-rows": grid.rows,
      "data-cols": grid.cols,
      "aria-hidden": "true",
    });
    canvas.addEventListener("click", (event) => {
      const box = canvas.getBoundingClientRect();
      const col = Math.floor(((event.clientX - box.left) / box.width) * grid.cols);
      const row = Math.floor(((event.clientY - box.top) / box.height) * grid.rows);
      const unit = unitAt(shape, m, Math.min(row, grid.rows - 1), Math.min(col, grid.cols - 1));
      if (unit) select(id, unit);
    });
    canvases.push(canvas);
    maps.append(canvas);
  }
  maps.addEventListener("keydown", (event) => moveCursor(event, id));
  maps.addEventListener("focus", () => {
    if (!VIEW.cursors[id]) VIEW.cursors[id] = { ch: 0, r: 0, q: 0 };
    paintBlock(id);
  });
  maps.addEventListener("blur", () => paintBlock(id));
  const channels = view3(shape)[0];
  const left =
    !grid.flat && channels > grid.maps ? ` (the first ${grid.maps} of ${channels} maps shown)` : "";
  const block = element(
    "section",
    {
      class: `layer depth-${Math.min(depth, 3)}`,
      id: `layer-${id}`,
      "data-record": id,
      "data-layer": record.node ? record.node.path : "input",
    },
    [
      element("h3", {
        html: `${escapeHTML(title)} <span class="shape">&rarr; ${shapeText(shape)}</span>`,
      }),
      maps,
      element("p", { class: "scale note", text: left }),
    ],
  );
  container.append(block);
  VIEW.blocks[id] = {
    block,
    maps,
    canvases,
    grid,
    scale: s,
    shape,
    note: block.querySelector(".scale"),
    left,
  };
}

function paintBlock(id) {
  const view = VIEW.blocks[id],
    record = VIEW.result && VIEW.result.records[id];
  if (!view || !record) return;
  const { grid, scale: s, canvases, shape } = view;
  const scale = colourScale(record.tensor.data);
  view.note.textContent = `colours: ${scale.text}${view.left}`;
  const [, h, w] = view3(shape);
  const region = VIEW.regions[id];
  const focused = document.activeElement === view.maps;
  const small = document.createElement("canvas"); // one pixel per unit, then scaled up
  small.width = grid.cols;
  small.height = grid.rows;
  const smallContext = small.getContext("2d");
  canvases.forEach((canvas, m) => {
    const ctx = canvas.getContext("2d");
    const image = smallContext.createImageData(grid.cols, grid.rows);
    for (let row = 0; row < grid.rows; row++) {
      for (let col = 0; col < grid.cols; col++) {
        const unit = unitAt(shape, m, row, col);
        const value = unit ? record.tensor.data[(unit.ch * h + unit.r) * w + unit.q] : 0;
        const [r, g, b] = unit ? scale.colour(value) : [240, 240, 240];
        const k = 4 * (row * grid.cols + col);
        image.data[k] = r;
        image.data[k + 1] = g;
        image.data[k + 2] = b;
        image.data[k + 3] = 255;
      }
    }
    smallContext.putImageData(image, 0, 0);
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(small, 0, 0, canvas.width, canvas.height);
    if (region) outlineRegion(ctx, shape, m, region, s);
    for (const mark of VIEW.marks) {
      if (mark.id === id) outlineUnit(ctx, shape, m, mark, s, "#00c853", 3);
    }
    const selected = VIEW.selection;
    if (selected && selected.id === id) outlineUnit(ctx, shape, m, selected.unit, s, "#d500f9", 3);
    const cursor = VIEW.cursors[id];
    const onSelection = selected && selected.id === id && sameUnit(selected.unit, cursor);
    if (focused && cursor && !onSelection) outlineUnit(ctx, shape, m, cursor, s, "#111", 2, [3, 2]);
  });
}

function paintAll() {
  for (const key of Object.keys(VIEW.blocks)) paintBlock(Number(key));
}

function outlineRegion(ctx, shape, m, region, s) {
  ctx.strokeStyle = "#ff9100";
  ctx.lineWidth = 2;
  if (shape.length === 1) {
    for (let k = region.c0; k <= region.c1; k++) {
      const cell = cellOf(shape, { ch: k });
      ctx.strokeRect(cell.col * s + 1, cell.row * s + 1, s - 2, s - 2);
    }
    return;
  }
  if (m < region.c0 || m > region.c1) return;
  ctx.strokeRect(
    region.q0 * s + 1,
    region.r0 * s + 1,
    (region.q1 - region.q0 + 1) * s - 2,
    (region.r1 - region.r0 + 1) * s - 2,
  );
}

function outlineUnit(ctx, shape, m, unit, s, colour, width, dash) {
  const cell = cellOf(shape, unit);
  if (cell.map !== m) return;
  ctx.save();
  ctx.strokeStyle = colour;
  ctx.lineWidth = width;
  if (dash) ctx.setLineDash(dash);
  ctx.strokeRect(cell.col * s + width / 2, cell.row * s + width / 2, s - width, s - width);
  ctx.restore();
}

function sameUnit(a, b) {
  return !!a && !!b && a.ch === b.ch && a.r === b.r && a.q === b.q;
}

function moveCursor(event, id) {
  const view = VIEW.blocks[id],
    shape = view.shape;
  const cursor = VIEW.cursors[id] || { ch: 0, r: 0, q: 0 };
  const [c, h, w] = view3(shape);
  const flat = shape.length === 1;
  const shown = flat ? c : view.grid.maps;
  const moves = {
    ArrowLeft: flat ? [-1, 0, 0] : [0, 0, -1],
    ArrowRight: flat ? [1, 0, 0] : [0, 0, 1],
    ArrowUp: flat ? [-flatColumns(c), 0, 0] : [0, -1, 0],
    ArrowDown: flat ? [flatColumns(c), 0, 0] : [0, 1, 0],
    PageUp: [-1, 0, 0],
    PageDown: [1, 0, 0],
    Home: [-Infinity, -Infinity, -Infinity],
  };
  if (event.key === "Enter" || event.key === " ") {
    event.preventDefault();
    select(id, { ...cursor });
    return;
  }
  const move = moves[event.key];
  if (!move) return;
  event.preventDefault();
  const clamp = (v, n) => Math.max(0, Math.min(n - 1, v));
  VIEW.cursors[id] = {
    ch: clamp(cursor.ch + move[0], shown),
    r: clamp(cursor.r + move[1], h),
    q: clamp(cursor.q + move[2], w),
  };
  const value =
    VIEW.result.records[id].tensor.data[
      (VIEW.cursors[id].ch * h + VIEW.cursors[id].r) * w + VIEW.cursors[id].q
    ];
  announce(`${unitName(VIEW.result.records[id], VIEW.cursors[id])}: ${fmt(value)}`);
  paintBlock(id);
}

function announce(text) {
  document.getElementById("announce").textContent = text;
}

function select(id, unit) {
  VIEW.selection = { id, unit };
  VIEW.cursors[id] = { ...unit };
  showSelection(true);
}

// The receptive field and the explanation of the selected unit, for the current image.
function showSelection(moveCard) {
  const chosen = VIEW.selection,
    records = VIEW.result.records;
  if (!chosen || !records[chosen.id]) {
    VIEW.regions = {};
    VIEW.marks = [];
    document.getElementById("unit").hidden = true;
    paintAll();
    return;
  }
  VIEW.regions = receptiveField(records, chosen.id, chosen.unit);
  delete VIEW.regions[chosen.id];
  const found = explainUnit(records, chosen.id, chosen.unit);
  VIEW.marks = found.marks;
  const record = records[chosen.id];
  const [, h, w] = view3(record.tensor.shape);
  const value = record.tensor.data[(chosen.unit.ch * h + chosen.unit.r) * w + chosen.unit.q];
  const card = document.getElementById("unit");
  card.hidden = false;
  card.dataset.value = String(value);
  card.dataset.total = String(found.total);
  card.querySelector("h3").textContent =
    `${layerTitle(record)}: ${unitName(record, chosen.unit)} = ${fmt(value)}`;
  card.querySelector(".steps").innerHTML = found.lines.map((line) => `<li>${line}</li>`).join("");
  const area = VIEW.regions[0];
  card.querySelector(".field").textContent = area
    ? `Receptive field in the input (orange): rows ${area.r0}..${area.r1}, columns ${area.q0}..${area.q1}` +
      `${found.marks.length ? "; green: the input that won" : ""}.`
    : "";
  if (moveCard) {
    VIEW.blocks[chosen.id].block.after(card);
    announce(card.querySelector("h3").textContent);
  }
  paintAll();
  paintSeen();
}
