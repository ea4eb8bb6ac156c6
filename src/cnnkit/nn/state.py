"""Loading state into a layer and converting its dtype: the arrays behind ``load_state_dict``
and ``to``, for any layer (they walk ``Layer._state_items``)."""

from __future__ import annotations

import numpy as np

from cnnkit.errors import ConfigError, DTypeError, ShapeError
from cnnkit.nn.checks import FLOAT_DTYPES


def load_state(layer, state) -> None:
    """Copy ``state``'s arrays into ``layer``'s parameters and buffers, by name."""
    if not hasattr(state, "keys"):
        raise DTypeError(
            f"load_state_dict: expected a mapping of names to arrays (a state_dict()), got "
            f"{type(state).__name__}"
        )
    own = {name: (value, kind) for name, value, kind in layer._state_items()}
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise ShapeError(
            f"load_state_dict: missing {missing or 'nothing'}, unexpected "
            f"{unexpected or 'nothing'}; was the state saved from another architecture?"
        )
    slots = dict(_buffer_slots(layer))
    problem = buffer_problems(slots, state)
    if problem is not None:
        raise ShapeError(f"load_state_dict: {problem}")
    for name, (target, kind) in own.items():
        array = target.data if kind == "parameter" else np.asarray(target)
        value = np.asarray(state[name])
        if value.shape != array.shape:
            raise ShapeError(
                f"load_state_dict: {name} has shape {value.shape}, the model expects {array.shape}"
            )
        if kind == "parameter" or _writable_array(target):
            array[...] = value.astype(array.dtype, copy=False)
        else:  # a buffer held as a number (count = count + 1): replaced by the loaded value
            module, attribute = slots[name]
            setattr(module, attribute, value.astype(array.dtype, copy=True))


def buffer_problems(slots: dict, state) -> str | None:
    """The first buffer value its layer refuses (``Layer.buffer_problem``: a negative running
    variance), as ``name: why``; None when every one is acceptable."""
    for name, (module, attribute) in slots.items():
        if name in state:
            problem = module.buffer_problem(attribute, np.asarray(state[name]))
            if problem is not None:
                return f"{name} {problem}"
    return None


def buffer_slots(layer) -> dict:
    """{state_dict name: (module, attribute)} of every buffer of ``layer``."""
    return dict(_buffer_slots(layer))


def _writable_array(value) -> bool:
    return isinstance(value, np.ndarray) and value.flags.writeable


def _buffer_slots(layer, prefix: str = ""):
    """(state_dict name, module, attribute) of every buffer."""
    for name, _ in layer._own_buffers():
        yield prefix + name, (layer, name)
    for name, child in layer.named_children():
        yield from _buffer_slots(child, f"{prefix}{name}.")


def buffer_value(layer, name: str, value):
    """What ``register_buffer(name, value)`` keeps: an array (a number becomes a 0-d array);
    anything else (a string, a dict) is refused, since checkpoints hold arrays only."""
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return value
    array = np.asarray(value) if isinstance(value, int | float | bool | list | tuple) else None
    if array is None or array.dtype.kind not in "biuf":
        raise ConfigError(
            f"{type(layer).__name__}.register_buffer({name!r}, ...): a buffer is an array or "
            f"a number, got {type(value).__name__}; keep other settings as plain attributes "
            "(get_config() returns them)"
        )
    return array


def convert(layer, dtype) -> None:
    """Every parameter and floating buffer of ``layer`` and its children as ``dtype``."""
    resolved = np.dtype(dtype) if _is_dtype(dtype) else None
    if resolved not in FLOAT_DTYPES:
        raise DTypeError(
            f"{type(layer).__name__}.to: dtype must be float32 or float64, got {dtype!r}; "
            "use np.float32 or np.float64"
        )
    for module in layer.modules():
        module.dtype = resolved
        for _, parameter in module._own_parameters():
            parameter.data = parameter.data.astype(resolved)
            parameter.grad = np.zeros_like(parameter.data)
        for name, buffer in list(module._own_buffers()):
            if np.asarray(buffer).dtype.kind == "f":
                setattr(module, name, np.asarray(buffer).astype(resolved))


def _is_dtype(value) -> bool:
    if value is None:
        return False
    try:
        np.dtype(value)
    except TypeError:
        return False
    return True


