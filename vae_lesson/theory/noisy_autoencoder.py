r"""Is a VAE just an autoencoder with Gaussian noise on z? The model and the numbers that answer it.

:class:`NoisyAutoencoder` is an autoencoder whose code is blurred by **fixed** noise during training,
$z = \mu_\phi(x) + \sigma_0\,\varepsilon$, $\varepsilon\sim\mathcal N(0, I)$. It is written as a VAE whose encoder
may not choose its variance (``logvar`` $= \log\sigma_0^2$ for every input), so ``fit(model, X, beta=0.0)`` trains
it on the reconstruction term alone, exactly like a VAE trained without its KL term.

Without the KL term nothing ties the codes to the prior $p(z) = \mathcal N(0, I)$, and the encoder "escapes" the
noise: it spreads the means far apart (noise of fixed size becomes negligible) or, when it controls $\sigma$, shrinks
$\sigma$. Three numbers measure it, from the codes ``mu``, ``logvar`` ``[n, d]`` of a data set:

* :func:`aggregate_kl`: $\mathrm{KL}\big(q(z)\,\|\,p(z)\big)$ in nats for the **aggregate posterior**
  $q(z) = \frac1n\sum_i q_\phi(z\mid x_i)$ (the distribution of codes the decoder was trained on), by Monte Carlo.
  Small when the codes fill the prior, large when they spread out or collapse to points.
* :func:`prior_coverage`: the fraction of prior draws $z\sim p(z)$ lying within ``radius`` standard deviations
  of some code, i.e. where the decoder received training inputs. The rest fall in "holes".
* :func:`code_summary`: the spread of the means (their std per dimension) and the mean $\sigma$.

This module is for the experiment of notebook 05; it is not a model anyone should use for generation.
"""

from __future__ import annotations

import math

import torch

from vae_lesson import _checks
from vae_lesson.core.distributions import gaussian_log_likelihood, reparameterize
from vae_lesson.core.models import VAE, mlp
from vae_lesson.views.latent_views import aggregate_log_density


class NoisyAutoencoder(VAE):
    r"""An autoencoder with fixed Gaussian noise on its code: $q(z\mid x) = \mathcal N(\mu_\phi(x), \sigma_0^2 I)$.

    ``encode(x)`` returns ``(mu [batch, latent_dim], logvar)`` with ``logvar`` the constant $\log\sigma_0^2$,
    so ``elbo``, ``fit`` and ``sample`` work unchanged. Train it with ``fit(model, X, beta=0.0)``: the
    reconstruction term through noisy codes, no KL. The encoder MLP outputs ``latent_dim`` numbers (a VAE's
    outputs ``2 * latent_dim``): there is no variance to learn.
    """

    def __init__(self, input_dim: int, latent_dim: int, hidden_dims=(400,), noise_std: float = 1.0):
        super().__init__(input_dim, latent_dim, hidden_dims)
        self.noise_std = _checks.number("noise_std", noise_std, positive=True)
        self.config["noise_std"] = self.noise_std
        self.encoder = mlp((self.input_dim, *self.hidden_dims, self.latent_dim))  # means only

    def _encode(self, x):
        mu = self.encoder(x)  # [batch, latent_dim]
        logvar = torch.full_like(mu, 2.0 * math.log(self.noise_std))  # [batch, latent_dim], constant
        return mu, logvar

    def extra_repr(self) -> str:
        return super().extra_repr() + f", noise_std={self.noise_std:g}"


def _check_codes(mu, logvar):
    _checks.tensor("mu", mu, ndim=2)
    _checks.tensor("logvar", logvar, ndim=2)
    _checks.same_shape("mu", mu, "logvar", logvar)
    if mu.shape[0] < 1:
        _checks.fail("mu", "at least one code", "an empty tensor")


