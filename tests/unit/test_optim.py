"""Optimizers follow PyTorch's update rules; state dicts resume bit for bit; schedules follow
torch.optim.lr_scheduler's formulas."""

import dataclasses
import json
import math

import numpy as np
import pytest

from cnnkit import Parameter
from cnnkit.errors import ConfigError, DTypeError, ShapeError
from cnnkit.optim import (
    SGD,
    Adam,
    AdamW,
    ConstantLR,
    CosineLR,
    Optimizer,
    StepLR,
    WarmupLR,
    make_optimizer,
    make_schedule,
)

SHAPES = [(3, 4), (5,), (2, 3, 2, 2)]

# (label, ours, torch's class name, keyword arguments both accept)
CONFIGS = [
    ("sgd", SGD, "SGD", {"lr": 0.1}),
    ("sgd-momentum", SGD, "SGD", {"lr": 0.1, "momentum": 0.9}),
    ("sgd-decay", SGD, "SGD", {"lr": 0.1, "momentum": 0.8, "weight_decay": 1e-2}),
    ("sgd-nesterov", SGD, "SGD", {"lr": 0.1, "momentum": 0.9, "nesterov": True}),
    (
        "sgd-nesterov-decay",
        SGD,
        "SGD",
        {"lr": 0.05, "momentum": 0.9, "weight_decay": 1e-2, "nesterov": True},
    ),
    ("adam", Adam, "Adam", {"lr": 0.01}),
    ("adam-decay", Adam, "Adam", {"lr": 0.01, "betas": (0.8, 0.99), "weight_decay": 0.1}),
    ("adam-amsgrad", Adam, "Adam", {"lr": 0.01, "eps": 1e-6, "amsgrad": True}),
    ("adamw", AdamW, "AdamW", {"lr": 0.01}),
    ("adamw-amsgrad", AdamW, "AdamW", {"lr": 0.01, "weight_decay": 0.1, "amsgrad": True}),
]
IDS = [config[0] for config in CONFIGS]


def make_parameters(dtype, seed=0):
    rng = np.random.default_rng(seed)
    return [
        Parameter(rng.standard_normal(shape).astype(dtype), f"p{index}")
        for index, shape in enumerate(SHAPES)
    ]


def gradients(rng, dtype):
    """Random gradients whose scale changes from step to step (so amsgrad's max matters)."""
    scale = rng.uniform(0.1, 3.0)
    return [(scale * rng.standard_normal(shape)).astype(dtype) for shape in SHAPES]


def run(optimizer, parameters, rng, steps, dtype, schedule=None, start=0):
    for step in range(start, start + steps):
        if schedule is not None:
            optimizer.lr = schedule(step)
        for parameter, grad in zip(parameters, gradients(rng, dtype), strict=True):
            parameter.grad[...] = grad
        optimizer.step()


# atol: parameters are O(1); where an update cancels one to ~1e-4, both libraries keep only the
# absolute precision of the dtype.
@pytest.mark.parametrize(
    ("dtype", "rtol", "atol"), [(np.float64, 1e-12, 1e-14), (np.float32, 1e-5, 1e-6)]
)
@pytest.mark.parametrize(("label", "ours", "theirs", "kwargs"), CONFIGS, ids=IDS)
def test_matches_torch(label, ours, theirs, kwargs, dtype, rtol, atol):
    """Same start, same gradients, an lr changed before every step: same parameters."""
    torch = pytest.importorskip("torch")
    parameters = make_parameters(dtype)
    reference = [torch.nn.Parameter(torch.tensor(p.data.copy())) for p in parameters]
    optimizer = ours(parameters, **kwargs)
    torch_optimizer = getattr(torch.optim, theirs)(reference, **kwargs)
    schedule = WarmupLR(CosineLR(kwargs["lr"], total_steps=20), warmup_steps=3)
    rng = np.random.default_rng(1)
    for step in range(12):
        optimizer.lr = schedule(step)
        torch_optimizer.param_groups[0]["lr"] = schedule(step)
        for parameter, tensor, grad in zip(
            parameters, reference, gradients(rng, dtype), strict=True
        ):
            parameter.grad[...] = grad
            tensor.grad = torch.tensor(grad)
        optimizer.step()
        torch_optimizer.step()
        for index, (parameter, tensor) in enumerate(zip(parameters, reference, strict=True)):
            np.testing.assert_allclose(
                parameter.data,
                tensor.detach().numpy(),
                rtol=rtol,
                atol=atol,
                err_msg=f"{label} {np.dtype(dtype)}: parameter {index} after step {step + 1}",
            )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("label", "ours", "theirs", "kwargs"), CONFIGS, ids=IDS)
