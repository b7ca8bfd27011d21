r"""Learned priors for a VAE: a mixture of Gaussians and the VampPrior (notebook 15).

The course's VAE fixes $p(z) = \mathcal N(0, I)$. Here the prior is a mixture with $K$ components, learned with
the encoder and the decoder:

$$p_\lambda(z) = \sum_{k=1}^K \pi_k\,\mathcal N\big(z;\ m_k, \operatorname{diag} e^{s_k}\big).$$

* **MoG prior** (``prior="mog"``): the weights $\pi = \operatorname{softmax}(\text{logits})$, means $m_k$ and
  log-variances $s_k$ are free parameters ($K(2d + 1)$ numbers).
* **VampPrior** (``prior="vamp"``, Tomczak & Welling 2018): $\pi_k = 1/K$ and component $k$ is the encoder's own
  posterior of a learned **pseudo-input** $u_k$ (an image, $u_k = \operatorname{sigmoid}(\text{pseudo\_logits}_k)$):
  $p_\lambda(z) = \frac1K\sum_k q_\phi(z\mid u_k)$, a small learned copy of the aggregate posterior.

The KL term $\mathrm{KL}(q_\phi(z\mid x)\,\|\,p_\lambda(z))$ has no closed form any more: :func:`learned_prior_elbo`
estimates it by Monte Carlo with the same $z$ as the reconstruction, $\widehat{\mathrm{KL}} = \frac1S\sum_s
[\log q_\phi(z_s\mid x) - \log p_\lambda(z_s)]$, and :func:`kl_monte_carlo` gives it with its standard error.
:func:`learned_prior_iwae` is the IWAE bound with $\log p_\lambda$ in the weights. :func:`kl_split` splits the mean
KL into $I_q(x; z) + \mathrm{KL}(q(z)\,\|\,p)$ for any prior, and :func:`render_hole_maps` draws notebook 07's hole
map against any prior. All values are nats per example.

:class:`LearnedPriorVAE` *holds* a course :class:`vae_lesson.VAE` (``model.vae``: the same encoder and decoder) and
has no ``encode``/``decode`` of its own, on purpose: :func:`vae_lesson.elbo` and :func:`vae_lesson.iwae_bound` assume
$\mathcal N(0, I)$, so they refuse this model instead of silently using the wrong prior. Train it with
``fit(model, X, objective=learned_prior_elbo)``. Not here: the hierarchy (:mod:`vae_lesson.variants.hierarchical`).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn

from vae_lesson import _checks
from vae_lesson.core.bounds import ELBOTerms
from vae_lesson.core.checkpoint import register_model
from vae_lesson.core.distributions import bernoulli_log_likelihood, gaussian_log_likelihood, reparameterize
from vae_lesson.core.models import VAE
from vae_lesson.views.latent_views import HOLE_RATIO, aggregate_log_density

PRIORS = ("mog", "vamp")
LOG_2PI = math.log(2 * math.pi)


def _check_mixture(log_weights, mu, logvar) -> None:
    _checks.tensor("log_weights", log_weights, ndim=1, finite=False)
    _checks.tensor("mu", mu, ndim=2)
    _checks.tensor("logvar", logvar, ndim=2)
    _checks.same_shape("mu", mu, "logvar", logvar)
    if log_weights.shape[0] != mu.shape[0]:
        _checks.fail("log_weights", f"one entry per component, shape [{mu.shape[0]}]", list(log_weights.shape))


def mixture_log_density(z: torch.Tensor, log_weights: torch.Tensor, mu: torch.Tensor,
                        logvar: torch.Tensor) -> torch.Tensor:
    r"""$\log \sum_k \pi_k\,\mathcal N(z; \mu_k, \operatorname{diag} e^{\text{logvar}_k})$, nats, by log-sum-exp.

    ``z``: ``[..., d]``; ``log_weights`` $\log\pi$ ``[K]`` (normalised); ``mu``, ``logvar``: ``[K, d]``.
    Returns ``[...]`` (``z`` without its last axis).
    """
    _check_mixture(log_weights, mu, logvar)
    _checks.tensor("z", z, ndim=tuple(range(1, 8)))
    if z.shape[-1] != mu.shape[1]:
        _checks.fail("z", f"a last axis of size {mu.shape[1]} (the components' dimension)", list(z.shape))
    diff = z[..., None, :] - mu  # [..., K, d]
    log_n = -0.5 * (diff.pow(2) * torch.exp(-logvar) + logvar + LOG_2PI).sum(-1)  # [..., K]
    return torch.logsumexp(log_n + log_weights, dim=-1)  # [...]


def sample_mixture(n: int, log_weights: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    r"""``n`` draws from the mixture: a component $k \sim \pi$, then
    $z = \mu_k + e^{\text{logvar}_k / 2}\odot\varepsilon$.

    The standard deviation is $\exp(\text{logvar}/2)$, not $\exp(\text{logvar})$. Returns ``[n, d]``.
    """
    n = _checks.integer("n", n, minimum=1)
    _check_mixture(log_weights, mu, logvar)
    _checks.generator("generator", generator)
    weights = torch.softmax(log_weights.detach().double(), 0)  # [K]
    k = torch.multinomial(weights, n, replacement=True, generator=generator)  # [n]
    return reparameterize(mu[k], logvar[k], generator=generator)  # [n, d]


def mixture_moments(log_weights: torch.Tensor, mu: torch.Tensor,
                    logvar: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The mixture's mean $\sum_k\pi_k\mu_k$ ``[d]`` and covariance
    $\sum_k \pi_k(\operatorname{diag}\sigma_k^2 + \mu_k\mu_k^\top) - \bar\mu\bar\mu^\top$ ``[d, d]``, in closed form."""
    _check_mixture(log_weights, mu, logvar)
    weights = torch.softmax(log_weights, 0)  # [K]
    mean = weights @ mu  # [d]
    second = torch.einsum("k,ki,kj->ij", weights, mu, mu) + torch.diag(weights @ logvar.exp())  # [d, d]
    return mean, second - torch.outer(mean, mean)


