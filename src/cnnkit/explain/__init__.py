"""``cnnkit explain``: the lecture's ideas worked out on real numbers, by the engine itself.

Every explanation is computed in two ways: the engine's own layers produce the numbers
(``Conv2d.forward`` for the output, ``Conv2d.backward`` for the gradients, the real layers for
equivariance), and this module writes out the arithmetic that reproduces them, term by term, so
a reader can check each number by hand. Each ``explain_*`` function returns a frozen dataclass
with ``text()`` (what the terminal shows) and ``to_dict()`` (JSON-able, for ``--json``).

>>> e = explain_conv(LECTURE_X, LECTURE_W, LECTURE_B, stride=2, padding=1)
>>> e.output.tolist()
[[3.0, 4.0, 1.0], [4.0, 1.0, 6.0], [3.0, 3.0, 4.0]]
>>> unit = e.units[1]
>>> unit.region, unit.channel_sums, unit.value
('x[:, 0:3, 2:5]', (1.0, 2.0, 0.0), 4.0)
>>> explain_sharing("alexnet-conv1").layers[0].unshared
105705600

Topics (``cnnkit explain TOPIC``, see :func:`add_explain_parser`)
------------------------------------------------------------------
conv
    :func:`explain_conv`: the zero-padded input per channel, the filter and bias, then every
    computational unit's region and dot product, building the output grid unit by unit. The
    default is the lecture's worked example (a consistent 5x5x3 input, its filter F0, b = 1,
    S=2, P=1 -> [[3, 4, 1], [4, 1, 6], [3, 3, 4]]). ``--seed`` draws small integers (input
    0..2, filter and bias -1..1, like the lecture's); ``--values FILE`` reads
    ``{"x": CxHxW or HxW, "w": CxFxF or FxF, "b": number}`` (``b`` defaults to 0). Printing is
    refused past a 12x12 padded input, 4 channels or 49 output units; ``--png FILE`` draws
    the padded input, the filter and the output instead (needs matplotlib).
shape
    :func:`explain_shape`: (I - F + 2P)/S + 1 step by step, where the filter starts, and the
    verdict and fixes in the same words as ``cnnkit shape``. Exit code 1 when impossible.
sharing
    :func:`explain_sharing`: per CONV layer, D*(F*F*C + 1) parameters with sharing against
    OH*OW*D*(F*F*C + 1) without; the ratio is OH*OW, the units in one depth slice.
sparse
    :func:`explain_sparse`: one unit of a CONV layer reads F*F*C inputs; a fully connected
    unit would read all H*W*C; and which input region unit (i, j) reads.
equivariance
    :func:`explain_equivariance`: max |f(g(x)) - g'(f(x))| per layer and shift, where g rolls a
    random input by k pixels (``np.roll``) and g' rolls the layer's output by k/J units, J being
    the layer's cumulative stride. Only units whose receptive field lies inside the image and
    avoids the k wrapped-around columns (rows) are compared: unit u of a layer with receptive
    field R, jump J and cumulative padding offset O reads input pixels u*J - O .. u*J - O + R - 1
    (r = r_prev + (F - 1)*j_prev, j = j_prev*S, O = O_prev + P*j_prev), so it is compared when
    that range lies in k .. size - 1 for f(g(x)) and unit u - m's range lies in 0 .. size - 1
    for f(x). Axes that are not shifted are compared everywhere. When k is not a multiple of J
    there is no exact output shift; the cell is compared against the closer of floor(k/J) and
    ceil(k/J) (the smaller error) and marked ``exact: false``. Layers from the first FLATTEN
    or FC on are not measured: they mix all positions.
layers
    :func:`explain_layers`: every layer says what it does to its input, in its own words
    (``Layer.explain``): a layer of the user's own included.
backprop
    :func:`explain_backprop`: on a tiny conv layer, every unit's contribution
    dy[p, q] * x[region(p, q)][i, j] to one shared weight w[0, c, i, j], their sum, and the
    engine's ``weight.grad`` (and the bias: the sum of dy against ``bias.grad``).
    ``--residual`` (:func:`explain_residual_backprop`): through a residual block
    y = body(x) + x: dy goes down both branches, the body's dx plus dy is the block's dx.
dropout
    :func:`explain_dropout`: the engine's Dropout (``--2d``: Dropout2d) on small integers: the
    mask its forward draws, out = x * mask / (1 - p), dx for dy = 1 through the same mask, the
    mean of 10,000 forwards against x (E[out] = x), and evaluation mode returning x.
batchnorm
    :func:`explain_batchnorm`: the engine's BatchNorm2d (float64) on a seeded batch of small
    integers (``--images`` 4, ``--channels`` 2, ``--size`` 2), one training step then
    evaluation, for one ``--channel``: its M = N*H*W values, mean, biased variance, x_hat,
    the layer's y = weight*x_hat + bias (weight 2, bias 0.5 to show the map), the running
    update with the unbiased variance against the layer's buffers, and the layer's
    evaluation output from the running statistics.

JSON (``to_dict()``; every document has ``"schema"``; keys are only added under a new schema)
------------------------------------------------------------------------------------------------
``cnnkit.explain.conv/1``: ``source`` (str), ``layer`` (the engine's Conv2d repr), ``stride``,
``padding`` (int), ``x`` (C x H x W lists), ``padded`` (C x (H+2P) x (W+2P)), ``w``
(C x KH x KW), ``b`` (float), ``formula`` ({"height": str, "width": str}), ``output``
(OH x OW, the engine's), ``units``: [{``out``: [i, j], ``rows``: [start, stop], ``cols``:
[start, stop] (of the padded input, stop exclusive), ``region`` (str, e.g.
"x[:, 0:3, 2:5]"), ``inputs`` (C x KH x KW: the padded values read), ``channel_sums``
([sum(inputs[c] * w[c]) per channel]), ``sum`` (sum(channel_sums) + b, by hand), ``value``
(the engine's out[i, j])}].

``cnnkit.explain.shape/2``: ``I``, ``F``, ``S``, ``P`` (int), ``dilation`` (int), ``ceil``
(bool) (both added in /2), ``formula`` (str), ``span`` (I + 2P - d(F - 1) - 1), ``exact``
(float), ``possible`` (bool), ``output`` (int or null; with --floor the floored size, with
--ceil PyTorch's ceil_mode count), ``floor`` (bool), ``positions`` ([first padded pixel of each
unit], at most 64), ``unread`` (padded pixels after the last window), ``verdict`` (str, as
``cnnkit shape`` prints it), ``advice`` (str or null), ``fixes`` ([{``letter``, ``value``,
``output``}]).

``cnnkit.explain.sharing/1``: ``architecture`` (str), ``layers``: [{``index``, ``layer``,
``input_shape`` [C, H, W], ``output_shape`` [D, OH, OW], ``per_filter`` (F*F*C + 1),
``shared``, ``units`` (OH*OW), ``unshared``, ``shared_formula``, ``unshared_formula`` (str)}],
``shared``, ``unshared`` (totals, int).

``cnnkit.explain.sparse/1``: ``architecture``, ``index``, ``layer``, ``input_shape``,
``output_shape``, ``connections`` (F*F*C), ``fc_connections`` (H*W*C), ``fraction`` (float),
``units`` (OH*OW*D), ``layer_connections``, ``fc_layer_connections``, ``unit`` [i, j],
``rows``, ``cols`` ([first, last] input pixels read, may reach into the padding: < 0 or
>= size).

``cnnkit.explain.equivariance/1``: ``architecture``, ``input_shape``, ``axis`` ("width",
"height" or "both"), ``seed``, ``shifts`` ([k, ...]), ``rows``: [{``index``, ``layer``,
``jump`` [jh, jw], ``receptive_field`` [rh, rw], ``offset`` [oh, ow], ``output_shape``
[D, OH, OW], ``cells``: [{``shift`` [kh, kw], ``output_shift`` [mh, mw], ``exact`` (bool),
``error`` (float or null when no unit is far enough from the borders), ``compared`` (number of
output values compared)}]}], ``skipped`` ([str]: layers not measured).

``cnnkit.explain.layers/1``: ``architecture``, ``input_shape``, ``layers``: [{``index``,
``layer``, ``input_shape``, ``output_shape`` (per example), ``text``}].

``cnnkit.explain.backprop/1``: ``source``, ``layer``, ``stride``, ``padding``, ``x``, ``padded``,
``w``, ``b``, ``dy`` (OH x OW), ``weight`` [0, c, i, j], ``terms``: [{``out`` [p, q], ``dy``,
``input`` [c, row, col] (padded), ``x``, ``contribution``}], ``sum``, ``weight_grad`` (engine),
``bias_sum``, ``bias_grad`` (engine), ``grad`` (the engine's whole weight.grad[0], C x KH x KW).
``cnnkit.explain.residual/1``: ``source``, ``layer``, ``engine``, ``x``, ``body_out``, ``y``,
``dy``, ``body_dx``, ``shortcut_dx``, ``dx`` (H x W lists, one channel), ``matches`` (bool:
body_dx + shortcut_dx equals dx).

``cnnkit.explain.dropout/1``: ``layer``, ``p``, ``seed``, ``channel_wise`` (bool), ``scale``
(1/(1 - p)), ``x`` (C x H x W), ``mask`` (C x H x W, 1 = kept), ``output`` (the layer's, in
training mode), ``grad`` (the layer's backward of dy = 1), ``kept`` (int), ``samples``,
``mean`` (of the layer's outputs over ``samples`` forwards), ``largest_error`` (max
|mean - x|), ``eval_output`` (the layer's, in evaluation mode).

``cnnkit.explain.batchnorm/1``: ``source``, ``layer``, ``x`` (N x C x H x W), ``channel``,
``count`` (M), ``values`` (N x H x W), ``sum``, ``mean``, ``squares`` (sum of squared
deviations), ``var`` (biased), ``unbiased_var``, ``eps``, ``x_hat`` (by hand), ``weight``,
``bias``, ``y`` (the layer's), ``momentum``, ``running_mean``, ``running_var`` (the layer's
buffers after the step), ``eval_y`` (the layer's evaluation output).
"""