def test_dtype_is_kept(label, ours, theirs, kwargs, dtype):
    parameters = make_parameters(dtype)
    arrays = [p.data for p in parameters]
    optimizer = ours(parameters, **kwargs)
    run(optimizer, parameters, np.random.default_rng(1), 3, dtype)
    for parameter, array in zip(parameters, arrays, strict=True):
        assert parameter.data is array  # updated in place
        assert parameter.data.dtype == dtype
    for name, buffers in optimizer.state.items():
        assert all(buffer.dtype == dtype for buffer in buffers), name


def save_and_reload(state: dict) -> dict:
    """What a checkpoint does: arrays into an .npz (no pickles), the rest into JSON."""
    import io

    arrays = {key: value for key, value in state.items() if isinstance(value, np.ndarray)}
    header = json.dumps({key: value for key, value in state.items() if key not in arrays})
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    buffer.seek(0)
    with np.load(buffer, allow_pickle=False) as stored:
        return {**json.loads(header), **{key: stored[key] for key in stored.files}}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("label", "ours", "theirs", "kwargs"), CONFIGS, ids=IDS)
def test_resume_is_bit_identical(label, ours, theirs, kwargs, dtype):
    schedule = CosineLR(kwargs["lr"], total_steps=10)
    parameters = make_parameters(dtype)
    optimizer = ours(parameters, **kwargs)
    rng = np.random.default_rng(2)
    run(optimizer, parameters, rng, 5, dtype, schedule)
    state = optimizer.state_dict()
    saved = [p.data.copy() for p in parameters]
    rng_state = rng.bit_generator.state
    run(optimizer, parameters, rng, 5, dtype, schedule, start=5)

    resumed = [Parameter(array.copy()) for array in saved]
    fresh = ours(resumed, **kwargs)
    fresh.load_state_dict(save_and_reload(state))
    assert fresh.steps == 5
    rng.bit_generator.state = rng_state
    run(fresh, resumed, rng, 5, dtype, schedule, start=5)
    for parameter, again in zip(parameters, resumed, strict=True):
        np.testing.assert_array_equal(parameter.data, again.data)
    assert fresh.state_dict().keys() == optimizer.state_dict().keys()


def test_state_dict_format():
    parameters = make_parameters(np.float32)
    optimizer = Adam(parameters, lr=0.01, amsgrad=True)
    run(optimizer, parameters, np.random.default_rng(0), 2, np.float32)
    state = optimizer.state_dict()
    scalars = {key: value for key, value in state.items() if not isinstance(value, np.ndarray)}
    assert scalars == {
        "type": "Adam",
        "step": 2,
        "num_parameters": 3,
        "lr": 0.01,
        "beta1": 0.9,
        "beta2": 0.999,
        "eps": 1e-8,
        "weight_decay": 0.0,
        "amsgrad": True,
    }
    arrays = sorted(key for key in state if key not in scalars)
    assert arrays == sorted(
        f"{name}.{i}" for name in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq") for i in range(3)
    )
    assert state["exp_avg_sq.2"].shape == SHAPES[2]
    assert state["exp_avg_sq.2"].dtype == np.float32
    # a copy: stepping on leaves the saved state as it was
    before = state["exp_avg.0"].copy()
    run(optimizer, parameters, np.random.default_rng(1), 1, np.float32)
    np.testing.assert_array_equal(state["exp_avg.0"], before)

    sgd = SGD(parameters, lr=0.1, momentum=0.9, nesterov=True)
    assert set(sgd.state_dict()) == {
        "type", "step", "num_parameters", "lr", "momentum", "weight_decay", "nesterov",
        "momentum_buffer.0", "momentum_buffer.1", "momentum_buffer.2",
    }  # fmt: skip
    assert "momentum_buffer.0" not in SGD(parameters, lr=0.1).state_dict()


