// network.js: the run's network computed on one image, every layer's output recorded.
// records[0] is the image itself; each later record is one layer's output, in the order the
// layers run (a residual block's body, then its shortcut, then the block's sum), with the ids
// of the records it was computed from (inputs), so receptive fields can be traced back.

let DATA = null; // the page's JSON: run, network, tensors, samples, history, ...

function runNodes(nodes, x, sourceId, out) {
  let current = { tensor: x, id: sourceId };
  for (const node of nodes) {
    current = runNode(node, current.tensor, current.id, out);
    if (current === null) return null;
  }
  return current;
}

function runNode(node, x, sourceId, out) {
  if (node.unsupported || !(node.kind in KERNELS)) {
    out.unsupported =
      node.unsupported || `layer ${node.path} ${node.kind}: the page cannot run this layer`;
    out.stoppedAt = node;
    return null;
  }
  let y, inputs;
  if (node.kind === "RES") {
    const body = runNodes(node.config.body, x, sourceId, out);
    if (body === null) return null;
    const side = node.config.shortcut
      ? runNodes(node.config.shortcut, x, sourceId, out)
      : { tensor: x, id: sourceId };
    if (side === null) return null;
    y = tensor(body.tensor.shape);
    for (let i = 0; i < y.data.length; i++) y.data[i] = body.tensor.data[i] + side.tensor.data[i];
    inputs = [body.id, side.id];
  } else {
    y = KERNELS[node.kind](node, x);
    inputs = [sourceId];
  }
  const record = { id: out.records.length, node, tensor: y, inputs };
  out.records.push(record);
  return record;
}

function softmax(values) {
  const top = Math.max(...values);
  const shifted = Array.from(values, (v) => Math.exp(v - top));
  const total = shifted.reduce((a, b) => a + b, 0);
  return shifted.map((v) => v / total);
}

// The whole network on one image tensor (loader units: normalisation is the first layer).
function runNetwork(image) {
  const out = { records: [{ id: 0, node: null, tensor: image, inputs: [] }], unsupported: null };
  const last = runNodes(DATA.network, image, 0, out);
  out.probabilities = null;
  if (
    last !== null &&
    last.tensor.shape.length === 1 &&
    last.tensor.shape[0] === DATA.run.classes.length
  ) {
    out.probabilities = softmax(last.tensor.data);
  }
  return out;
}

// Every node, nested ones included, in the order they run.
function allNodes(nodes) {
  const found = [];
  for (const node of nodes || DATA.network) {
    if (node.kind === "RES") {
      found.push(...allNodes(node.config.body));
      if (node.config.shortcut) found.push(...allNodes(node.config.shortcut));
    }
    found.push(node);
  }
  return found;
}

// window.cnnkit: the page's computation for scripts and tests.
//   forward(image): image = one image as nested arrays [C][H][W] in the units cnnkit's
//   loaders return (before normalisation). Returns {probabilities: [K numbers] (null when a
//   layer could not be run), layers: [{name, kind, label, shape, values}], unsupported}, one
//   entry per layer in the order they run; name is the layer's path in the model
//   ("3", "5.body.0"), shape its output per example ([C, H, W] or [N]), values its output
//   as a flat array in (C, H, W) order; unsupported is null or the sentence naming the layer
//   the page could not run.
function publicForward(image) {
  const result = runNetwork(imageTensor(image, DATA.run.input_shape));
  return {
    probabilities: result.probabilities,
    unsupported: result.unsupported,
    layers: result.records.slice(1).map((record) => ({
      name: record.node.path,
      kind: record.node.kind,
      label: record.node.label,
      shape: record.tensor.shape.slice(),
      values: Array.from(record.tensor.data),
    })),
  };
}

function setUpNetwork() {
  DATA = readJSON("cnnkit-data");
  ARRAYS = unpackArrays(
    decodeBase64(document.getElementById("cnnkit-blob").textContent),
    DATA.tensors,
  );
  window.cnnkit = {
    forward: publicForward,
    kinds: Object.keys(KERNELS),
    samples: () =>
      DATA.samples.map((sample) => ({
        index: sample.index,
        label: sample.label,
        image: nested(sampleTensor(sample)),
        cnnkit: sample.cnnkit.slice(),
      })),
  };
}

function sampleTensor(sample) {
  return tensor(DATA.run.input_shape, Float64Array.from(ARRAYS[sample.tensor]));
}
