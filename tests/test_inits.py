"""Every registered initialiser keeps the promise its docstring states, at large width."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from depthlab.config import check_option
from depthlab.errors import ConfigError
from depthlab.inits import INITS, Gaussian, Init, Orthogonal

NAMES = INITS.names()
KURTOSIS = {"normal": 3.0, "uniform": 1.8}


def draw(init: Init, fan_in: int, fan_out: int, seed: int = 0):
    w = torch.empty(fan_out, fan_in, dtype=torch.float64)
    b = torch.empty(fan_out, dtype=torch.float64)
    init.fill_(w, b, torch.Generator().manual_seed(seed))
    return w, b


def nondefault(name: str) -> Init:
    """An instance with a non-zero bias variance where the init has one."""
    cls = INITS[name]
    fields = cls.__dataclass_fields__
    return cls(sigma_b2=0.05) if "sigma_b2" in fields else cls()


# every init with its defaults, plus the parameters that change its variance
VARIANTS = [nondefault(name) for name in NAMES] + [
    INITS["gaussian"](sigma_w2=2.5),
    INITS["small_normal"](std=0.05),
    INITS["xavier_uniform"](gain=2.0),
    INITS["xavier_normal"](gain=0.5),
    INITS["kaiming_normal"](mode="fan_out"),
    INITS["kaiming_normal"](nonlinearity="tanh"),
    INITS["kaiming_uniform"](nonlinearity="leaky_relu", negative_slope=0.2),
    INITS["kaiming_uniform"](nonlinearity="selu", mode="fan_out"),
    INITS["orthogonal"](gain=1.5),
]


@pytest.mark.parametrize("init", VARIANTS, ids=repr)
@pytest.mark.parametrize(("fan_in", "fan_out"), [(1024, 1024), (512, 1536), (1536, 512)])
def test_weight_variance_and_mean(init: Init, fan_in: int, fan_out: int) -> None:
    w, _ = draw(init, fan_in, fan_out)
    expected = init.weight_variance(fan_in, fan_out)
    # relative standard error of a sample variance of n draws is about sqrt(2/n) < 0.2%
    assert w.var().item() == pytest.approx(expected, rel=0.02)
    assert abs(w.mean().item()) < 5 * math.sqrt(expected / w.numel())


@pytest.mark.parametrize("name", NAMES)
def test_bias_variance(name: str) -> None:
    init = nondefault(name)
    _, b = draw(init, 256, 40000)
    expected = init.bias_variance(256)
    if expected == 0:
        assert torch.all(b == 0)
    else:
        assert b.var().item() == pytest.approx(expected, rel=0.05)


@pytest.mark.parametrize("name", [n for n in NAMES if INITS[n].distribution in KURTOSIS])
def test_distribution_shape(name: str) -> None:
    """Uniform draws have kurtosis 1.8, Gaussian draws 3."""
    init = nondefault(name)
    w, _ = draw(init, 1024, 1024)
    x = w.flatten().numpy()
    kurtosis = np.mean((x - x.mean()) ** 4) / x.var() ** 2
    assert kurtosis == pytest.approx(KURTOSIS[init.distribution], abs=0.05)


@pytest.mark.parametrize("gain", [1.0, 1.3])
def test_orthogonal_square_is_orthogonal(gain: float) -> None:
    w, _ = draw(Orthogonal(gain=gain), 256, 256)
    np.testing.assert_allclose((w @ w.T).numpy(), gain**2 * np.eye(256), atol=1e-10)
    np.testing.assert_allclose(torch.linalg.svdvals(w).numpy(), gain, rtol=1e-10)


def test_orthogonal_rectangular_has_orthonormal_rows() -> None:
    w, _ = draw(Orthogonal(), fan_in=300, fan_out=100)
    np.testing.assert_allclose((w @ w.T).numpy(), np.eye(100), atol=1e-10)


def test_torch_default_is_nn_linear_bit_for_bit() -> None:
    init = INITS["torch_default"]()
    torch.manual_seed(123)
    linear = nn.Linear(70, 30, dtype=torch.float64)
    generator = torch.Generator().manual_seed(123)
    w, b = torch.empty(30, 70, dtype=torch.float64), torch.empty(30, dtype=torch.float64)
    init.fill_(w, b, generator)
    assert torch.equal(w, linear.weight.detach()) and torch.equal(b, linear.bias.detach())


def test_torch_default_is_sigma_w2_one_third() -> None:
    init = INITS["torch_default"]()
    assert init.weight_variance(500, 10) * 500 == pytest.approx(1 / 3)


def test_gaussian_is_fan_in_scaled() -> None:
    init = Gaussian(sigma_w2=1.5)
    for fan_in in (64, 1000):
        assert init.weight_variance(fan_in, 7) * fan_in == pytest.approx(1.5)


@pytest.mark.parametrize("name", NAMES)
def test_same_generator_same_draw(name: str) -> None:
    init = nondefault(name)
    w1, b1 = draw(init, 64, 32, seed=5)
    w2, b2 = draw(init, 64, 32, seed=5)
    w3, _ = draw(init, 64, 32, seed=6)
    assert torch.equal(w1, w2) and torch.equal(b1, b2) and not torch.equal(w1, w3)


@pytest.mark.parametrize("name", NAMES)
def test_name_field_matches_registry(name: str) -> None:
    assert INITS[name]().name == name
    INITS[name]().check()  # defaults are valid


@pytest.mark.parametrize(
    ("init", "key"),
    [
        (Gaussian(sigma_w2=-1.0), "init.sigma_w2"),
        (Gaussian(sigma_b2=float("nan")), "init.sigma_b2"),
        (INITS["small_normal"](std=-0.1), "init.std"),
        (INITS["xavier_normal"](gain=0.0), "init.gain"),
        (INITS["kaiming_normal"](nonlinearity="swish"), "init.nonlinearity"),
        (INITS["kaiming_uniform"](mode="fan_avg"), "init.mode"),
        (Orthogonal(gain=-2.0), "init.gain"),
    ],
)
def test_bad_parameters_name_the_key(init: Init, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        check_option(init, "init")  # its limits, then its own rules
    assert err.value.key == key


def test_stated_variances_are_the_papers() -> None:
    """The formulas themselves, so a wrong formula cannot hide behind a matching draw."""
    kaiming = INITS["kaiming_normal"]
    assert kaiming().weight_variance(300, 100) == pytest.approx(2.0 / 300)  # He: 2 / fan_in
    assert kaiming(mode="fan_out").weight_variance(300, 100) == pytest.approx(2.0 / 100)
    assert kaiming(nonlinearity="tanh").weight_variance(300, 300) == pytest.approx(25 / 9 / 300)
    assert kaiming(nonlinearity="leaky_relu", negative_slope=0.2).weight_variance(
        100, 100
    ) == pytest.approx(2 / 1.04 / 100)
    xavier = INITS["xavier_uniform"]
    assert xavier().weight_variance(300, 100) == pytest.approx(2.0 / 400)  # Glorot: 2/(in+out)
    assert xavier(gain=2.0).weight_variance(300, 100) == pytest.approx(8.0 / 400)
    assert INITS["orthogonal"](gain=1.5).weight_variance(200, 200) == pytest.approx(2.25 / 200)
    assert INITS["small_normal"](std=0.01).weight_variance(10, 10) == pytest.approx(1e-4)