def test_load_restores_hyperparameters_like_torch():
    parameters = make_parameters(np.float64)
    source = AdamW(parameters, lr=0.5, betas=(0.5, 0.6), eps=1e-3, weight_decay=0.2, amsgrad=True)
    target = AdamW(make_parameters(np.float64))
    target.load_state_dict(source.state_dict())
    assert (target.lr, target.betas, target.eps, target.weight_decay, target.amsgrad) == (
        0.5, (0.5, 0.6), 1e-3, 0.2, True,
    )  # fmt: skip
    assert set(target.state) == {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"}


def test_state_arrays_are_not_shared_after_load():
    parameters = make_parameters(np.float64)
    state = SGD(parameters, lr=0.1, momentum=0.9).state_dict()
    optimizer = SGD(parameters, lr=0.1, momentum=0.9)
    optimizer.load_state_dict(state)
    run(optimizer, parameters, np.random.default_rng(0), 2, np.float64)
    assert not state["momentum_buffer.0"].any()


def adam_state(**changes):
    state = Adam(make_parameters(np.float32)).state_dict()
    state.update(changes)
    return state


@pytest.mark.parametrize(
    ("state", "error", "match"),
    [
        (
            [("type", "Adam")],
            DTypeError,
            r"^Adam\.load_state_dict: expected a dict from state_dict\(\), got list$",
        ),
        (
            SGD(make_parameters(np.float32), lr=0.1).state_dict(),
            ConfigError,
            r"^Adam\.load_state_dict: the state was saved by SGD, not Adam; "
            r"build SGD\(\.\.\.\) to resume it$",
        ),
        (
            {k: v for k, v in adam_state().items() if k != "type"},
            ConfigError,
            r"^Adam\.load_state_dict: the state has no 'type' entry; pass a dict made by "
            r"Adam\.state_dict\(\)$",
        ),
        (
            {k: v for k, v in adam_state().items() if k != "beta2"},
            ConfigError,
            r"^Adam\.load_state_dict: the state has no 'beta2' entry; pass a dict made by "
            r"Adam\.state_dict\(\)$",
        ),
        (
            adam_state(num_parameters=4),
            ConfigError,
            r"^Adam\.load_state_dict: the state holds 4 parameters, this optimizer has 3; build "
            r"the optimizer from the same model's parameters$",
        ),
        (
            adam_state(**{"exp_avg.1": np.zeros(6, np.float32)}),
            ShapeError,
            r"^Adam\.load_state_dict: 'exp_avg\.1' has shape \(6,\) but parameter 1 \(p1\) has "
            r"shape \(5,\); the state is from a different model$",
        ),
        (
            adam_state(**{"exp_avg_sq.0": np.zeros((3, 4))}),
            DTypeError,
            r"^Adam\.load_state_dict: 'exp_avg_sq\.0' is float64 but parameter 0 \(p0\) is "
            r"float32; build the model with the dtype it was trained with$",
        ),
        (
            {k: v for k, v in adam_state().items() if k != "exp_avg_sq.2"},
            ConfigError,
            r"^Adam\.load_state_dict: the state has no 'exp_avg_sq\.2' entry for parameter 2",
        ),
        (
            adam_state(amsgrad=True),
            ConfigError,
            r"^Adam\.load_state_dict: the state has no 'max_exp_avg_sq\.0' entry",
        ),
        (
            adam_state(**{"max_exp_avg_sq.0": np.zeros((3, 4), np.float32)}),
            ConfigError,
            r"^Adam\.load_state_dict: unexpected entries \['max_exp_avg_sq\.0'\] for Adam with "
            r"beta1=0\.9, beta2=0\.999, eps=1e-08, weight_decay=0\.0, amsgrad=False; ",
        ),
        (
            adam_state(beta1=1.0),
            ConfigError,
            r"^Adam\.load_state_dict: beta1 must be in \[0, 1\), got 1\.0$",
        ),
        (adam_state(step=-1), ConfigError, r"^Adam\.load_state_dict: step must be >= 0, got -1$"),
        (
            adam_state(lr="fast"),
            DTypeError,
            r"^Adam\.load_state_dict: lr must be a number, got 'fast'$",
        ),
    ],
)
def test_load_state_dict_errors(state, error, match):
    parameters = make_parameters(np.float32)
    optimizer = Adam(parameters, lr=0.5)
    optimizer.steps = 7
    with pytest.raises(error, match=match):
        optimizer.load_state_dict(state)
    # refused as a whole: nothing changed
    assert (optimizer.steps, optimizer.lr, optimizer.amsgrad) == (7, 0.5, False)
    assert set(optimizer.state) == {"exp_avg", "exp_avg_sq"}


def test_load_accepts_numpy_scalars():
    state = {
        key: (np.asarray(value) if isinstance(value, bool | int | float | str) else value)
        for key, value in Adam(make_parameters(np.float32), lr=0.25).state_dict().items()
    }
    optimizer = Adam(make_parameters(np.float32))
    optimizer.load_state_dict(state)
    assert optimizer.lr == 0.25 and type(optimizer.lr) is float
    assert optimizer.amsgrad is False and type(optimizer.steps) is int


@pytest.mark.parametrize(
    ("build", "error", "match"),
    [
        (lambda p: SGD([], lr=0.1), ConfigError, r"^SGD: got no parameters to optimise"),
        (
            lambda p: SGD([p[0], "w"], lr=0.1),
            DTypeError,
            r"^SGD: item 1 of parameters is str, not a cnnkit Parameter; pass model\.parameters",
        ),
        (
            lambda p: Adam([p[0], p[1], p[0]]),
            ConfigError,
            r"^Adam: a parameter appears more than once, so it would be updated twice per step",
        ),
        (lambda p: SGD(p, lr=-0.1), ConfigError, r"^SGD: lr must be a finite number >= 0, got"),
        (lambda p: SGD(p, lr=math.nan), ConfigError, r"^SGD: lr must be a finite number >= 0"),
        (lambda p: SGD(p, lr=0.1, momentum=-1), ConfigError, r"^SGD: momentum must be a finite"),
        (
            lambda p: SGD(p, lr=0.1, nesterov=True),
            ConfigError,
            r"^SGD: nesterov=True needs momentum > 0, got momentum=0\.0$",
        ),
        (lambda p: SGD(p, lr=0.1, nesterov=1), DTypeError, r"^SGD: nesterov must be True or Fal"),
        (
            lambda p: Adam(p, betas=0.9),
            ConfigError,
            r"^Adam: betas must be a pair \(beta1, beta2\), got 0\.9$",
        ),
        (lambda p: AdamW(p, betas=(0.9, -0.1)), ConfigError, r"^AdamW: beta2 must be in \[0, 1\)"),
        (lambda p: Adam(p, eps=-1e-8), ConfigError, r"^Adam: eps must be a finite number >= 0"),
        (lambda p: AdamW(p, weight_decay=-1), ConfigError, r"^AdamW: weight_decay must be a fin"),
        (lambda p: Adam(p, amsgrad="yes"), DTypeError, r"^Adam: amsgrad must be True or False"),
    ],
)
def test_constructor_errors(build, error, match):
    with pytest.raises(error, match=match):
        build(make_parameters(np.float32))


def test_lr_is_settable_and_checked():
    optimizer = SGD(make_parameters(np.float32), lr=0.1)
    optimizer.lr = np.float64(0.25)
    assert optimizer.lr == 0.25 and type(optimizer.lr) is float  # no float64 promotion later
    with pytest.raises(ConfigError, match=r"^SGD: lr must be a finite number >= 0, got inf$"):
        optimizer.lr = math.inf
    assert optimizer.lr == 0.25


def test_zero_grad_and_repr():
    parameters = make_parameters(np.float32)
    optimizer = AdamW(parameters, lr=0.01)
    run(optimizer, parameters, np.random.default_rng(0), 1, np.float32)
    optimizer.zero_grad()
    assert not any(p.grad.any() for p in parameters)
    assert isinstance(optimizer, Optimizer)
    assert repr(optimizer) == (
        "AdamW(3 parameters, lr=0.01, beta1=0.9, beta2=0.999, eps=1e-08, weight_decay=0.01, "
        "amsgrad=False)"
    )


def test_make_optimizer():
    parameters = make_parameters(np.float32)
    sgd = make_optimizer("sgd", parameters, lr=0.1, nesterov=True, weight_decay=1e-4)
    assert (type(sgd), sgd.lr, sgd.momentum, sgd.nesterov, sgd.weight_decay) == (
        SGD, 0.1, 0.9, True, 1e-4,
    )  # fmt: skip
    adam = make_optimizer("adam", parameters, lr=1e-3)
    assert type(adam) is Adam and adam.weight_decay == 0.0
    adamw = make_optimizer("adamw", parameters, lr=1e-3, weight_decay=0.05)
    assert type(adamw) is AdamW and adamw.weight_decay == 0.05
    with pytest.raises(
        ConfigError, match=r"^make_optimizer: unknown optimizer 'rmsprop'; choose one of sgd, adam"
    ):
        make_optimizer("rmsprop", parameters, lr=0.1)
    with pytest.raises(
        ConfigError, match=r"^make_optimizer: nesterov=True applies to 'sgd' only, not 'adam'"
    ):
        make_optimizer("adam", parameters, lr=0.1, nesterov=True)


# ---------------------------------------------------------------------------------------------
# schedules


def torch_lrs(build, steps, lr):
    """The lr torch's scheduler gives at steps 0 .. steps-1 (read before each optimizer step)."""
    torch = pytest.importorskip("torch")
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    scheduler = build(torch.optim.lr_scheduler, optimizer)
    lrs = []
    for _ in range(steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return np.array(lrs)


def warmup(S, optimizer, factor, warmup_steps, main):
    return S.SequentialLR(
        optimizer,
        [S.LinearLR(optimizer, factor, total_iters=warmup_steps), main],
        milestones=[warmup_steps],
    )


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (StepLR(0.1, 30), lambda S, o: S.StepLR(o, 30)),
        (StepLR(0.1, 7, gamma=0.8), lambda S, o: S.StepLR(o, 7, gamma=0.8)),
        (CosineLR(0.1, 300), lambda S, o: S.CosineAnnealingLR(o, 300)),
        (CosineLR(0.1, 300, min_lr=1e-3), lambda S, o: S.CosineAnnealingLR(o, 300, eta_min=1e-3)),
        (
            WarmupLR(CosineLR(0.1, 280), 20),
            lambda S, o: warmup(S, o, 1 / 3, 20, S.CosineAnnealingLR(o, 280)),
        ),
        (
            WarmupLR(StepLR(0.1, 50, 0.5), 10, start_factor=0.01),
            lambda S, o: warmup(S, o, 0.01, 10, S.StepLR(o, 50, 0.5)),
        ),
        (
            make_schedule("cosine", 0.1, total_steps=300, warmup_steps=25),
            lambda S, o: warmup(S, o, 1 / 3, 25, S.CosineAnnealingLR(o, 275)),
        ),
    ],
    ids=["step", "step-gamma", "cosine", "cosine-min", "warmup-cosine", "warmup-step", "make"],
)
def test_schedules_match_torch(ours, theirs):
    expected = torch_lrs(theirs, 301, 0.1)
    np.testing.assert_allclose([ours(step) for step in range(301)], expected, rtol=1e-9, atol=1e-15)


