"""Architectures: strings in the lecture's notation, plain-data configurations, named networks.

- :mod:`.grammar`: text -> calls (columns for every message);
- :mod:`.specs`: :class:`Architecture` of :class:`LayerSpec` (any registered layer), ``parse``;
- :mod:`.trace`: shapes and problems without weights;
- :mod:`.convert`: ``build``/``from_spec`` and back (``architecture_of``, ``to_spec``);
- :mod:`.catalog` and :mod:`.named`: built-in networks and the lecture's.
"""

from cnnkit.arch.catalog import ARCHITECTURES
from cnnkit.arch.convert import architecture_of, build, from_spec, to_spec
from cnnkit.arch.grammar import SpecError
from cnnkit.arch.named import LECTURE_DEPTHS, lecture_network, lecture_spec
from cnnkit.arch.specs import Architecture, InputSpec, LayerSpec, parse
from cnnkit.arch.trace import Step, Trace, make_layer, trace, volume_text

__all__ = [
    "ARCHITECTURES",
    "LECTURE_DEPTHS",
    "Architecture",
    "InputSpec",
    "LayerSpec",
    "SpecError",
    "Step",
    "Trace",
    "architecture_of",
    "build",
    "from_spec",
    "lecture_network",
    "lecture_spec",
    "make_layer",
    "parse",
    "to_spec",
    "trace",
    "volume_text",
]
