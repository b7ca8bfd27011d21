"""Small builders the unit tests share (imported as ``support``: pytest puts tests/ on sys.path)."""

from __future__ import annotations

import torch

from vae_lesson import VAE


def gen(seed: int) -> torch.Generator:
    """A CPU generator seeded with ``seed``."""
    return torch.Generator().manual_seed(seed)


def small_vae(seed: int = 0, latent_dim: int = 2, hidden_dims=(8,)) -> VAE:
    """A float64 VAE on 6 pixels, its weights drawn after ``torch.manual_seed(seed)``."""
    torch.manual_seed(seed)
    return VAE(input_dim=6, latent_dim=latent_dim, hidden_dims=hidden_dims).double()


def binary_x(batch: int, seed: int = 1) -> torch.Tensor:
    """``[batch, 6]`` binary pixels, each 1 with probability 1/2, float64."""
    return torch.bernoulli(torch.full((batch, 6), 0.5, dtype=torch.float64), generator=gen(seed))
