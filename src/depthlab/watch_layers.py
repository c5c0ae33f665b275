"""Which modules of a user's model ``depthlab.watch`` records, and what it cannot record.

A *watched layer* is one call of an affine module, a registered :data:`LAYER_KINDS` entry
(nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, and depthlab's own batched linear map): its
output is the pre-activation z^l and delta^l = dJ/dz^l. Layers are numbered l = 1..L in the
order of the first forward pass. A layer's *followers* are the modules its output flows
into directly: at most one normalisation module, whose output is u^l, then at most one
activation module, whose output is a^l = phi(u^l) (u^l = z^l without normalisation;
a^l = u^l without an activation module, as for an output layer, or where the activation is
a function such as F.relu, which watch cannot see). A user may instead name the layer
modules (``layers=[...]``, names of ``model.named_modules()``), any module with a tensor
output then.

What is left out is said, never silently dropped (:func:`skipped`): modules with parameters
of their own that are neither a watched layer nor one of its followers (a pre-norm LayerNorm,
an embedding, nn.MultiheadAttention, which uses its projections' weights without calling
them), bare parameters, and modules called more than once per pass (shared weights: one
module, several z).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from depthlab.activations import ACTIVATIONS
from depthlab.errors import ConfigError
from depthlab.model import BatchedLinear, BatchNorm, Layer, LayerNorm, NoNorm
from depthlab.registry import Registry
from depthlab.sequential import activation_name


@dataclass(frozen=True)
class LayerKind:
    """How to read one kind of layer module.

    ``samples`` maps the module's output to per-sample form (B, ...), batch first;
    ``activation(root, name)`` gives the activation phi applied to the layer's output
    inside a block that hides it (a plain function, not a module) with its registered
    name, or None; ``block(root, name)`` the module whose output is then a^l (read when
    it has no skip), or None."""

    module_type: type[nn.Module]
    samples: Callable[[torch.Tensor], torch.Tensor] = lambda t: t
    activation: Callable[[nn.Module, str], tuple[Callable, str] | None] = lambda root, name: None
    block: Callable[[nn.Module, str], nn.Module | None] = lambda root, name: None


LAYER_KINDS: Registry[LayerKind] = Registry("watched layer kind")
LAYER_KINDS.register("linear")(LayerKind(nn.Linear))
LAYER_KINDS.register("conv1d")(LayerKind(nn.Conv1d))
LAYER_KINDS.register("conv2d")(LayerKind(nn.Conv2d))
LAYER_KINDS.register("conv3d")(LayerKind(nn.Conv3d))


def _depthlab_block(root: nn.Module, name: str) -> Layer | None:
    """depthlab's MLP layer that holds the linear map ``name`` (``layers.3.linear``)."""
    block = root.get_submodule(name.rpartition(".")[0]) if "." in name else None
    return block if isinstance(block, Layer) else None


def _depthlab_activation(root: nn.Module, name: str) -> tuple[Callable, str] | None:
    """phi of depthlab's MLP layer that holds the linear map ``name``, and its name."""
    block = _depthlab_block(root, name)
    if block is None:
        return None
    for key, entry in ACTIVATIONS.items():
        if entry.torch is block.activation:
            return block.activation, key
    return block.activation, "unknown"


def _one_replica(z: torch.Tensor) -> torch.Tensor:
    """depthlab's batched output (R, B, n) -> (B, n); watch records one replica."""
    if z.shape[0] != 1:
        raise ValueError(f"watch records models of one replica; this one has {z.shape[0]}")
    return z[0]


LAYER_KINDS.register("depthlab_linear")(
    LayerKind(BatchedLinear, _one_replica, _depthlab_activation, _depthlab_block)
)

