"""Small models of the kind users bring, for MNIST-1D's 40-sample signals (10 classes):
the 1-D CNN and the transformer block that ``depthlab.watch`` is tested and benchmarked on.
Plain PyTorch modules, nothing depthlab-specific inside; ``residual=True`` adds identity
skips around each block. (analysis/watch.ipynb writes its own model, as a user would.)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

SIGNAL_LENGTH = 40  # MNIST-1D's samples
CLASSES = 10


class ConvNet1d(nn.Module):
    """x (B, 40) -> logits (B, 10): a Conv1d stem, ``depth`` blocks of Conv1d (kernel 5,
    length kept) -> optional BatchNorm1d -> ``activation``, then a linear head on the
    flattened maps. A residual block returns x + block(x)."""

    def __init__(
        self,
        channels: int = 16,
        depth: int = 4,
        activation: type[nn.Module] = nn.ReLU,
        batchnorm: bool = False,
        residual: bool = False,
    ) -> None:
        super().__init__()
        self.residual = residual
        self.stem = nn.Sequential(nn.Conv1d(1, channels, 5, padding=2), activation())
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.Conv1d(channels, channels, 5, padding=2),
                *([nn.BatchNorm1d(channels)] if batchnorm else []),
                activation(),
            )
            for _ in range(depth)
        )
        self.head = nn.Linear(channels * SIGNAL_LENGTH, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x.unsqueeze(1))
        for block in self.blocks:
            h = h + block(h) if self.residual else block(h)
        return self.head(h.flatten(1))


class TransformerBlock(nn.Module):
    """Pre-norm self-attention and MLP sublayers, each added to the residual stream:
    x + attn(LN(x)), then x + mlp(LN(x)); attention from Linear q, k, v and output maps."""

    def __init__(self, dim: int, heads: int, residual: bool = True) -> None:
        super().__init__()
        self.heads, self.residual = heads, residual
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.query, self.key, self.value = (nn.Linear(dim, dim) for _ in range(3))
        self.out = nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape

        def split(z: torch.Tensor) -> torch.Tensor:  # (B, T, D) -> (B, heads, T, D / heads)
            return z.view(b, t, self.heads, d // self.heads).transpose(1, 2)

        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        mixed = F.scaled_dot_product_attention(q, k, v)
        return self.out(mixed.transpose(1, 2).reshape(b, t, d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.attention(self.norm1(x))
        x = x + h if self.residual else h
        h = self.mlp(self.norm2(x))
        return x + h if self.residual else h


class TransformerNet(nn.Module):
    """x (B, 40) -> logits (B, 10): the signal cut into ``40 / patch`` tokens, a Linear
    embedding plus a learned position embedding, ``blocks`` transformer blocks, a final
    LayerNorm, the mean over tokens and a Linear head."""

    def __init__(
        self, dim: int = 32, heads: int = 4, blocks: int = 1, patch: int = 4, residual: bool = True
    ) -> None:
        super().__init__()
        self.patch = patch
        self.embed = nn.Linear(patch, dim)
        self.position = nn.Parameter(torch.zeros(SIGNAL_LENGTH // patch, dim))
        self.blocks = nn.ModuleList(TransformerBlock(dim, heads, residual) for _ in range(blocks))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x.view(x.shape[0], -1, self.patch)) + self.position
        for block in self.blocks:
            h = block(h)
        return self.head(self.norm(h).mean(dim=1))
