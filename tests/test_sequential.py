"""probes.measure on a plain nn.Sequential: equal to slow autograd on the Sequential itself,
and a one-line refusal of what depthlab cannot read as an MLP."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import per_layer
from torch import nn

from depthlab.data import CLASSIFICATION
from depthlab.errors import ConfigError
from depthlab.probes import measure
from depthlab.sequential import from_sequential

F64 = torch.float64


def user_model(*tail: nn.Module) -> nn.Sequential:
    """Hidden widths 9, 7, 5 (they differ), tanh, as a user would write it."""
    torch.manual_seed(0)
    layers = [nn.Linear(6, 9), nn.Tanh(), nn.Linear(9, 7), nn.Tanh(), nn.Linear(7, 5), nn.Tanh()]
    return nn.Sequential(*layers, nn.Linear(5, 4), *tail).to(F64)


def autograd_deltas(seq: nn.Sequential, x: torch.Tensor, y: torch.Tensor) -> list[np.ndarray]:
    """Per-sample dJ_i/dz^l at every nn.Linear output: B times autograd's gradient of the
    batch-mean cross-entropy, through the Sequential itself."""
    outputs = []

    def keep(module: nn.Module, inputs: tuple, z: torch.Tensor) -> None:
        z.retain_grad()
        outputs.append(z)

    handles = [m.register_forward_hook(keep) for m in seq if isinstance(m, nn.Linear)]
    nn.functional.cross_entropy(seq(x), y).backward()
    for handle in handles:
        handle.remove()
    return [len(x) * z.grad.numpy() for z in outputs]


def test_sequential_probes_equal_autograd_on_the_sequential() -> None:
    seq = user_model()
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(16, 6, generator=g, dtype=F64), torch.randint(0, 4, (16,), generator=g)
    frame = measure(seq, x, y, "cross_entropy", CLASSIFICATION, "default")
    deltas = autograd_deltas(seq, x, y)
    expected = [np.sqrt((d**2).sum(1).mean()) for d in deltas]
    np.testing.assert_allclose(per_layer(frame, "delta_norm"), expected, rtol=1e-10)
    linears = [m for m in seq if isinstance(m, nn.Linear)]
    grads = [lin.weight.grad.norm().item() for lin in linears]
    np.testing.assert_allclose(per_layer(frame, "weight_grad_norm"), grads, rtol=1e-10)
    first = torch.tanh(linears[0](x)).detach()  # a^1
    assert per_layer(frame, "act_mean")[0] == pytest.approx(first.mean().item(), rel=1e-10)


def test_the_users_model_is_left_alone_and_outputs_agree() -> None:
    seq = user_model(nn.Sigmoid())
    before = [p.detach().clone() for p in seq.parameters()]
    x = torch.randn(8, 6, dtype=F64)
    model = from_sequential(seq)
    assert model.widths == [6, 9, 7, 5, 4] and model.output_activation == "sigmoid"
    torch.testing.assert_close(model(x)[0], seq(x), rtol=0, atol=1e-15)
    measure(seq, x, torch.randint(0, 4, (8,)), "squared", CLASSIFICATION, "minimal")
    assert all(torch.equal(a, b) for a, b in zip(before, seq.parameters(), strict=True))
    assert all(p.grad is None for p in seq.parameters())


@pytest.mark.parametrize(
    "seq",
    [
        nn.Sequential(nn.Linear(6, 8), nn.Dropout(), nn.Linear(8, 4)),
        nn.Sequential(nn.Conv1d(1, 2, 3)),
        nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Tanh(), nn.Linear(8, 4)),
        nn.Sequential(nn.Linear(6, 8), nn.Linear(8, 4)),
        nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 4)),
        nn.Sequential(nn.Linear(6, 8), nn.LeakyReLU(0.2), nn.Linear(8, 4)),
        nn.Sequential(nn.Linear(6, 8, bias=False), nn.Tanh(), nn.Linear(8, 4)),
        nn.Sequential(),
        nn.Sequential(nn.Linear(6, 4)),
    ],
    ids=[
        "dropout",
        "conv",
        "two-activations",
        "no-activation",
        "mixed",
        "slope",
        "no-bias",
        "empty",
        "one-linear",
    ],
)
def test_what_is_not_an_mlp_is_refused_in_one_line(seq: nn.Sequential) -> None:
    with pytest.raises(TypeError) as error:
        measure(
            seq,
            torch.randn(4, 6),
            torch.zeros(4, dtype=torch.long),
            "cross_entropy",
            CLASSIFICATION,
            [],
        )
    assert "\n" not in str(error.value)


def test_other_modules_are_refused_naming_what_is_accepted() -> None:
    with pytest.raises(TypeError, match=r"nn\.Sequential of nn\.Linear"):
        measure(
            nn.Linear(6, 4), torch.randn(4, 6), torch.zeros(4, dtype=torch.long), "x", "regression"
        )


def test_an_unknown_task_is_refused_naming_the_tasks() -> None:
    x, y = torch.randn(4, 6, dtype=F64), torch.zeros(4, dtype=torch.long)
    with pytest.raises(ConfigError, match="classification"):
        measure(user_model(), x, y, "cross_entropy", "classif")
