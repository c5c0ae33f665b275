"""The classic backprop derivation in plain NumPy: the oracle depthlab is checked against.

This is the classic tutorial's network, written from its formulas and nothing else
(a^0 = x, layers 1..L with L the output layer). Columns are samples, as in the
derivation: a^l has shape (n_l, B).

    z^l = W^l a^{l-1} + b^l,   a^l = phi(z^l),   a^0 = x
    delta^L = dJ/da^L (.) phi_out'(z^L)
    delta^l = (W^{l+1})^T delta^{l+1} (.) phi'(z^l)
    dJ/dW^l = delta^l (a^{l-1})^T,   dJ/db^l = delta^l

``delta`` here is the per-sample error: column i is dJ_i/dz^l for sample i's own loss J_i.
The batch objective is the mean of the J_i, so the weight gradient is the batch mean of
delta_i (a_i^{l-1})^T, and mini-batch gradient descent is W^l <- W^l - lr dJ/dW^l.
Losses: J = 1/2 ||a^L - y||^2 (squared; one-hot y for classes), or cross-entropy with a^L
read as logits, for which dJ/da^L = softmax(a^L) - y.

Only plain MLPs (no residual skips, no normalisation) have this derivation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from depthlab.activations import ACTIVATIONS
from depthlab.data import CLASSIFICATION


@dataclass
class Backprop:
    """One forward and backward pass: per-layer lists indexed 0..L-1 for layers 1..L."""

    zs: list[np.ndarray]  # z^l, (n_l, B)
    activations: list[np.ndarray]  # a^0..a^L, (n_l, B)
    deltas: list[np.ndarray]  # per-sample delta^l, (n_l, B)
    weight_grads: list[np.ndarray]  # dJ/dW^l of the batch mean, (n_l, n_{l-1})
    bias_grads: list[np.ndarray]  # dJ/db^l of the batch mean, (n_l,)
    loss: float  # the batch mean of J_i


@dataclass
class ReferenceMLP:
    """Weights W^l (n_l, n_{l-1}) and biases b^l (n_l,) of layers 1..L, in float64."""

    weights: list[np.ndarray]
    biases: list[np.ndarray]
    activation: str
    output_activation: str = "none"

    @classmethod
    def from_model(cls, model, replica: int = 0) -> ReferenceMLP:
        """A copy of one replica of a plain depthlab MLP (residual or normalised ones have
        another derivation and are refused)."""
        layers = [model.layer(l) for l in range(1, model.num_layers + 1)]
        if any(layer.skip for layer in layers) or any(
            type(layer.norm).__name__ != "NoNorm" for layer in layers
        ):
            raise ValueError("the textbook derivation covers plain MLPs only")
        return cls(
            [
                layer.linear.weight[replica].detach().double().cpu().numpy().copy()
                for layer in layers
            ],
            [layer.linear.bias[replica].detach().double().cpu().numpy().copy() for layer in layers],
            model.activation,
            model.output_activation,
        )

    def _phi(self, l: int):
        """The activation of layer l (1-based): phi for hidden layers, phi_out at L."""
        if l < len(self.weights):
            return ACTIVATIONS[self.activation]
        if self.output_activation == "none":
            return ACTIVATIONS["linear"]
        return ACTIVATIONS[self.output_activation]

    def feedforward(self, x: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """z^1..z^L and a^0..a^L for inputs x of shape (B, d) (returned column-wise)."""
        a = np.asarray(x, dtype=np.float64).T
        zs, activations = [], [a]
        for l, (w, b) in enumerate(zip(self.weights, self.biases, strict=True), start=1):
            z = w @ a + b[:, None]
            a = self._phi(l).phi(z)
            zs.append(z)
            activations.append(a)
        return zs, activations

    def backprop(self, x: np.ndarray, y: np.ndarray, loss: str, task: str) -> Backprop:
        """The delta recursion for inputs x (B, d) and targets y (labels (B,) or (B, k))."""
        zs, activations = self.feedforward(x)
        out = activations[-1]
        target = _target_columns(y, out.shape[0], task)
        batch = out.shape[1]
        if loss == "squared":
            per_sample = 0.5 * ((out - target) ** 2).sum(axis=0)
            dj_da = out - target
        elif loss == "cross_entropy":
            shifted = out - out.max(axis=0, keepdims=True)
            log_softmax = shifted - np.log(np.exp(shifted).sum(axis=0, keepdims=True))
            per_sample = -(target * log_softmax).sum(axis=0)
            dj_da = np.exp(log_softmax) - target
        else:
            raise ValueError(f"unknown loss {loss!r}")
        num_layers = len(self.weights)
        deltas: list[np.ndarray] = [np.empty(0)] * num_layers
        deltas[-1] = dj_da * self._phi(num_layers).dphi(zs[-1])
        for l in range(num_layers - 1, 0, -1):  # layers L-1 .. 1
            deltas[l - 1] = (self.weights[l].T @ deltas[l]) * self._phi(l).dphi(zs[l - 1])
        weight_grads = [d @ a.T / batch for d, a in zip(deltas, activations[:-1], strict=True)]
        bias_grads = [d.mean(axis=1) for d in deltas]
        return Backprop(zs, activations, deltas, weight_grads, bias_grads, float(per_sample.mean()))

    def gradient_descent_step(
        self, x: np.ndarray, y: np.ndarray, lr: float, loss: str, task: str
    ) -> float:
        """W^l <- W^l - lr dJ/dW^l, b^l <- b^l - lr dJ/db^l; returns the loss before the step."""
        result = self.backprop(x, y, loss, task)
        for l in range(len(self.weights)):
            self.weights[l] -= lr * result.weight_grads[l]
            self.biases[l] -= lr * result.bias_grads[l]
        return result.loss


def _target_columns(y: np.ndarray, k: int, task: str) -> np.ndarray:
    """Targets as columns (k, B): one-hot for class labels."""
    y = np.asarray(y)
    if task == CLASSIFICATION:
        return np.eye(k)[y.astype(int)].T
    return y.reshape(len(y), -1).T.astype(np.float64)
