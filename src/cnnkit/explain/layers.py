"""``explain layers``: every layer of a network says, in a sentence or two, what it does.

Each layer explains itself (``Layer.explain(input_shape)``): a CONV works out the lecture's
formula and its parameters with and without sharing, a POOL its windows, a layer of the user's
own what its output shape and parameters are (or what it chose to write).
"""

from __future__ import annotations

from dataclasses import dataclass

from cnnkit.arch.convert import describe, live_steps, model_input, network_text
from cnnkit.arch.trace import trace
from cnnkit.display import TextDisplay
from cnnkit.errors import CnnkitError
from cnnkit.explain._inputs import _architecture
from cnnkit.nn.layer import Layer


@dataclass(frozen=True)
class LayerNote:
    index: int
    layer: str
    input_shape: tuple[int, ...]  # per example
    output_shape: tuple[int, ...]
    text: str


@dataclass(frozen=True, repr=False)
class LayersExplanation(TextDisplay):
    architecture: str
    input_shape: tuple[int, int, int]
    layers: tuple[LayerNote, ...]

    def to_dict(self) -> dict:
        return {
            "schema": "cnnkit.explain.layers/1",
            "architecture": self.architecture,
            "input_shape": list(self.input_shape),
            "layers": [
                {
                    "index": note.index,
                    "layer": note.layer,
                    "input_shape": list(note.input_shape),
                    "output_shape": list(note.output_shape),
                    "text": note.text,
                }
                for note in self.layers
            ],
        }

    def text(self) -> str:
        lines = [f"network: {self.architecture}", ""]
        for note in self.layers:
            lines.append(f"layer {note.index} {note.layer}")
            lines.append(f"  {note.text}")
        return "\n".join(lines)


def explain_layers(network="lecture", *, input_shape=None) -> LayersExplanation:
    """Each layer's own explanation, for an architecture string, built-in name, Architecture
    or live model (with ``input_shape`` (C, H, W) or its own)."""
    where = "explain layers"
    if isinstance(network, Layer):
        shape = model_input(network, input_shape, where="explain_layers")
        notes = tuple(
            _note(step, describe(step.layer, (1, *step.input_shape)))
            for step in live_steps(network, shape)
        )
        return LayersExplanation(network_text(network, shape), shape, notes)
    arch = _architecture(where, network, input_shape)
    traced = trace(arch)
    traced.raise_problems()
    notes = tuple(_note(step, step.spec.text()) for step in traced.steps)
    return LayersExplanation(arch.text(), arch.input.shape, notes)


def _note(step, text: str) -> LayerNote:
    """One layer's explanation of itself; its error names its position."""
    try:
        explained = step.layer.explain((1, *step.input_shape))
    except CnnkitError as error:
        raise error.located(step.index) from None
    return LayerNote(step.index, text, step.input_shape, step.output_shape, explained)
