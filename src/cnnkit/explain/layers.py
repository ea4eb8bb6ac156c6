"""``explain layers``: every layer of a network says, in a sentence or two, what it does.

Each layer explains itself (``Layer.explain(input_shape)``): a CONV works out the lecture's
formula and its parameters with and without sharing, a POOL its windows, a layer of the user's
own what its output shape and parameters are (or what it chose to write).
"""

from __future__ import annotations

from dataclasses import dataclass

from cnnkit.arch.convert import describe, network_text
from cnnkit.arch.trace import trace
from cnnkit.explain._inputs import _architecture
from cnnkit.nn.layer import Layer


@dataclass(frozen=True)
class LayerNote:
    index: int
    layer: str
    input_shape: tuple[int, ...]  # per example
    output_shape: tuple[int, ...]
    text: str


@dataclass(frozen=True)
class LayersExplanation:
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
        shape = tuple(input_shape or network.input_shape or ())
        layers = network.sequence()
        notes, current = [], (1, *shape)
        for index, layer in enumerate(layers):
            out = tuple(layer.output_shape(current))
            text = describe(layer, current)
            notes.append(LayerNote(index, text, current[1:], out[1:], layer.explain(current)))
            current = out
        return LayersExplanation(network_text(network, shape), shape, tuple(notes))
    arch = _architecture(where, network, input_shape)
    traced = trace(arch)
    traced.raise_problems()
    notes = tuple(
        LayerNote(
            step.index,
            step.spec.text(),
            step.input_shape,
            step.output_shape,
            step.layer.explain((1, *step.input_shape)),
        )
        for step in traced.steps
    )
    return LayersExplanation(arch.text(), arch.input.shape, notes)
