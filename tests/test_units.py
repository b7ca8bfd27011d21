"""Unit tests for vae_lesson.core.units: bits per dimension and the KL weight hidden in a loss's reductions.

References no one here wrote: base-2 logarithms from ``math.log2``, the uniform distribution over binary images
(exactly 1 bit per pixel), and, for ``implied_beta``, losses written literally with torch's own reductions
(``F.binary_cross_entropy_with_logits(..., reduction=...)``) and ``torch.distributions`` KLs, whose gradients
must be a positive multiple of the beta-weighted ELBO loss's gradients.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Bernoulli, Normal, kl_divergence

from vae_lesson import bits_per_dim, implied_beta, nats_to_bits
from vae_lesson.core.units import REDUCTIONS


def test_uniform_binary_images_are_one_bit_per_pixel():
    # p(x) = 2^-D for every binary image of D pixels: -log p = D ln 2 nats = D bits = 1 bit per pixel.
    for dim in (1, 64, 784):
        assert bits_per_dim(dim * math.log(2), dim) == pytest.approx(1.0, rel=1e-12)
    assert nats_to_bits(math.log(8)) == pytest.approx(3.0, rel=1e-12)


def test_bits_per_dim_matches_base_two_logarithms():
    g = torch.Generator().manual_seed(0)
    probs = torch.rand(5, 784, generator=g, dtype=torch.float64).clamp(0.01, 0.99)
    x = torch.bernoulli(probs, generator=g)
    nll_nats = -Bernoulli(probs=probs).log_prob(x).sum(-1)  # [5], nats
    expected = [-sum(math.log2(p if xi else 1 - p) for p, xi in zip(pr.tolist(), xr.tolist())) / 784
                for pr, xr in zip(probs, x)]
    got = bits_per_dim(nll_nats, 784)
    assert isinstance(got, torch.Tensor) and got.shape == (5,)
    torch.testing.assert_close(got, torch.tensor(expected, dtype=torch.float64), rtol=1e-10, atol=1e-12)


def test_known_values():
    assert implied_beta("sum", "sum", 784, 20, 128) == 1.0
    assert implied_beta("batchmean", "batchmean", 784, 20, 128) == 1.0
    assert implied_beta("mean", "batchmean", 784, 20, 128) == 784.0
    assert implied_beta("mean", "mean", 784, 20, 128) == pytest.approx(39.2, rel=1e-15)
    assert implied_beta("mean", "sum", 784, 20, 128) == 784.0 * 128
    assert implied_beta("sum", "mean", 784, 20, 128) == 1 / (20 * 128)


def _literal_loss(logits, x, mu, logvar, rec_reduction, kl_reduction):
    """A VAE loss as tutorials write it, with torch's reductions (``batchmean`` = sum / batch)."""
    batch = x.shape[0]
    if rec_reduction == "batchmean":
        rec = F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / batch
    else:
        rec = F.binary_cross_entropy_with_logits(logits, x, reduction=rec_reduction)
    kl_elements = kl_divergence(Normal(mu, torch.exp(0.5 * logvar)), Normal(0.0, 1.0))  # [batch, latent_dim]
    kl = {"sum": kl_elements.sum(), "batchmean": kl_elements.sum() / batch, "mean": kl_elements.mean()}[kl_reduction]
    return rec + kl


@pytest.mark.parametrize("rec_reduction,kl_reduction", list(itertools.product(REDUCTIONS, REDUCTIONS)))
def test_gradients_are_a_positive_multiple_of_the_beta_loss(rec_reduction, kl_reduction):
    batch, input_dim, latent_dim = 6, 12, 3
    g = torch.Generator().manual_seed(1)
    x = torch.bernoulli(torch.full((batch, input_dim), 0.3, dtype=torch.float64), generator=g)  # binary pixels
    leaves = [torch.randn(batch, input_dim, generator=g, dtype=torch.float64),  # logits
              torch.randn(batch, latent_dim, generator=g, dtype=torch.float64),  # mu
              torch.randn(batch, latent_dim, generator=g, dtype=torch.float64)]  # logvar
    beta = implied_beta(rec_reduction, kl_reduction, input_dim, latent_dim, batch)

    def grads(loss_fn):
        params = [t.clone().requires_grad_(True) for t in leaves]
        return torch.autograd.grad(loss_fn(*params), params)

    literal = grads(lambda lg, m, lv: _literal_loss(lg, x, m, lv, rec_reduction, kl_reduction))
    reference = grads(lambda lg, m, lv: -(Bernoulli(logits=lg).log_prob(x).sum(-1)
                                          - beta * kl_divergence(Normal(m, torch.exp(0.5 * lv)),
                                                                 Normal(0.0, 1.0)).sum(-1)).mean())
    flat_lit, flat_ref = torch.cat([t.flatten() for t in literal]), torch.cat([t.flatten() for t in reference])
    factor = (flat_lit @ flat_ref) / (flat_ref @ flat_ref)
    assert factor > 0
    torch.testing.assert_close(flat_lit, factor * flat_ref, rtol=1e-9, atol=1e-12)


def test_argument_errors_name_the_argument():
    with pytest.raises(ValueError, match="reconstruction"):
        implied_beta("average", "sum", 784, 20, 128)
    with pytest.raises(ValueError, match="kl"):
        implied_beta("sum", "none", 784, 20, 128)
    with pytest.raises(ValueError, match="batch_size"):
        implied_beta("mean", "sum", 784, 20, 0)
    with pytest.raises(TypeError, match="latent_dim"):
        implied_beta("mean", "sum", 784, 2.0, 128)
    with pytest.raises(ValueError, match="dim"):
        bits_per_dim(100.0, 0)
    with pytest.raises(ValueError, match="nll"):
        bits_per_dim(float("nan"), 784)
    with pytest.raises(TypeError, match="nll"):
        bits_per_dim("100", 784)
    with pytest.raises(ValueError, match="nats"):
        nats_to_bits(torch.tensor([1.0, float("inf")]))