@register_model
class LearnedPriorVAE(nn.Module):
    r"""The course's VAE (``self.vae``: same encoder, decoder and sizes) with a learned mixture prior.

    ``prior``: ``"mog"`` (free means, log-variances and weights) or ``"vamp"`` (``n_components`` pseudo-inputs
    through the encoder, equal weights). :meth:`prior_components` returns ``(log_weights [K], mu [K, d],
    logvar [K, d])`` for either; everything else (density, sampling, moments) is computed from them.
    """

    def __init__(self, input_dim: int, latent_dim: int, hidden_dims=(400,), prior: str = "vamp",
                 n_components: int = 50):
        super().__init__()
        self.prior_kind = _checks.choice("prior", prior, PRIORS)
        self.n_components = _checks.integer("n_components", n_components, minimum=1)
        self.vae = VAE(input_dim, latent_dim, hidden_dims)
        self.input_dim, self.latent_dim = self.vae.input_dim, self.vae.latent_dim
        self.config = {**self.vae.config, "prior": prior, "n_components": self.n_components}
        K, d = self.n_components, self.latent_dim
        if prior == "mog":
            self.prior_mu = nn.Parameter(torch.randn(K, d))  # [K, d]
            self.prior_logvar = nn.Parameter(torch.zeros(K, d))  # [K, d]
            self.prior_logits = nn.Parameter(torch.zeros(K))  # [K]
        else:
            self.pseudo_logits = nn.Parameter(0.1 * torch.randn(K, self.input_dim))  # [K, D]: grey noise

    @torch.no_grad()
    def init_pseudo_inputs(self, X: torch.Tensor, generator: torch.Generator | None = None) -> None:
        """VampPrior: start the pseudo-inputs at ``n_components`` random rows of ``X [n, D]`` (shrunk into
        [0.05, 0.95], where the sigmoid still passes gradients)."""
        if self.prior_kind != "vamp":
            _checks.fail("model", "a VampPrior model (prior='vamp')", f"prior={self.prior_kind!r}")
        _checks.tensor("X", X, ndim=2, low=0.0, high=1.0)
        if X.shape[1] != self.input_dim or X.shape[0] < 1:
            _checks.fail("X", f"shape [n >= 1, {self.input_dim}]", list(X.shape))
        rows = torch.randint(0, X.shape[0], (self.n_components,), generator=generator)
        self.pseudo_logits.copy_(torch.logit(0.05 + 0.9 * X[rows].to(self.pseudo_logits.dtype)))

    def pseudo_inputs(self) -> torch.Tensor:
        """The VampPrior's pseudo-inputs $u_k$, images ``[K, D]`` in (0, 1)."""
        return torch.sigmoid(self.pseudo_logits)

    def prior_components(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(log_weights [K], mu [K, d], logvar [K, d])`` of $p_\\lambda(z)$; differentiable."""
        if self.prior_kind == "mog":
            return torch.log_softmax(self.prior_logits, 0), self.prior_mu, self.prior_logvar
        mu, logvar = self.vae.encode(self.pseudo_inputs())  # [K, d] each: q(z | u_k)
        return mu.new_full((self.n_components,), -math.log(self.n_components)), mu, logvar

    def log_prior(self, z: torch.Tensor) -> torch.Tensor:
        r"""$\log p_\lambda(z)$: ``z [..., d]`` -> ``[...]``, nats."""
        return mixture_log_density(z, *self.prior_components())

    @torch.no_grad()
    def sample_prior(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` codes $z \\sim p_\\lambda(z)$, ``[n, d]``."""
        return sample_mixture(n, *self.prior_components(), generator=generator)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Ancestral sampling, $z \\sim p_\\lambda(z)$, decoded: pixel probabilities ``[n, D]``."""
        return torch.sigmoid(self.vae.decode(self.sample_prior(n, generator)))

    def extra_repr(self) -> str:
        return f"prior={self.prior_kind!r}, n_components={self.n_components}"


def _check_learned(model) -> LearnedPriorVAE:
    if not isinstance(model, LearnedPriorVAE):
        _checks.fail("model", "a LearnedPriorVAE", type(model).__name__, TypeError)
    return model


def _draw(model, x, n_samples, generator):
    """Encode ``x``, draw ``S`` codes: ``(mu, logvar, z [S, batch, d])``."""
    mu, logvar = model.vae.encode(x)  # [batch, d] each
    shape = (n_samples, *mu.shape)
    return mu, logvar, reparameterize(mu.expand(shape), logvar.expand(shape), generator=generator)


def _log_ratio(model, mu, logvar, z, components=None):
    """$\\log q_\\phi(z\\mid x) - \\log p_\\lambda(z)$ at the drawn ``z [S, batch, d]``, ``[S, batch]``."""
    components = model.prior_components() if components is None else components
    return gaussian_log_likelihood(z, mu, logvar) - mixture_log_density(z, *components)


def learned_prior_elbo(model, x: torch.Tensor, n_samples: int = 1,
                       generator: torch.Generator | None = None) -> ELBOTerms:
    r"""The ELBO with the learned prior, per example: ``reconstruction`` $= \frac1S\sum_s\log p_\theta(x\mid z_s)$,
    ``kl`` $= \frac1S\sum_s[\log q_\phi(z_s\mid x) - \log p_\lambda(z_s)]$ (a Monte Carlo estimate, unbiased for
    the KL), $z_s \sim q_\phi(z\mid x)$, the same draws for both. ``x``: ``[batch, D]``. Returns
    :class:`vae_lesson.ELBOTerms` of ``[batch]`` tensors, nats; differentiable, the objective for ``fit``."""
    model = _check_learned(model)
    n_samples = _checks.integer("n_samples", n_samples, minimum=1)
    _checks.generator("generator", generator)
    mu, logvar, z = _draw(model, x, n_samples, generator)  # z [S, batch, d]
    reconstruction = bernoulli_log_likelihood(model.vae.decode(z), x.to(mu.dtype)).mean(0)  # [batch]
    kl = _log_ratio(model, mu, logvar, z).mean(0)  # [batch]
    return ELBOTerms(reconstruction - kl, reconstruction, kl)


class MonteCarloKL(NamedTuple):
    """``kl`` ``[batch]``: the mean of ``n_samples`` draws of $\\log q - \\log p$; ``se``: its standard error."""

    kl: torch.Tensor
    se: torch.Tensor


@torch.no_grad()
def kl_monte_carlo(model, x: torch.Tensor, n_samples: int = 100,
                   generator: torch.Generator | None = None) -> MonteCarloKL:
    r"""$\mathrm{KL}(q_\phi(z\mid x)\,\|\,p_\lambda(z))$ by Monte Carlo, per example, with its standard error
    $\operatorname{sd}_s[\log q - \log p]/\sqrt S$ (``n_samples`` $= S \ge 2$). ``x``: ``[batch, D]``; nats."""
    model = _check_learned(model)
    n_samples = _checks.integer("n_samples", n_samples, minimum=2)
    _checks.generator("generator", generator)
    mu, logvar, z = _draw(model, x, n_samples, generator)
    ratio = _log_ratio(model, mu, logvar, z)  # [S, batch]
    return MonteCarloKL(ratio.mean(0), ratio.std(0) / math.sqrt(n_samples))


@torch.no_grad()
def learned_prior_iwae(model, x: torch.Tensor, k: int, generator: torch.Generator | None = None,
                       max_rows: int = 4096) -> torch.Tensor:
    r"""IWAE bound $\log\frac1k\sum_i p_\theta(x\mid z_i)\,p_\lambda(z_i)/q_\phi(z_i\mid x)$, $z_i\sim q_\phi(z\mid x)$:
    a stochastic lower bound on $\log p(x)$ under the learned prior. ``x``: ``[batch, D]``; returns ``[batch]``,
    nats; log-sum-exp over chunks of at most ``max_rows`` decoded rows."""
    model = _check_learned(model)
    k = _checks.integer("k", k, minimum=1)
    max_rows = _checks.integer("max_rows", max_rows, minimum=1)
    _checks.generator("generator", generator)
    components = model.prior_components()  # once: the VampPrior encodes its pseudo-inputs here
    out = []
    for b in range(0, x.shape[0], max_rows):
        xb = x[b:b + max_rows]
        step = max(1, max_rows // xb.shape[0])
        running = None  # log sum of the weights so far, [batch]
        for start in range(0, k, step):
            mu, logvar, z = _draw(model, xb, min(step, k - start), generator)  # [chunk, batch, d]
            log_w = bernoulli_log_likelihood(model.vae.decode(z), xb.to(mu.dtype)) - _log_ratio(
                model, mu, logvar, z, components)  # [chunk, batch]
            part = torch.logsumexp(log_w, 0)
            running = part if running is None else torch.logaddexp(running, part)
        out.append(running - math.log(k))
    return torch.cat(out)


def standard_log_prior(z: torch.Tensor) -> torch.Tensor:
    r"""$\log\mathcal N(z; 0, I)$: ``z [..., d]`` -> ``[...]``, nats (the course VAE's prior, for comparisons)."""
    _checks.tensor("z", z, ndim=tuple(range(1, 8)))
    return -0.5 * (z.pow(2) + LOG_2PI).sum(-1)


class KLSplit(NamedTuple):
    r"""Mean KL $= I_q(x; z) + \mathrm{KL}(q(z)\,\|\,p(z))$, nats per example, each with its standard error."""

    rate: float
    rate_se: float
    mutual_information: float
    mutual_information_se: float
    marginal_kl: float
    marginal_kl_se: float


@torch.no_grad()
def kl_split(mu: torch.Tensor, logvar: torch.Tensor, log_prior, n_samples: int = 4,
             generator: torch.Generator | None = None) -> KLSplit:
    r"""Hoffman & Johnson's split of the mean KL for **any** prior ``log_prior(z [M, d]) -> [M]``:

    $$\frac1N\sum_n\mathrm{KL}(q(z\mid x_n)\,\|\,p)
    = \underbrace{\mathbb E\Big[\log\frac{q(z\mid x_n)}{q(z)}\Big]}_{I_q(x;z)}
    + \underbrace{\mathbb E\Big[\log\frac{q(z)}{p(z)}\Big]}_{\mathrm{KL}(q(z)\,\|\,p(z))},\quad
    q(z) = \frac1N\sum_n q(z\mid x_n),$$

    all three by Monte Carlo with ``n_samples`` draws $z\sim q(z\mid x_n)$ for every $n$ ($M = NS$ draws;
    standard error sd$/\sqrt M$). ``mu``, ``logvar``: ``[N, d]``, the encodings of $N$ images.
    """
    _checks.tensor("mu", mu, ndim=2)
    _checks.tensor("logvar", logvar, ndim=2)
    _checks.same_shape("mu", mu, "logvar", logvar)
    if not callable(log_prior):
        _checks.fail("log_prior", "a function z [M, d] -> log p(z) [M]", type(log_prior).__name__, TypeError)
    n_samples = _checks.integer("n_samples", n_samples, minimum=1)
    _checks.generator("generator", generator)
    shape = (n_samples, *mu.shape)
    z = reparameterize(mu.expand(shape), logvar.expand(shape), generator=generator).reshape(-1, mu.shape[1])
    log_q_given_x = gaussian_log_likelihood(z, mu.repeat(n_samples, 1), logvar.repeat(n_samples, 1))  # [M]
    log_q = aggregate_log_density(z, mu, logvar)  # [M]
    log_p = log_prior(z)  # [M]
    parts = [log_q_given_x - log_p, log_q_given_x - log_q, log_q - log_p]
    return KLSplit(*(v for part in parts for v in (part.mean().item(), part.std().item() / math.sqrt(len(z)))))


@torch.no_grad()
def hole_fraction(z: torch.Tensor, log_p: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> float:
    r"""The share of codes ``z [m, d]`` (drawn from a prior, with ``log_p [m]`` its log-density there) that fall
    in a hole of the aggregate posterior of ``mu, logvar [N, d]``: $q(z) <$ ``HOLE_RATIO`` $\cdot\,p(z)$."""
    _checks.tensor("log_p", log_p, ndim=1)
    if log_p.shape[0] != z.shape[0]:
        _checks.fail("log_p", f"one value per row of z, shape [{z.shape[0]}]", list(log_p.shape))
    log_q = aggregate_log_density(z, mu, logvar)  # [m]
    return (log_q < log_p + math.log(HOLE_RATIO)).double().mean().item()


@torch.no_grad()
def render_hole_maps(panels: dict, limit: float = 3.5, n_grid: int = 101):
    r"""Notebook 07's hole map against any prior, one panel per model: $\log_{10} q(z)/p(z)$ (clipped to ±2) where
    the prior has mass ($p(z) > e^{-4.5}\max p$: for $\mathcal N(0, I)$ its 3σ disc), the holes $q < p/10$ inside
    the black line, and the prior's density contours in grey. ``panels``: ``{title: (mu [N, 2], logvar [N, 2],
    log_prior)}`` with ``log_prior(z [M, 2]) -> [M]``. Returns the figure."""
    if not isinstance(panels, dict) or not panels:
        _checks.fail("panels", "a non-empty dict {title: (mu, logvar, log_prior)}", type(panels).__name__, TypeError)
    axis = torch.linspace(-limit, limit, n_grid)
    z2, z1 = torch.meshgrid(axis.flip(0), axis, indexing="ij")
    z = torch.stack([z1, z2], dim=-1).reshape(-1, 2)  # [n_grid**2, 2], top row first
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels) + 0.8, 4.3), layout="constrained",
                             squeeze=False)
    extent = (-limit, limit, -limit, limit)
    for ax, (title, (mu, logvar, log_prior)) in zip(axes[0], panels.items()):
        log_p = log_prior(z.to(mu.dtype)).float()
        ratio = ((aggregate_log_density(z.to(mu.dtype), mu, logvar).float() - log_p) / math.log(10)).clamp(-2, 2)
        ratio[log_p < log_p.max() - 4.5] = float("nan")  # where the prior has (almost) no mass
        shown = ax.imshow(ratio.reshape(n_grid, n_grid).numpy(), cmap="RdBu", vmin=-2, vmax=2, extent=extent)
        grid_p = log_p.reshape(n_grid, n_grid).numpy()
        ax.contour(axis.numpy(), axis.flip(0).numpy(), grid_p, levels=grid_p.max() - np.array([4.5, 2.0, 0.5]),
                   colors="0.45", linewidths=0.8, linestyles="dashed")
        ax.contour(axis.numpy(), axis.flip(0).numpy(), ratio.reshape(n_grid, n_grid).numpy(),
                   levels=[math.log10(HOLE_RATIO)], colors="black", linewidths=1.2)
        ax.set(xlabel="$z_1$", ylabel="$z_2$", title=title)
    fig.colorbar(shown, ax=axes[0].tolist(), label=r"$\log_{10}\, q(z)/p(z)$ (clipped to ±2)")
    return fig