def test_schedule_values():
    assert ConstantLR(0.1)(0) == ConstantLR(0.1)(10**6) == 0.1
    cosine = CosineLR(0.1, 100, min_lr=0.01)
    assert cosine(0) == 0.1 and cosine(100) == 0.01
    assert cosine(150) == cosine(10**6) == 0.01  # holds at min_lr after total_steps
    assert math.isclose(cosine(50), 0.055)
    assert StepLR(1.0, 10, 0.5)(29) == 0.25
    # pure functions of the step: order of calls does not matter
    schedule = WarmupLR(StepLR(0.1, 10), 5, start_factor=0.2)
    assert [schedule(s) for s in (7, 0, 7)] == [schedule(7), 0.020000000000000004, schedule(7)]
    assert schedule(5) == 0.1 and schedule(15) == pytest.approx(0.01)
    with pytest.raises(dataclasses.FrozenInstanceError):
        schedule.warmup_steps = 3


def test_make_schedule():
    assert make_schedule("constant", 0.1, total_steps=10) == ConstantLR(0.1)
    assert make_schedule("step", 0.1, total_steps=10, step_size=3, gamma=0.5) == StepLR(0.1, 3, 0.5)
    assert make_schedule("cosine", 0.1, total_steps=10) == CosineLR(0.1, 10)
    schedule = make_schedule("cosine", 0.1, total_steps=10, warmup_steps=4)
    assert schedule == WarmupLR(CosineLR(0.1, 6), 4)
    assert schedule(10) == 0.0
    assert make_schedule("constant", 0.1, total_steps=10, warmup_steps=2)(1) == pytest.approx(
        0.1 * (1 / 3 + 2 / 3 / 2)
    )


