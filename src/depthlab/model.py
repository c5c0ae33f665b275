"""The MLP of the classic derivation, plain, residual or normalised, with layers indexed 1..L.

Notation (the classic backprop derivation; a^0 = x, layer L = output layer):

    z^l = W^l a^{l-1} + b^l                      (the pre-activation; delta^l = dJ/dz^l)
    h^l = phi(N(z^l))                            (N: the normalisation, identity by default)
    a^l = h^l,  or  a^l = a^{l-1} + alpha h^l    (residual hidden layers, alpha = branch_scale)
    a^L = phi_out(z^L)                           (phi_out: output activation, identity by default)

Normalisation sits between the affine map and the activation (Ioffe & Szegedy 2015), so
z^l stays the affine pre-activation of the derivation. Skips: layer 1 maps the input width
to ``width`` and is never residual; the identity skip wraps hidden layers 2..L-1, whose input
and output widths agree. The output layer is never residual nor normalised.

Every parameter carries a leading replica dimension R: W^l is (R, fan_out, fan_in) and the
forward pass maps (R, B, fan_in) -> (R, B, fan_out) with one batched matmul per layer, so R
seeds of one configuration train as one model. R = 1 is an ordinary run.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from depthlab.activations import ACTIVATIONS
from depthlab.inits import Init

NORMS = ("none", "batchnorm", "layernorm")
ALL = slice(None)  # every replica


def _part(tensor: torch.Tensor, replicas: slice) -> torch.Tensor:
    """The replicas' slice of a parameter: the parameter itself for all of them (a slice
    would add a node, and a copy of the gradient, to every backward pass)."""
    return tensor if replicas is ALL else tensor[replicas]


@contextlib.contextmanager
def preserved_buffers(module: nn.Module) -> Iterator[None]:
    """Extra forward passes inside the block (probes) leave the buffers, i.e. batchnorm's
    running averages, as they were: measuring must not change the model."""
    kept = [b.clone() for b in module.buffers()]
    try:
        yield
    finally:
        with torch.no_grad():
            for buffer, saved in zip(module.buffers(), kept, strict=True):
                buffer.copy_(saved)


NORM_EPS = 1e-5


class BatchedAffine(torch.autograd.Function):
    """z = a W^T + b per replica, with a backward that writes dJ/dW in W's own layout.

    Autograd's own backward of ``baddbmm(b, a, W^T)`` computes dJ/dW^T and then copies its
    transpose into W's layout: a strided copy of every weight matrix at every step, which
    made a width-1024 step 1.28x slower on the CPU. Here, with delta = dJ/dz (R, B, n):
    dJ/da = delta W, dJ/dW = delta^T a (R, n, m), dJ/db = sum_B delta. The backward is made
    of differentiable ops, so second derivatives (curvature) and torch.func (Jacobians)
    work through it.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(a: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(bias.unsqueeze(-2), a, weight.transpose(-1, -2))

    @staticmethod
    def setup_context(ctx, inputs: tuple, output: torch.Tensor) -> None:
        a, weight, _ = inputs
        ctx.save_for_backward(a, weight)

    @staticmethod
    def backward(ctx, delta: torch.Tensor) -> tuple[torch.Tensor, ...]:
        a, weight = ctx.saved_tensors
        grad_a = delta @ weight if ctx.needs_input_grad[0] else None  # not for the input x
        return grad_a, delta.transpose(-1, -2) @ a, delta.sum(-2)


class BatchedLinear(nn.Module):
    """z = a W^T + b for R replicas at once: a (R, B, fan_in) -> z (R, B, fan_out)."""

    def __init__(self, fan_in: int, fan_out: int, replicas: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(replicas, fan_out, fan_in, dtype=torch.float64))
        self.bias = nn.Parameter(torch.empty(replicas, fan_out, dtype=torch.float64))

    def forward(self, a: torch.Tensor, replicas: slice = ALL) -> torch.Tensor:
        return BatchedAffine.apply(a, _part(self.weight, replicas), _part(self.bias, replicas))


class BatchNorm(nn.Module):
    """Batch normalisation of every unit of every replica over the batch (training statistics
    in train mode, running averages in eval mode), then a per-unit affine gamma x + beta.

    ``momentum`` is the weight of a new batch in the running averages (PyTorch's 0.1).
    """

    def __init__(self, width: int, replicas: int) -> None:
        super().__init__()
        self.momentum = 0.1
        self.weight = nn.Parameter(torch.ones(replicas, width, dtype=torch.float64))
        self.bias = nn.Parameter(torch.zeros(replicas, width, dtype=torch.float64))
        self.register_buffer("running_mean", torch.zeros(replicas * width, dtype=torch.float64))
        self.register_buffer("running_var", torch.ones(replicas * width, dtype=torch.float64))

    def forward(self, z: torch.Tensor, replicas: slice = ALL) -> torch.Tensor:
        r, b, n = z.shape
        # (R, B, n) -> (B, R n): one feature per (replica, unit), statistics over the batch.
        flat = z.transpose(0, 1).reshape(b, r * n)
        runs = self.weight.shape[0]
        out = F.batch_norm(
            flat,
            _part(self.running_mean.view(runs, n), replicas).reshape(-1),
            _part(self.running_var.view(runs, n), replicas).reshape(-1),
            _part(self.weight, replicas).reshape(-1),
            _part(self.bias, replicas).reshape(-1),
            self.training,
            self.momentum,
            NORM_EPS,
        )
        return out.view(b, r, n).transpose(0, 1)


class LayerNorm(nn.Module):
    """Layer normalisation of every sample over its units, then a per-unit affine map."""

    def __init__(self, width: int, replicas: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(replicas, width, dtype=torch.float64))
        self.bias = nn.Parameter(torch.zeros(replicas, width, dtype=torch.float64))

    def forward(self, z: torch.Tensor, replicas: slice = ALL) -> torch.Tensor:
        normed = F.layer_norm(z, z.shape[-1:], eps=NORM_EPS)
        weight, bias = _part(self.weight, replicas), _part(self.bias, replicas)
        return torch.addcmul(bias.unsqueeze(1), normed, weight.unsqueeze(1))


class NoNorm(nn.Module):
    """No normalisation: u^l = z^l (a module, so hooks read u^l the same way)."""

    def forward(self, z: torch.Tensor, replicas: slice = ALL) -> torch.Tensor:
        return z


def _make_norm(norm: str, width: int, replicas: int) -> nn.Module:
    if norm == "batchnorm":
        return BatchNorm(width, replicas)
    if norm == "layernorm":
        return LayerNorm(width, replicas)
    return NoNorm()


class Layer(nn.Module):
    """Layer l: a^{l-1} -> a^l. Forward hooks read z^l on ``linear`` and u^l = N(z^l), the
    input of phi, on ``norm`` (an identity module without normalisation)."""

    def __init__(
        self,
        index: int,
        fan_in: int,
        fan_out: int,
        replicas: int,
        *,
        activation: Callable[[torch.Tensor], torch.Tensor],
        norm: str = "none",
        skip: bool = False,
        branch_scale: float = 1.0,
    ) -> None:
        super().__init__()
        self.index = index
        self.linear = BatchedLinear(fan_in, fan_out, replicas)
        self.norm = _make_norm(norm, fan_out, replicas)
        self.activation = activation
        self.skip = skip
        self.branch_scale = branch_scale
        # alpha of a^l = a^{l-1} + alpha h^l, per replica; fixed (branch_scale) unless an init
        # makes it learnable (skipinit), see MLP.initialize_. Drawn in float64 like the weights.
        self.alpha = (
            nn.Parameter(
                torch.full((replicas, 1, 1), float(branch_scale), dtype=torch.float64),
                requires_grad=False,
            )
            if skip
            else None
        )

    def forward(self, a: torch.Tensor, replicas: slice = ALL) -> torch.Tensor:
        """a^{l-1} -> a^l for all replicas, or (``replicas``) a slice of them."""
        if replicas is ALL:  # one call signature for the hooks of every probed pass
            h = self.activation(self.norm(self.linear(a)))
        else:
            h = self.activation(self.norm(self.linear(a, replicas), replicas))
        if not self.skip:
            return h
        # alpha is per replica (runs of one batch may differ); alpha = 1 gives a + h exactly
        return a + _part(self.alpha, replicas) * h

    def extra_repr(self) -> str:
        return f"l={self.index}, skip={self.skip}, branch_scale={self.branch_scale}"


def _identity(z: torch.Tensor) -> torch.Tensor:
    return z


class MLP(nn.Module):
    """``depth`` hidden layers of ``width`` units and an affine output layer, R replicas.
    ``width`` may also list each hidden layer's width (``depth`` of them; no skips then).

    ``model.layer(l)`` is layer l for l = 1..L (L = depth + 1, the output layer), so probes
    address layers by the derivation's index and never parse module names.
    """

    def __init__(
        self,
        num_inputs: int,
        num_outputs: int,
        *,
        depth: int,
        width: int | Sequence[int],
        activation: str,
        output_activation: str = "none",
        residual: bool = False,
        branch_scale: float = 1.0,
        norm: str = "none",
        replicas: int = 1,
    ) -> None:
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, not {norm!r}")
        self.replicas = replicas
        self.activation, self.output_activation = activation, output_activation
        hidden_widths = [width] * depth if isinstance(width, int) else list(width)
        if len(hidden_widths) != depth or (residual and len(set(hidden_widths)) > 1):
            raise ValueError(f"width must be one int or {depth} equal ones with skips: {width}")
        self.widths = [num_inputs, *hidden_widths, num_outputs]
        phi = ACTIVATIONS[activation].torch
        phi_out = _identity if output_activation == "none" else ACTIVATIONS[output_activation].torch
        hidden = [
            Layer(
                l,
                self.widths[l - 1],
                self.widths[l],
                replicas,
                activation=phi,
                norm=norm,
                skip=residual and l >= 2,
                branch_scale=branch_scale,
            )
            for l in range(1, depth + 1)
        ]
        out = Layer(depth + 1, self.widths[-2], num_outputs, replicas, activation=phi_out)
        self.layers = nn.ModuleList([*hidden, out])

    @property
    def num_layers(self) -> int:
        """L: the number of weight layers, the output layer included."""
        return len(self.layers)

    def layer(self, l: int) -> Layer:
        """Layer ``l`` in 1..L."""
        if not 1 <= l <= self.num_layers:
            raise IndexError(f"layer {l} is not in 1..{self.num_layers}")
        return self.layers[l - 1]

    def forward(self, x: torch.Tensor, replicas: slice = ALL) -> torch.Tensor:
        """x: (B, d) shared by all replicas, or (R, B, d) -> a^L: (R, B, num_outputs).
        ``replicas``: run only that slice of the replicas (x then (B, d) or (r, B, d))."""
        count = len(range(self.replicas)[replicas])
        a = x.expand(count, *x.shape) if x.dim() == 2 else x
        for layer in self.layers:
            a = layer(a) if replicas is ALL else layer(a, replicas)
        return a

    @torch.no_grad()
    def calibrate_batchnorm_(self, x: torch.Tensor, chunk: int = 8192) -> None:
        """Set every batchnorm's running averages to the exact statistics of inputs ``x``.

        Evaluation uses the running averages; at step 0 they are the placeholders 0 and 1,
        and during training an exponential average of past batches. Before each evaluation
        the loop recomputes them from the whole training set ("precise BN"): chunk k enters
        with weight 1/k. When ``x`` fits one chunk, eval mode then computes exactly what train
        mode does on all of ``x`` at once; over several chunks the statistics are the mean of
        the chunks' (with the later layers fed by chunk-normalised inputs). Training never
        reads them, so this changes no update. No-op without batchnorm.
        """
        norms = [m for m in self.modules() if isinstance(m, BatchNorm)]
        if not norms:
            return
        was_training, momenta = self.training, [norm.momentum for norm in norms]
        self.train()
        for k, start in enumerate(range(0, len(x), chunk), start=1):
            for norm in norms:
                norm.momentum = 1.0 / k
            self(x[start : start + chunk])
        n = min(len(x), chunk)
        for norm, momentum in zip(norms, momenta, strict=True):
            norm.momentum = momentum
            norm.running_var.mul_((n - 1) / n)  # F.batch_norm keeps unbiased variances
        self.train(was_training)

    @torch.no_grad()
    def initialize_(
        self,
        init: Init | Sequence[Init],
        generators: Sequence[torch.Generator],
        branch_scales: Sequence[float] | None = None,
    ) -> None:
        """Draw every replica's weights and biases, replica r with ``init`` (or ``init[r]``:
        runs batched together may differ in their init) from ``generators[r]``.

        Within a replica the draws go layer 1..L, weight before bias (nn.Linear's order), so a
        replica's parameters equal those of a one-replica model given the same generator.
        Residual branches' weights are then multiplied by ``init.branch_gain(branches)``.
        Each branch's alpha starts at the replica's ``branch_scales[r]`` (default: the
        model's ``branch_scale``), or at ``init.learned_branch_scale`` where that is set, and
        then learns; all replicas must agree on whether alpha learns. Normalisation layers
        start at gamma = 1, beta = 0.
        """
        inits = list(init) if isinstance(init, Sequence) else [init] * self.replicas
        scales = list(branch_scales) if branch_scales is not None else None
        if len(generators) != self.replicas or len(inits) != self.replicas:
            raise ValueError(f"need {self.replicas} generators and inits")
        learns = {i.learned_branch_scale is not None for i in inits}
        if len(learns) != 1:
            raise ValueError("replicas of one model must agree on whether alpha learns")
        branches = sum(layer.skip for layer in self.layers)
        for r, (rinit, generator) in enumerate(zip(inits, generators, strict=True)):
            gain = rinit.branch_gain(branches)
            for layer in self.layers:
                rinit.fill_(layer.linear.weight[r], layer.linear.bias[r], generator)
                if layer.skip and gain != 1.0:
                    layer.linear.weight[r].mul_(gain)
            learned = rinit.learned_branch_scale
            for layer in self.layers:
                if layer.skip:
                    start = layer.branch_scale if scales is None else scales[r]
                    layer.alpha[r].fill_(start if learned is None else learned)
        for layer in self.layers:
            if layer.skip:
                layer.alpha.requires_grad_(learns == {True})
