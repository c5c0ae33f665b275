"""A plain PyTorch MLP, written as an ``nn.Sequential``, read as depthlab's :class:`MLP`.

What is accepted, exactly: an ``nn.Sequential`` of ``nn.Linear`` layers with biases, each
hidden one followed by one activation module, the same kind for every hidden layer, and
the last ``nn.Linear`` followed by at most one activation module (the output activation);
two ``nn.Linear`` at least (one hidden layer):

    nn.Sequential(nn.Linear(d, n1), nn.Tanh(), nn.Linear(n1, n2), nn.Tanh(), nn.Linear(n2, k))

Hidden widths may differ. The activation modules are those whose function depthlab has
registered with the same parameters: Sigmoid, Tanh, ReLU, LeakyReLU(0.01), ELU(1.0), SELU,
GELU (exact), SiLU, Softplus(beta=1), Identity. Anything else (convolutions, dropout,
normalisation, nested containers) is refused with a one-line error naming the module;
depthlab's own probes then do not apply to that model.

The MLP holds a copy of the weights in the Sequential's dtype and device, so measuring it
changes nothing in the user's model, and its layer l (1..L) is the l-th ``nn.Linear``.
"""

from __future__ import annotations

import torch
from torch import nn

from depthlab.model import MLP

# (module type, the parameters that must hold) -> the registered activation of that phi
ACTIVATION_MODULES: list[tuple[type[nn.Module], dict[str, object], str]] = [
    (nn.Sigmoid, {}, "sigmoid"),
    (nn.Tanh, {}, "tanh"),
    (nn.ReLU, {}, "relu"),
    (nn.LeakyReLU, {"negative_slope": 0.01}, "leaky_relu"),
    (nn.ELU, {"alpha": 1.0}, "elu"),
    (nn.SELU, {}, "selu"),
    (nn.GELU, {"approximate": "none"}, "gelu"),
    (nn.SiLU, {}, "silu"),
    (nn.Softplus, {"beta": 1.0}, "softplus"),
    (nn.Identity, {}, "linear"),
]
ACCEPTED = "nn.Linear (with bias) and " + ", ".join(
    f"{t.__name__}({', '.join(f'{k}={v!r}' for k, v in params.items())})"
    for t, params, _ in ACTIVATION_MODULES
)


def activation_name(module: nn.Module) -> str | None:
    """The registered activation a module computes, or None."""
    for kind, params, name in ACTIVATION_MODULES:
        if type(module) is kind and all(getattr(module, k) == v for k, v in params.items()):
            return name
    return None


def from_sequential(seq: nn.Sequential) -> MLP:
    """The MLP that computes what ``seq`` computes, with a copy of its weights (see the
    module docstring for what is accepted; a one-line TypeError otherwise)."""
    linears, activations = _layers(seq)
    hidden = activations[:-1]
    if None in hidden or len(set(hidden)) > 1:
        found = ", ".join(str(name) for name in hidden)
        raise TypeError(
            f"every hidden nn.Linear must be followed by the same activation module; "
            f"found after them: {found}"
        )
    first = linears[0].weight
    model = MLP(
        linears[0].in_features,
        linears[-1].out_features,
        depth=len(linears) - 1,
        width=[lin.out_features for lin in linears[:-1]],
        activation=hidden[0] if hidden else "linear",
        output_activation=activations[-1] or "none",
    ).to(device=first.device, dtype=first.dtype)
    with torch.no_grad():
        for l, lin in enumerate(linears, start=1):
            model.layer(l).linear.weight[0].copy_(lin.weight)
            model.layer(l).linear.bias[0].copy_(lin.bias)
    return model


def _layers(seq: nn.Sequential) -> tuple[list[nn.Linear], list[str | None]]:
    """The nn.Linear layers of ``seq`` and the activation after each (None: none)."""
    linears: list[nn.Linear] = []
    activations: list[str | None] = []
    for index, module in enumerate(seq):
        name = activation_name(module)
        if isinstance(module, nn.Linear) and module.bias is not None:
            linears.append(module)
            activations.append(None)
        elif name is not None and linears and activations[-1] is None:
            activations[-1] = name
        else:
            raise TypeError(
                f"module {index} of the Sequential ({module}) is not accepted here: "
                f"depthlab measures sequences of {ACCEPTED}, one activation after each linear"
            )
    if len(linears) < 2:
        raise TypeError(
            f"the Sequential holds {len(linears)} nn.Linear; depthlab measures nets of one "
            f"hidden layer or more, sequences of {ACCEPTED}"
        )
    return linears, activations