@pytest.mark.parametrize(
    ("build", "error", "match"),
    [
        (lambda: ConstantLR(-1), ConfigError, r"^ConstantLR: lr must be a finite number >= 0, got"),
        (lambda: ConstantLR(0.1)(-1), ConfigError, r"^ConstantLR: step must be >= 0, got -1$"),
        (lambda: CosineLR(0.1, 10)(2.0), DTypeError, r"^CosineLR: step must be an int, got 2\.0$"),
        (lambda: StepLR(0.1, 0), ConfigError, r"^StepLR: step_size must be >= 1, got 0$"),
        (lambda: StepLR(0.1, 5, gamma=0), ConfigError, r"^StepLR: gamma must be > 0, got 0\.0"),
        (lambda: CosineLR(0.1, 0), ConfigError, r"^CosineLR: total_steps must be >= 1, got 0$"),
        (
            lambda: CosineLR(0.1, 10, min_lr=0.2),
            ConfigError,
            r"^CosineLR: min_lr must be <= lr = 0\.1, got 0\.2$",
        ),
        (lambda: WarmupLR(0.1, 5), DTypeError, r"^WarmupLR: schedule must be a schedule such as"),
        (
            lambda: WarmupLR(ConstantLR(0.1), 0),
            ConfigError,
            r"^WarmupLR: warmup_steps must be >= 1, got 0$",
        ),
        (
            lambda: WarmupLR(ConstantLR(0.1), 5, start_factor=0),
            ConfigError,
            r"^WarmupLR: start_factor must be in \(0, 1\], got 0\.0$",
        ),
        (
            lambda: make_schedule("linear", 0.1, total_steps=10),
            ConfigError,
            r"^make_schedule: unknown schedule 'linear'; choose one of constant, step, cosine$",
        ),
        (
            lambda: make_schedule("step", 0.1, total_steps=30, warmup_steps=3),
            ConfigError,
            r"^make_schedule: schedule 'step' needs step_size \(steps between lr drops\); "
            r"e\.g\. step_size=9$",
        ),
        (
            lambda: make_schedule("cosine", 0.1, total_steps=10, warmup_steps=10),
            ConfigError,
            r"^make_schedule: warmup_steps must be < total_steps = 10, got 10$",
        ),
        (
            lambda: make_schedule("cosine", 0.1, total_steps=0),
            ConfigError,
            r"^make_schedule: total_steps must be >= 1, got 0$",
        ),
    ],
)
def test_schedule_errors(build, error, match):
    with pytest.raises(error, match=match):
        build()
