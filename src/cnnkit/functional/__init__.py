"""Stateless forward/backward pairs on arrays, in two engines with one contract.

:mod:`cnnkit.functional.reference` is the readable one (the oracle, what ``cnnkit explain``
points to); :mod:`cnnkit.functional.fast` is the tuned default. :mod:`.engine` chooses between
them; the layers in :mod:`cnnkit.nn` call whichever is selected. Cross-entropy
(:mod:`.loss`) is shared by both.
"""

from cnnkit.functional.engine import ENGINES, current, engine_name, use_engine

__all__ = ["ENGINES", "current", "engine_name", "use_engine"]