@torch.no_grad()
def aggregate_kl(mu: torch.Tensor, logvar: torch.Tensor, n_samples: int = 2000,
                 generator: torch.Generator | None = None) -> float:
    r"""Monte Carlo $\mathrm{KL}\big(q(z)\,\|\,\mathcal N(0, I)\big)$ of the aggregate posterior, in nats.

    $q(z) = \frac1n\sum_{i=1}^n \mathcal N(z;\mu_i,\operatorname{diag}e^{\text{logvar}_i})$ from the codes
    ``mu``, ``logvar`` ``[n, d]``; the estimate is $\frac1M\sum_m \big[\log q(z_m) - \log p(z_m)\big]$,
    $z_m\sim q$, ``M = n_samples``, with $\log q$ an exact log-sum-exp over the ``n`` components.
    Cost ``M * n``: fine for a few thousand codes in a low-dimensional latent space.
    """
    _check_codes(mu, logvar)
    n_samples = _checks.integer("n_samples", n_samples, minimum=1)
    _checks.generator("generator", generator)
    index = torch.randint(0, mu.shape[0], (n_samples,), generator=generator)  # [M], which component
    eps = torch.randn(n_samples, mu.shape[1], generator=generator, dtype=mu.dtype)  # [M, d]
    z = reparameterize(mu[index], logvar[index], eps=eps)  # [M, d], draws from q(z)
    log_q = aggregate_log_density(z, mu, logvar)  # [M]
    log_p = gaussian_log_likelihood(z, torch.zeros_like(z), torch.zeros_like(z))  # [M], log N(z; 0, I)
    return (log_q - log_p).mean().item()


@torch.no_grad()
def prior_coverage(mu: torch.Tensor, logvar: torch.Tensor, n_samples: int = 2000, radius: float = 2.0,
                   generator: torch.Generator | None = None) -> float:
    r"""Fraction of prior draws $z\sim\mathcal N(0, I)$ within ``radius`` standard deviations of some code.

    A draw is covered when $\min_i \lVert (z - \mu_i)/\sigma_i \rVert < r$ for the codes ``mu``, ``logvar``
    ``[n, d]``: it falls where the decoder regularly received inputs during training. Returns a number in
    ``[0, 1]``; ``1 - coverage`` is the share of prior samples that land in a hole of the code space.
    """
    _check_codes(mu, logvar)
    n_samples = _checks.integer("n_samples", n_samples, minimum=1)
    radius = _checks.number("radius", radius, positive=True)
    _checks.generator("generator", generator)
    z = torch.randn(n_samples, mu.shape[1], generator=generator, dtype=mu.dtype)  # [M, d]
    return (distance_to_codes(z, mu, logvar) < radius).double().mean().item()


@torch.no_grad()
def distance_to_codes(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    r"""For each point of ``z [m, d]``, $\min_i \lVert (z - \mu_i)/\sigma_i \rVert$ over the codes ``mu``, ``logvar``
    ``[n, d]``: the distance to the nearest code, in units of that code's standard deviations. ``[m]``.
    """
    _check_codes(mu, logvar)
    _checks.tensor("z", z, ndim=2)
    if z.shape[1] != mu.shape[1]:
        _checks.fail("z", f"shape [m, {mu.shape[1]}] (the width of mu)", list(z.shape))
    inv_sigma = torch.exp(-0.5 * logvar)  # [n, d]
    out = []
    for start in range(0, z.shape[0], 256):
        part = z[start:start + 256, None, :].to(mu.dtype)  # [chunk, 1, d]
        out.append(((part - mu) * inv_sigma).norm(dim=-1).min(dim=1).values)  # [chunk], in standard deviations
    return torch.cat(out) if out else mu.new_zeros(0)


@torch.no_grad()
def code_summary(mu: torch.Tensor, logvar: torch.Tensor) -> dict[str, float]:
    r"""``spread``: std of the means over the data, averaged over dimensions; ``sigma``: mean of $e^{\text{logvar}/2}$.

    Under the prior both would be 1 for the codes $z$ themselves: a VAE's codes satisfy
    $\text{spread}^2 + \overline{\sigma^2} \approx 1$ when the aggregate posterior fills $\mathcal N(0, I)$.
    """
    _check_codes(mu, logvar)
    if mu.shape[0] < 2:
        _checks.fail("mu", "at least two codes (to measure a spread)", f"{mu.shape[0]}")
    return {"spread": mu.std(0).mean().item(), "sigma": torch.exp(0.5 * logvar).mean().item()}