NORM_TYPES: tuple[type[nn.Module], ...] = (
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.BatchNorm3d,
    nn.SyncBatchNorm,
    nn.LayerNorm,
    nn.GroupNorm,
    nn.InstanceNorm1d,
    nn.InstanceNorm2d,
    nn.InstanceNorm3d,
    *((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ()),
    BatchNorm,
    LayerNorm,
    NoNorm,
)
# Elementwise activation modules (phi' by autograd through the module itself).
ACTIVATION_TYPES: tuple[type[nn.Module], ...] = (
    nn.CELU,
    nn.ELU,
    nn.GELU,
    nn.Hardshrink,
    nn.Hardsigmoid,
    nn.Hardswish,
    nn.Hardtanh,
    nn.LeakyReLU,
    nn.LogSigmoid,
    nn.Mish,
    nn.PReLU,
    nn.ReLU,
    nn.ReLU6,
    nn.RReLU,
    nn.SELU,
    nn.SiLU,
    nn.Sigmoid,
    nn.Softplus,
    nn.Softshrink,
    nn.Softsign,
    nn.Tanh,
    nn.Tanhshrink,
    nn.Threshold,
)


def follower_role(module: nn.Module) -> str | None:
    """'norm', 'activation' or None: what ``module`` can be after a watched layer."""
    if isinstance(module, NORM_TYPES):
        return "norm"
    if isinstance(module, ACTIVATION_TYPES):
        return "activation"
    return None


def activation_label(module: nn.Module) -> str:
    """The registered activation a module computes ('tanh'), else its class name."""
    return activation_name(module) or type(module).__name__


def kind_of(module: nn.Module) -> LayerKind | None:
    """The registered kind of a layer module (exact type or subclass), or None."""
    for _, kind in LAYER_KINDS.items():
        if isinstance(module, kind.module_type):
            return kind
    return None


@dataclass(frozen=True)
class WatchedLayer:
    """Layer l of a watch: its module's name (as in ``named_modules``) and kind."""

    name: str
    module: nn.Module
    kind: LayerKind

    def parameters(self) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """(weight, bias) of the layer module where it has them as parameters."""
        found = []
        for attr in ("weight", "bias"):
            p = getattr(self.module, attr, None)
            found.append(p if isinstance(p, nn.Parameter) else None)
        return found[0], found[1]


def candidates(model: nn.Module, names: list[str] | None) -> dict[str, nn.Module]:
    """The modules that may be layers, by name: every registered kind, or those ``names``
    (a ConfigError naming an unknown one). The root module is never a candidate by kind."""
    modules = dict(model.named_modules())
    if names is not None:
        unknown = [n for n in names if n not in modules]
        if unknown:
            raise ConfigError(
                "layers",
                unknown,
                f"names of model.named_modules(), e.g. {list(modules)[1:4]}",
                f"no such module in {type(model).__name__}",
            )
        return {n: modules[n] for n in names}
    return {n: m for n, m in modules.items() if n and kind_of(m) is not None}


def custom_kind(module: nn.Module) -> LayerKind:
    """The kind of a module named as a layer: its registered kind, or a plain reading."""
    return kind_of(module) or LayerKind(type(module))


def skipped(
    model: nn.Module, layers: list[WatchedLayer], followers: set[str], reused: dict[str, int]
) -> list[str]:
    """One entry per module (or bare parameter) whose parameters no watched layer covers,
    'NAME (TYPE: why)'. ``followers``: names of modules that followed a watched layer;
    ``reused``: layer modules called more than once per pass, with their call counts."""
    covered = {layer.name for layer in layers} | followers
    notes = [
        f"{name} ({type(model.get_submodule(name)).__name__}: called {n} times in one pass)"
        for name, n in reused.items()
    ]
    for name, module in model.named_modules():
        own = [p for p, _ in module.named_parameters(recurse=False)]
        if name in covered or name in reused or not own:
            continue
        kind = type(module).__name__
        if isinstance(module, NORM_TYPES):
            why = "a normalisation not right after a watched layer"
        elif kind_of(module) is not None and not name:
            why = "the model is one layer: watch records the layers inside a model"
        elif kind_of(module) is not None:
            why = "not called in the first pass with gradients"
        elif any(True for _ in module.children()):  # a container's own tensors
            why = f"own parameters {', '.join(own)}"
        else:
            why = "not a Linear or Conv layer: name it in layers=[...] to watch it"
        notes.append(f"{name or kind} ({kind}: {why})")
    return notes
