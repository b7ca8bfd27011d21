r"""Units of a VAE's numbers: nats, bits, bits per dimension, and the hidden $\beta$ of a "mean" loss.

For reading and comparing numbers (notebook 06), not for computing them: the bounds themselves live in
:mod:`vae_lesson.core.bounds`.

**Nats and bits.** The package reports every log-likelihood, bound and KL in nats per example, summed over
the $D$ data dimensions. A negative log-likelihood (or a $-\text{ELBO}$) of $L$ nats is $L / \ln 2$ bits, and

$$\text{bits per dimension} = \frac{L}{D \ln 2},$$

the unit of papers on images (for MNIST, $D = 784$).

**Reductions and the hidden $\beta$.** A VAE loss adds a reconstruction term, element-wise ``[batch, D]``,
and a KL term, element-wise ``[batch, latent_dim]``. Each can be reduced three ways (the names of
``torch.nn.KLDivLoss``): ``"sum"`` over everything, ``"batchmean"`` (sum over the dimensions, mean over the
batch: the ELBO's convention, nats per example) or ``"mean"`` over everything. Reducing by ``"sum"``,
``"batchmean"``, ``"mean"`` multiplies the per-example sum by $s = 1$, $1/B$, $1/(B\cdot\text{dims})$. So

$$s_{\text{rec}}\sum_n \text{BCE}_n + s_{\text{kl}}\sum_n \text{KL}_n
  = s_{\text{rec}} \sum_n \big[\text{BCE}_n + \beta\,\text{KL}_n\big],\qquad
  \beta = s_{\text{kl}} / s_{\text{rec}}:$$

a positive multiple of the $\beta$-weighted loss, with the same minimizers and proportional gradients.
Binary cross-entropy averaged over pixels (``reduction="mean"``) plus a KL summed over latent dimensions and
averaged over the batch is $\beta = D$ (784 on MNIST), not the ELBO's $\beta = 1$.
"""

from __future__ import annotations

import math
from fractions import Fraction

import torch

from vae_lesson import _checks

LN2 = math.log(2.0)
REDUCTIONS = ("sum", "batchmean", "mean")


def _nats(name: str, value):
    if isinstance(value, torch.Tensor):
        return _checks.tensor(name, value)
    return _checks.number(name, value)


def nats_to_bits(nats: float | torch.Tensor) -> float | torch.Tensor:
    r"""$\text{nats} / \ln 2$: the same information in bits (a float or a tensor of any shape, unchanged shape)."""
    return _nats("nats", nats) / LN2


def bits_per_dim(nll: float | torch.Tensor, dim: int) -> float | torch.Tensor:
    r"""Bits per dimension $\;L / (D \ln 2)$ of a negative log-likelihood (or $-$ELBO) $L$ in nats per example.

    ``nll``: nats per example, summed over the ``dim`` = $D$ data dimensions (e.g. ``-history.val_elbo[-1]``);
    a float or a tensor such as ``[batch]``. Returns the same type and shape. Example: 100 nats on MNIST
    ($D = 784$) is $100 / (784 \ln 2) \approx 0.184$ bits per pixel.
    """
    nll = _nats("nll", nll)
    dim = _checks.integer("dim", dim, minimum=1)
    return nll / (dim * LN2)


def _scale(name: str, reduction: str, dims: int, batch_size: int) -> Fraction:
    _checks.choice(name, reduction, REDUCTIONS)
    return {"sum": Fraction(1), "batchmean": Fraction(1, batch_size), "mean": Fraction(1, batch_size * dims)}[reduction]


def implied_beta(reconstruction: str, kl: str, input_dim: int, latent_dim: int, batch_size: int) -> float:
    r"""The KL weight $\beta = s_{\text{kl}} / s_{\text{rec}}$ that a loss with these reductions optimises.

    ``reconstruction``: how the element-wise ``[batch, input_dim]`` reconstruction loss (e.g. binary
    cross-entropy) is reduced; ``kl``: how the element-wise ``[batch, latent_dim]`` KL terms are reduced; each
    one of ``"sum"``, ``"batchmean"`` (sum over dimensions, mean over the batch) or ``"mean"`` (mean over
    everything). The loss then equals $s_{\text{rec}}\sum_n[\text{BCE}_n + \beta\,\text{KL}_n]$, a positive
    multiple of the $\beta$-VAE loss. Examples for MNIST (``input_dim=784``, ``latent_dim=20``):

    * ``("sum", "sum")`` or ``("batchmean", "batchmean")``: 1, the ELBO;
    * ``("mean", "batchmean")``: 784 = ``input_dim``;
    * ``("mean", "mean")``: 784 / 20 = 39.2;
    * ``("mean", "sum")``: 784 * ``batch_size``: the model changes when the batch size does.
    """
    input_dim = _checks.integer("input_dim", input_dim, minimum=1)
    latent_dim = _checks.integer("latent_dim", latent_dim, minimum=1)
    batch_size = _checks.integer("batch_size", batch_size, minimum=1)
    s_rec = _scale("reconstruction", reconstruction, input_dim, batch_size)
    s_kl = _scale("kl", kl, latent_dim, batch_size)
    return float(s_kl / s_rec)  # exact rational arithmetic: 784, not 783.9999999999999