from cnnkit.explain._format import LINE, MAX_PRINT_CHANNELS, MAX_PRINT_SIDE, MAX_PRINT_UNITS
from cnnkit.explain._inputs import MAX_UNITS, load_values
from cnnkit.explain.backprop import (
    BackpropExplanation,
    BackpropTerm,
    explain_backprop,
    random_backprop_example,
)
from cnnkit.explain.batchnorm import BatchNormExplanation, explain_batchnorm
from cnnkit.explain.conv import (
    LECTURE_B,
    LECTURE_SOURCE,
    LECTURE_W,
    LECTURE_X,
    ConvExplanation,
    ConvUnit,
    explain_conv,
    random_conv_example,
    write_conv_png,
)
from cnnkit.explain.dropout import DropoutExplanation, explain_dropout
from cnnkit.explain.equivariance import (
    AXES,
    EQUIVARIANCE_DEFAULT,
    EquivarianceCell,
    EquivarianceExplanation,
    EquivarianceRow,
    explain_equivariance,
)
from cnnkit.explain.layers import LayerNote, LayersExplanation, explain_layers
from cnnkit.explain.residual import ResidualBackprop, explain_residual_backprop
from cnnkit.explain.shape import ShapeExplanation, explain_shape
from cnnkit.explain.sharing import (
    SharingExplanation,
    SharingLayer,
    SparseExplanation,
    explain_sharing,
    explain_sparse,
)

__all__ = [
    "AXES",
    "EQUIVARIANCE_DEFAULT",
    "LECTURE_B",
    "LECTURE_SOURCE",
    "LECTURE_W",
    "LECTURE_X",
    "LINE",
    "MAX_PRINT_CHANNELS",
    "MAX_PRINT_SIDE",
    "MAX_PRINT_UNITS",
    "MAX_UNITS",
    "BackpropExplanation",
    "BackpropTerm",
    "BatchNormExplanation",
    "ConvExplanation",
    "ConvUnit",
    "DropoutExplanation",
    "EquivarianceCell",
    "EquivarianceExplanation",
    "EquivarianceRow",
    "LayerNote",
    "LayersExplanation",
    "ResidualBackprop",
    "ShapeExplanation",
    "SharingExplanation",
    "SharingLayer",
    "SparseExplanation",
    "explain_backprop",
    "explain_batchnorm",
    "explain_conv",
    "explain_dropout",
    "explain_equivariance",
    "explain_layers",
    "explain_residual_backprop",
    "explain_shape",
    "explain_sharing",
    "explain_sparse",
    "load_values",
    "random_backprop_example",
    "random_conv_example",
    "write_conv_png",
]
