"""A layer carries its own conversion: a user's registered layer with the hooks converts both
ways; one without them, or with hooks that do not fit, is refused in one line naming it."""

import gc
import subprocess
import sys

import layers
import numpy as np
import pytest

import cnnkit
from cnnkit.errors import ConfigError, StateError
from cnnkit.nn import registry

torch = pytest.importorskip("torch")
from torch_parity import eval_errors, step_errors  # noqa: E402


class TorchScale(torch.nn.Module):
    """x * weight[c], the torch side of the user's layer below."""

    def __init__(self, channels):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(channels))

    def forward(self, x):
        return x * self.weight.view(1, -1, 1, 1)


@pytest.fixture
def scale_layer():
    @cnnkit.register_layer("TESTSCALE")
    class Scale(layers.Scale):  # tests/layers.py's, with the torch hooks
        torch_classes = (TorchScale,)

        def torch_module(self, convert):
            return convert.torch_class(self)(self.weight.data.shape[0])

        @classmethod
        def from_torch_module(cls, module, convert):
            return cls()

    yield Scale
    registry.unregister("TESTSCALE")


SPEC = "INPUT(2x6x6) - CONV(D=3, F=3, P=1) - TESTSCALE(init=0.5) - RELU - FC(4)"


def test_a_users_layer_with_the_hooks_converts_both_ways(scale_layer):
    model = cnnkit.from_spec(SPEC, rng=np.random.default_rng(0))
    model[1].weight.data[:] = [0.5, -1.5, 2.0]
    module = cnnkit.to_torch(model)
    assert type(module[1]) is TorchScale
    assert module[1].weight.tolist() == [0.5, -1.5, 2.0]
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 2, 6, 6)).astype(np.float32)
    assert eval_errors(model, module, x) <= 1e-6
    errors = step_errors(model, module, x, rng.integers(0, 4, 5))
    assert max(errors.values()) <= 1e-5
    back = cnnkit.from_torch(module, (2, 6, 6))
    assert type(back[1]) is scale_layer and back[1].weight.data.tolist() == [0.5, -1.5, 2.0]
    assert eval_errors(back, module, x) <= 1e-6


def test_a_layer_without_the_hooks_is_refused_naming_it():
    @cnnkit.register_layer("TESTNOHOOKS")
    class NoHooks(cnnkit.Layer):
        def forward(self, x):
            return x

        def backward(self, dy):
            return dy

    try:
        model = cnnkit.from_spec("INPUT(1x4x4) - CONV(D=2, F=3) - RES[TESTNOHOOKS] - FC(2)")
        with pytest.raises(
            ConfigError,
            match=r"^layer 1\.body\.0 \(NoHooks\): no torch exporter; give the class a "
            r"torch_module\(\) method$",
        ):
            cnnkit.to_torch(model)
    finally:
        registry.unregister("TESTNOHOOKS")


def test_a_subclass_computing_otherwise_is_not_exported_as_its_parent():
    class Doubled(cnnkit.Conv2d):
        def forward(self, x):
            return 2 * super().forward(x)

    model = cnnkit.Sequential(cnnkit.ReLU(), Doubled(1, 1, 1, rng=np.random.default_rng(0)))
    with pytest.raises(
        ConfigError,
        match=r"^layer 1 \(Doubled\): it defines its own forward\(\) but its torch_module\(\) "
        r"comes from Conv2d, which computes something else; give Doubled its own",
    ):
        cnnkit.to_torch(model)


def test_hooks_that_do_not_fit_are_refused_naming_the_layer(scale_layer, monkeypatch):
    model = cnnkit.from_spec(SPEC, rng=np.random.default_rng(0))
    monkeypatch.setattr(scale_layer, "torch_module", lambda self, convert: convert.nn.ReLU())
    with pytest.raises(
        ConfigError,
        match=r"^layer 1 \(Scale\): its torch module's state_dict keys are \[\], cnnkit's are "
        r"\['weight'\]; make torch_module\(\) give a module with the layer's parameter",
    ):
        cnnkit.to_torch(model)
    monkeypatch.setattr(scale_layer, "torch_module", lambda self, convert: "a module")
    with pytest.raises(ConfigError, match=r"^layer 1 \(Scale\): torch_module\(\) returned str"):
        cnnkit.to_torch(model)
    monkeypatch.setattr(scale_layer, "torch_module", lambda self, convert: 1 / 0)
    with pytest.raises(
        ConfigError,
        match=r"^layer 1 \(Scale\): its torch_module\(\) failed \(ZeroDivisionError: division by "
        r"zero\); fix Scale\.torch_module$",
    ):
        cnnkit.to_torch(model)
    monkeypatch.delattr(scale_layer, "from_torch_module")
    module = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3, padding=1), TorchScale(3))
    with pytest.raises(
        ConfigError,
        match=r"^TorchScale at 1: Scale takes TorchScale but has no from_torch_module\(\); give "
        r"Scale a from_torch_module classmethod$",
    ):
        cnnkit.from_torch(module, (2, 6, 6))


def test_two_classes_claiming_one_torch_class_are_refused_naming_both(scale_layer):
    @cnnkit.register_layer("TESTSCALETWO")
    class OtherScale(scale_layer):
        torch_classes = (TorchScale,)

    try:
        with pytest.raises(ConfigError, match=r"both take .*TorchScale \(torch_classes\)"):
            cnnkit.from_torch(torch.nn.Sequential(torch.nn.ReLU()), (1, 2, 2))
    finally:
        registry.unregister("TESTSCALETWO")
        del OtherScale
        gc.collect()


def test_an_unbuilt_model_is_refused_naming_the_layer():
    class Lazy(cnnkit.Layer):
        def build(self, input_shape):
            self.weight = cnnkit.Parameter(np.ones(input_shape[1], self.dtype), "weight")

        def forward(self, x):
            return x

    with pytest.raises(StateError, match=r"^Lazy\(\) is not built yet"):
        cnnkit.to_torch(cnnkit.Sequential(Lazy()))


def test_without_torch_the_error_says_how_to_install_it(monkeypatch):
    model = cnnkit.Sequential(cnnkit.ReLU())
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now raises ImportError
    with pytest.raises(
        ConfigError,
        match=r"^to_torch needs PyTorch, which is not installed; pip install "
        r"cnnkit\[torch\]$",
    ):
        cnnkit.to_torch(model)
    with pytest.raises(ConfigError, match=r"^from_torch needs PyTorch"):
        cnnkit.from_torch(object(), (1, 2, 2))


def test_importing_cnnkit_and_its_interop_imports_no_torch():
    code = (
        "import sys, cnnkit, cnnkit.interop; cnnkit.to_torch; cnnkit.from_torch; "
        "import cnnkit.interop.torch_modules, cnnkit.interop.torch_program, cnnkit.cli.export; "
        "assert 'torch' not in sys.modules and 'onnx' not in sys.modules, sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