# -- random generators: a layer's own, named, saved with training checkpoints --------------------


def generator_value(layer, name: str, generator):
    """What ``register_generator(name, generator)`` keeps: a numpy Generator on PCG64, whose
    ``bit_generator.state`` is plain JSON numbers a checkpoint header can hold and check."""
    if not isinstance(generator, np.random.Generator) or not isinstance(
        generator.bit_generator, np.random.PCG64
    ):
        got = type(getattr(generator, "bit_generator", generator)).__name__
        raise ConfigError(
            f"{type(layer).__name__}.register_generator({name!r}, ...): expected a numpy "
            f"Generator on PCG64, got {got}; use np.random.default_rng(seed), or "
            "cnnkit.nn.state.derive_generator(rng) for a generator of the layer's own"
        )
    return generator


def derive_generator(rng, owner: str = "layer") -> np.random.Generator:
    """A generator of a layer's own, from ``rng``: a numpy Generator, an int seed or None.

    From a Generator, a child of its SeedSequence (``seed_seq.spawn(1)[0]``, as
    ``Generator.spawn`` does): the parent's stream is not advanced, so layers built after this
    one draw the same weights whether it is there or not, and the same parent (the same build
    seed) gives the same children in the same order. A generator without a SeedSequence (one
    made from a legacy seed) is asked for four 63-bit draws instead (which advance it). An int
    is a seed (``np.random.default_rng(seed)``); None is a fresh, unpredictable generator.
    The result is always PCG64, whatever the parent's bit generator.
    """
    if rng is None:
        return np.random.Generator(np.random.PCG64())
    if isinstance(rng, int | np.integer) and not isinstance(rng, bool):
        if rng < 0:
            raise ConfigError(f"{owner}: an rng seed must be >= 0, got {rng}; use rng=0")
        return np.random.Generator(np.random.PCG64(int(rng)))
    if isinstance(rng, np.random.Generator):
        seed = getattr(rng.bit_generator, "seed_seq", None)
        if isinstance(seed, np.random.SeedSequence):
            return np.random.Generator(np.random.PCG64(seed.spawn(1)[0]))
        return np.random.Generator(np.random.PCG64(rng.integers(2**63, size=4, dtype=np.uint64)))
    raise DTypeError(
        f"{owner}: rng must be a numpy.random.Generator, an int seed or None, got "
        f"{type(rng).__name__}; use rng=np.random.default_rng(0) or rng=0"
    )


def generator_items(layer, prefix: str = "", seen: set | None = None):
    """(name, generator) of every registered generator, each module's own first, then its
    children's (``"3.rng"``, ``"5.body.2.rng"``); a generator reached twice (a layer used
    twice) once, under its first name."""
    seen = set() if seen is None else seen
    for name in layer.__dict__.get("_generator_names", ()):
        generator = getattr(layer, name)
        if id(generator) not in seen:
            seen.add(id(generator))
            yield prefix + name, generator
    for name, child in layer.named_children():
        yield from generator_items(child, f"{prefix}{name}.", seen)


def generator_states(layer) -> dict[str, dict]:
    """``{name: bit_generator.state}`` of every registered generator of ``layer`` (JSON)."""
    return {name: generator.bit_generator.state for name, generator in generator_items(layer)}


def load_generator_states(layer, states) -> None:
    """Set the generators of ``layer`` to ``states`` (as :func:`generator_states` gives):
    the names must be exactly the layer's, each state a PCG64 state; nothing changes unless
    all of them fit."""
    own = dict(generator_items(layer))
    if not hasattr(states, "keys") or set(states) != set(own):
        names = sorted(states) if hasattr(states, "keys") else type(states).__name__
        raise ConfigError(
            f"load_generator_states: got generators {names}, the model has {sorted(own)}; "
            "were the states saved from another architecture?"
        )
    fresh = {}
    for name, state in states.items():
        fresh[name] = np.random.PCG64()
        try:
            fresh[name].state = state
        except (TypeError, ValueError, KeyError, OverflowError) as error:
            raise ConfigError(
                f"load_generator_states: {name} is not the state of a PCG64 generator "
                f"({error}); pass what generator_states() returned"
            ) from None
    for name, bit_generator in fresh.items():
        own[name].bit_generator.state = bit_generator.state
