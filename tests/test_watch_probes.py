"""The rule that tells an underflowed delta from an exact zero (watch_probes.underflowed),
each clause on planted passes."""

from __future__ import annotations

import torch
from torch import nn

from depthlab.probes.capture import LayerTensors
from depthlab.watch_capture import LayerPass
from depthlab.watch_layers import LAYER_KINDS
from depthlab.watch_probes import WatchInput, underflowed

LINEAR = LAYER_KINDS["linear"]


def planted(norms: list[float], dead: int | None = None, chained: bool = True, dtype=torch.float32):
    """A pass of len(norms) tanh or ReLU layers (B = 2, 3 units) with the given delta norms:
    layer ``dead`` (0-based) has ReLUs that never fire; ``chained``: each layer reads the
    previous one's output."""
    layers, t = [], LayerTensors()
    for l in range(len(norms)):
        u = torch.full((2, 3), -1.0 if l == dead else 0.5, dtype=dtype)
        phi = nn.ReLU() if l == dead else nn.Tanh()
        layers.append(LayerPass(u, LINEAR, phi=phi, phi_name="x", fed_by_previous=chained))
        t.preacts.append(u.reshape(1, 2, 3))
        t.normed.append(u.reshape(1, 2, 3))
        t.outputs.append(u.reshape(1, 2, 3))
        t.grads.append(torch.zeros(1, 2, 3, dtype=dtype))
    p = WatchInput(t, layers, [True] * len(norms), [None] * len(norms), [None] * len(norms))
    return p, torch.tensor([norms], dtype=torch.float64)


def lost(*args, **kwargs) -> list[bool]:
    p, norm = planted(*args, **kwargs)
    return underflowed(p, norm)[0].tolist()


def test_zeros_below_tiny_deltas_are_underflow() -> None:
    assert lost([0.0, 0.0, 1e-40, 1.0]) == [True, True, False, False]
    assert lost([0.0, 1e-300, 1.0], dtype=torch.float64) == [True, False, False]


def test_zeros_below_normal_deltas_are_exact() -> None:
    assert lost([0.0, 0.0, 1e-20, 1.0]) == [False, False, False, False]
    assert lost([0.0, 1e-40, 1.0], dtype=torch.float64) == [False, False, False]


def test_a_dead_layer_and_the_chain_below_it_are_exact_even_near_the_bottom() -> None:
    """Layer 2's ReLUs never fire: its zero is exact, and layer 1, which feeds it, gets an
    exact zero through it; without the chain (a skip could carry a gradient) layer 1's zero
    is an underflow, as the tiny delta above says."""
    assert lost([0.0, 0.0, 1e-40, 1.0], dead=1) == [False, False, False, False]
    assert lost([0.0, 0.0, 1e-40, 1.0], dead=1, chained=False) == [True, False, False, False]


def test_the_last_layers_zero_is_the_losss_own() -> None:
    assert lost([1e-40, 0.0]) == [False, False]
