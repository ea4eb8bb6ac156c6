"""What a network costs, layer by layer, from its shapes alone: no weights, no data.

:func:`summarize` asks every layer about itself: its output shape, parameters, multiply-adds,
receptive field and memory (the same arithmetic its forward uses). An architecture string is
traced with shape-only parameters (:func:`cnnkit.arch.trace`: nothing allocated), so VGG16 on
224x224 takes milliseconds; a live model is asked directly, so a layer of the user's own
appears like the built-in ones. One :class:`Row` per layer, in the lecture's letters
(D filters, F filter size, S stride, P padding), and :class:`Totals` underneath.

>>> s = summarize("alexnet-conv1")
>>> row = s.rows[0]
>>> row.output, row.formula, row.params, row.unshared_params
('55x55x96', '(227 - 11 + 2*0)/4 + 1 = 55', 34944, 105705600)
>>> row.connections, row.fc_connections, row.receptive_field, row.jump
(363, 154587, (11, 11), (4, 4))

Accounting (per example unless a name says otherwise; bytes use ``dtype_bytes``, 4 = float32)
-------------------------------------------------------------------------------------------
params
    Trainable parameters the row's layer brings, each counted once: a parameter an earlier row
    already has (a layer used twice, tied weights) is in ``shared_params`` instead, and the row
    notes which layer it shares with. CONV: D*(F*F*C + 1) (no +1 with ``bias=false``); FC:
    OUT*(IN + 1); BN, BN1D: 2*C (weight and bias; 0 with ``affine=false``); POOL, RELU,
    FLATTEN: 0; a layer of the user's own: its Parameters.
buffers
    Values of non-trainable floating-point state (``Layer.register_buffer``): NORMALIZE's mean
    and std (2*C), BN's and BN1D's running mean and variance (2*C; none with
    ``track_running_stats=false``). Integer buffers are counters, not values of the model, and
    are not counted: BN's ``num_batches_tracked``. The text table shows them after the layer
    as ``non-trainable N``; ``params`` stays the trainable ones (BN: weight and bias, 2*C).
unshared_params
    CONV: a locally connected layer with its own filter for every output unit,
    OH*OW*D*(F*F*C + 1) (AlexNet conv1: 55*55*96*(11*11*3 + 1) = 105,705,600); any other
    layer: its parameters (it shares nothing across positions); a layer may say otherwise with
    ``unshared_parameters(input_shape)``.
connections
    Inputs one output unit reads (the lecture's sparse interactions); the bias is a parameter,
    not a connection. CONV: F*F*C; POOL: F*F (one depth slice); FC: IN; pointwise layers
    (RELU, NORMALIZE, the default for a user's layer): 1. From ``connections(input_shape)``.
fc_connections
    What a fully connected layer in the same place would read per unit: the whole input
    volume C*H*W. Given for CONV and FC rows (where it equals ``connections``); None otherwise.
macs
    Multiply-adds, from ``macs(input_shape)``. CONV: OH*OW*D*F*F*C; FC: IN*OUT; BN, BN1D:
    C*H*W (C, C*L), one per value: the y = x*scale + shift evaluation reduces to (the batch
    statistics of training, about two more per value, are not counted). Bias
    additions, pooling comparisons and additions, and ReLU are not multiply-adds: 0.
    (FLOPs as PyTorch counts them = 2 * macs.)
activation_bytes
    New memory the layer's output takes: output elements * dtype_bytes. FLATTEN returns a view
    of its input (0) when the engine stores that volume NCHW, and copies it when the last CONV
    before it stores its output channels-last (32 filters or more, or few input channels
    with 16 filters or more and at least 96 taps, as LeNet's second; see
    ``cnnkit.functional.fast.plan.output_layout``).
cache_bytes
    What the layer's forward saves for its backward, as the fast engine (the default) keeps it
    (``memory(input_shape, dtype_bytes, layout)`` of each layer): Conv2d keeps its im2col
    columns (C*KH*KW*OH*OW values of the dtype, plus OH*OW ones when the bias rides in the
    products) when they take at most 256 KiB per example, else its input padded and stored as
    the columns read it (C*(H + 2P)*(W + 2P) values; backward rebuilds the columns from it),
    by ``cnnkit.functional.fast.plan.kept_bytes``; the weight it also references is the
    parameter itself. MaxPool2d keeps which window row won, per output element, and which
    column won each row segment its windows read, per (read row, output column): a bool each
    for 2 offsets (1 byte), uint8 up to 256 offsets, int16 or int32 beyond (see
    ``cnnkit.functional.fast.pool.max_pool_kept_bytes``); nothing for a 1-wide axis. ReLU keeps
    a boolean mask per element (1 byte); Linear its input (IN values, usually a view of the
    previous output that this then keeps alive); BN and BN1D their input too (C*H*W values,
    the previous output kept alive; the reference engine keeps x_hat, as many values), plus a
    few (C,) arrays per batch, not counted; AvgPool2d, Flatten and NORMALIZE only shapes:
    0. null for a layer that does not say (a user's layer without ``memory``): left out of the
    totals, which list it in ``unreported_cache``.
receptive_field, jump
    (height, width) of the input region one unit sees and the input distance between
    neighbouring units: r = r_prev + (F - 1)*j_prev, j = j_prev*S, starting from (1, 1) on the
    input (``field_after(field)`` of each layer). Padding does not change them. FLATTEN keeps
    the unit's field (it moves values); FC and everything after it see the whole input: None.
notes
    Which padded rows/columns rounding down never reads (when strict accepts it because only
    padding, or a row the stride skips anyway, goes unread; or with ``floor``); where a ceil
    window runs past the input; which parameters a row shares with which earlier row; a
    residual block's identity shortcut.

Totals (``batch`` examples): ``params`` = ``trainable_params`` + ``non_trainable_params``
(buffers), ``unshared_params``, ``macs_per_example``, ``macs`` (for the batch), ``param_bytes``
(parameters and buffers), ``gradient_bytes`` (one gradient per trainable parameter, same
dtype), ``activation_bytes`` (every layer's new output for the batch: what forward writes),
``cache_bytes`` (every layer's cache for the batch), ``backward_bytes`` = ``cache_bytes`` +
``gradient_bytes`` (what backward keeps), ``training_bytes`` = ``param_bytes`` +
``backward_bytes``, and ``unreported_cache`` (rows whose layer does not say what it keeps).
Transient buffers (padded copies, the matrix product before its transpose, inference-time
im2col columns), the input batch and the loss's softmax are not counted.

Branches: a layer with branches (RES: body and shortcut) is one row, counting everything inside
it, followed by one row per layer inside each branch (``depth`` 1, or more when nested, and
``path`` as in ``state_dict`` keys: ``"2.body.0"``), shown indented under it. The totals add
up the top-level rows only (``depth`` 0), so nothing is counted twice.

JSON (``Summary.to_json()``, schema ``"cnnkit.summary/3"``; keys are only ever added under a
new schema name, never renamed; /2 added ``shared_params``, ``buffers`` and
``unreported_cache``, and ``cache_bytes`` may be null; /3 added ``depth``, ``path`` and
``branches``)::

    {"schema": "cnnkit.summary/3",
     "architecture": canonical architecture string (str),
     "input_shape": [C, H, W], "batch": int, "dtype_bytes": int, "floor": bool,
     "rows": [{"index": int, "layer": str (e.g. "CONV(D=96, F=11, S=4, P=0)"),
               "kind": the layer's keyword ("CONV", "POOL", "RELU", "FLATTEN", "FC", ...) or
                       class name when it has none,
               "output": str (HxWxD, or F for a vector), "output_shape": [N, C, H, W] or [N, F],
               "formula": str or null (layers with a window: CONV and POOL),
               "params": int, "shared_params": int, "buffers": int, "unshared_params": int,
               "connections": int, "fc_connections": int or null, "macs": int,
               "activation_bytes": int, "cache_bytes": int or null,
               "receptive_field": [h, w] or null, "jump": [h, w] or null,
               "notes": [str], "depth": int, "path": str,
               "branches": [str] (names of the branches a layer has, else [])}, ...],
     "totals": {"params", "trainable_params", "non_trainable_params", "unshared_params",
                "macs_per_example", "macs", "param_bytes", "gradient_bytes",
                "activation_bytes", "cache_bytes", "backward_bytes", "training_bytes": int,
                "unreported_cache": [int]}}

Row fields are per example except ``output_shape`` (N = batch). The CSV (``Summary.csv()``) has
the row keys as its header, ``output_shape`` written ``1x96x55x55``, receptive field and jump
split into ``receptive_field_h``, ``receptive_field_w``, ``jump_h``, ``jump_w``, notes joined
with ``"; "``, branches with spaces, and null written as an empty field.
"""

from cnnkit.summary.data import CSV_FIELDS, SCHEMA, Row, Summary, Totals
from cnnkit.summary.render import human_bytes
from cnnkit.summary.rows import summarize

__all__ = ["CSV_FIELDS", "SCHEMA", "Row", "Summary", "Totals", "human_bytes", "summarize"]
