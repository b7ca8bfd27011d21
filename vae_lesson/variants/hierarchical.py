r"""A two-level hierarchical VAE: $z_2$ on top, $z_1$ given $z_2$, $x$ given $z_1$ (notebook 15).

Generative model (top-down):
$$p(z_2) = \mathcal N(0, I), \qquad p_\theta(z_1\mid z_2) = \mathcal N\big(\mu_p(z_2), \operatorname{diag}
e^{\text{logvar}_p(z_2)}\big), \qquad p_\theta(x\mid z_1) = \prod_d\operatorname{Bernoulli}(x_d;\ \cdot).$$

Inference, in the same order as the generative model: $q_\phi(z_2\mid x)\,q_\phi(z_1\mid x, z_2)$, both diagonal
Gaussians. One bottom-up network reads $x$ into $h(x)$; $q(z_2\mid x)$ is read from $h$, and $q(z_1\mid x, z_2)$ from
$[h(x), z_2]$. This is the simplest correct choice: $q(z_1\mid x, z_2)$ may depend on $z_2$ as the true posterior
$p(z_1\mid x, z_2)$ does. (Sønderby et al. 2016's ladder VAE also runs this order, but builds $q(z_1\mid x, z_2)$ by
precision-weighting a bottom-up Gaussian with the prior $p(z_1\mid z_2)$, sharing parameters between the two; we
do not.) With $z_2 \sim q(z_2\mid x)$ and $z_1 \sim q(z_1\mid x, z_2)$ the ELBO splits term by term:

$$\text{ELBO}(x) = \underbrace{\mathbb E_q[\log p_\theta(x\mid z_1)]}_{\text{reconstruction}}
- \underbrace{\mathbb E_{q(z_2\mid x)}\,\mathrm{KL}\big(q(z_1\mid x, z_2)\,\|\,p(z_1\mid z_2)\big)}_{\text{kl\_z1}}
- \underbrace{\mathrm{KL}\big(q(z_2\mid x)\,\|\,\mathcal N(0, I)\big)}_{\text{kl\_z2}}.$$

Both KLs are Gaussian-to-Gaussian, in closed form given the drawn $z_2$ (:func:`gaussian_kl_between`); the outer
expectation over $z_2$ is a Monte Carlo average. The known failure is **top-layer collapse**: $q(z_2\mid x) =
p(z_2)$, ``kl_z2`` $\approx 0$, and the model is a one-level VAE with a wasted layer; :func:`active_units_per_layer`
measures it, and ``fit(..., kl_warmup_epochs=...)`` is the remedy used in the notebook. Nats per example throughout.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn

from vae_lesson import _checks
from vae_lesson.analysis.collapse import ActiveUnits
from vae_lesson.core.bounds import ELBOTerms
from vae_lesson.core.checkpoint import register_model
from vae_lesson.core.distributions import bernoulli_log_likelihood, gaussian_kl, gaussian_log_likelihood, reparameterize
from vae_lesson.core.models import mlp
from vae_lesson.views.latent_views import latent_activity


def gaussian_kl_between(mu_q: torch.Tensor, logvar_q: torch.Tensor, mu_p: torch.Tensor,
                        logvar_p: torch.Tensor) -> torch.Tensor:
    r"""$\mathrm{KL}(\mathcal N(\mu_q, \sigma_q^2)\,\|\,\mathcal N(\mu_p, \sigma_p^2))
    = \tfrac12\sum_j\big[\log\tfrac{\sigma_{p,j}^2}{\sigma_{q,j}^2} + \tfrac{\sigma_{q,j}^2 + (\mu_{q,j}-\mu_{p,j})^2}
    {\sigma_{p,j}^2} - 1\big]$, diagonal Gaussians; all four ``[..., d]`` (equal shapes) -> ``[...]``, nats."""
    for name, t in (("mu_q", mu_q), ("logvar_q", logvar_q), ("mu_p", mu_p), ("logvar_p", logvar_p)):
        _checks.tensor(name, t, ndim=tuple(range(1, 8)))
        _checks.same_shape("mu_q", mu_q, name, t)
    return 0.5 * (logvar_p - logvar_q + (logvar_q.exp() + (mu_q - mu_p).pow(2)) * torch.exp(-logvar_p) - 1).sum(-1)


@register_model
class HierarchicalVAE(nn.Module):
    r"""Two Gaussian latent layers, ``latent_dims = (d1, d2)`` ($z_1$ near the data, $z_2$ on top).

    * bottom-up $h(x)$: the VAE's encoder MLP through ``hidden_dims`` (ReLU);
    * $q(z_2\mid x)$: a linear map of $h$; $q(z_1\mid x, z_2)$: an MLP of $[h, z_2]$ with ``top_hidden`` units;
    * $p(z_1\mid z_2)$: an MLP with ``top_hidden`` units; $p(x\mid z_1)$: the VAE's decoder MLP.
    No ``encode``: :func:`vae_lesson.elbo` (one Gaussian layer, $\mathcal N(0, I)$ prior) refuses this model;
    train it with ``fit(model, X, objective=hierarchical_elbo)``.
    """

    def __init__(self, input_dim: int, latent_dims=(20, 8), hidden_dims=(400,), top_hidden: int = 64):
        super().__init__()
        self.input_dim = _checks.integer("input_dim", input_dim, minimum=1)
        dims = _checks.dims("latent_dims", latent_dims)
        if len(dims) != 2:
            _checks.fail("latent_dims", "two sizes (d1, d2), bottom then top", list(dims))
        self.latent_dims = dims
        self.hidden_dims = _checks.dims("hidden_dims", hidden_dims)
        if not self.hidden_dims:
            _checks.fail("hidden_dims", "at least one hidden layer", list(self.hidden_dims))
        self.top_hidden = _checks.integer("top_hidden", top_hidden, minimum=1)
        self.config = {"input_dim": self.input_dim, "latent_dims": list(dims), "hidden_dims": list(self.hidden_dims),
                       "top_hidden": self.top_hidden}
        d1, d2 = dims
        h = self.hidden_dims[-1]
        self.bottom_up = nn.Sequential(mlp((self.input_dim, *self.hidden_dims)), nn.ReLU())  # x -> h
        self.q_z2 = nn.Linear(h, 2 * d2)  # h -> (mu2, logvar2)
        self.q_z1 = mlp((h + d2, self.top_hidden, 2 * d1))  # [h, z2] -> (mu1, logvar1)
        self.p_z1 = mlp((d2, self.top_hidden, 2 * d1))  # z2 -> (prior mu1, prior logvar1)
        self.decoder = mlp((d1, *reversed(self.hidden_dims), self.input_dim))  # z1 -> x_logits

    def infer(self, x: torch.Tensor, n_samples: int = 1, generator: torch.Generator | None = None) -> dict:
        r"""One pass of $q$, ``n_samples`` draws: a dict of ``mu2, logvar2`` ``[batch, d2]``, ``z2`` ``[S, batch, d2]``,
        ``mu1, logvar1, z1`` and the prior's ``prior_mu1, prior_logvar1`` at the drawn ``z2``, ``[S, batch, d1]``."""
        _checks.tensor("x", x, ndim=2, low=0.0, high=1.0)
        if x.shape[1] != self.input_dim:
            _checks.fail("x", f"shape [batch, {self.input_dim}] (input_dim)", list(x.shape))
        n_samples = _checks.integer("n_samples", n_samples, minimum=1)
        _checks.generator("generator", generator)
        h = self.bottom_up(_checks.model_input("x", x, self))  # [batch, h]
        mu2, logvar2 = self.q_z2(h).chunk(2, -1)  # [batch, d2] each
        shape = (n_samples, *mu2.shape)
        z2 = reparameterize(mu2.expand(shape), logvar2.expand(shape), generator=generator)  # [S, batch, d2]
        mu1, logvar1 = self.q_z1(torch.cat([h.expand(n_samples, *h.shape), z2], -1)).chunk(2, -1)  # [S, batch, d1]
        z1 = reparameterize(mu1, logvar1, generator=generator)  # [S, batch, d1]
        prior_mu1, prior_logvar1 = self.p_z1(z2).chunk(2, -1)  # [S, batch, d1]
        return dict(mu2=mu2, logvar2=logvar2, z2=z2, mu1=mu1, logvar1=logvar1, z1=z1, prior_mu1=prior_mu1,
                    prior_logvar1=prior_logvar1)

    def decode(self, z1: torch.Tensor) -> torch.Tensor:
        """``z1 [..., d1]`` -> ``x_logits [..., input_dim]``."""
        return self.decoder(z1)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        r"""Ancestral sampling $z_2\sim\mathcal N(0, I)$, $z_1\sim p(z_1\mid z_2)$: pixel probabilities ``[n, D]``."""
        n = _checks.integer("n", n, minimum=1)
        _checks.generator("generator", generator)
        dtype = self.decoder[0].weight.dtype
        z2 = torch.randn(n, self.latent_dims[1], generator=generator, dtype=dtype)  # [n, d2]
        mu1, logvar1 = self.p_z1(z2).chunk(2, -1)
        return torch.sigmoid(self.decode(reparameterize(mu1, logvar1, generator=generator)))

    def extra_repr(self) -> str:
        return f"latent_dims={self.latent_dims}, hidden_dims={self.hidden_dims}, top_hidden={self.top_hidden}"


def _check_hierarchical(model) -> HierarchicalVAE:
    if not isinstance(model, HierarchicalVAE):
        _checks.fail("model", "a HierarchicalVAE", type(model).__name__, TypeError)
    return model


class HierarchicalTerms(NamedTuple):
    """Per-example terms, ``[batch]`` each, nats: ``elbo = reconstruction - kl_z1 - kl_z2``."""

    elbo: torch.Tensor
    reconstruction: torch.Tensor
    kl_z1: torch.Tensor
    kl_z2: torch.Tensor


def hierarchical_elbo_terms(model, x: torch.Tensor, n_samples: int = 1,
                            generator: torch.Generator | None = None) -> HierarchicalTerms:
    r"""The ELBO of the module docstring, term by term, averaged over ``n_samples`` draws of $(z_2, z_1)$:
    ``reconstruction`` $\log p(x\mid z_1)$, ``kl_z1`` $\mathrm{KL}(q(z_1\mid x, z_2)\,\|\,p(z_1\mid z_2))$ at the drawn
    $z_2$, ``kl_z2`` $\mathrm{KL}(q(z_2\mid x)\,\|\,\mathcal N(0, I))$ (closed form). ``x``: ``[batch, D]``."""
    model = _check_hierarchical(model)
    q = model.infer(x, n_samples, generator)
    reconstruction = bernoulli_log_likelihood(model.decode(q["z1"]), x.to(q["mu2"].dtype)).mean(0)  # [batch]
    kl_z1 = gaussian_kl_between(q["mu1"], q["logvar1"], q["prior_mu1"], q["prior_logvar1"]).mean(0)  # [batch]
    kl_z2 = gaussian_kl(q["mu2"], q["logvar2"])  # [batch]
    return HierarchicalTerms(reconstruction - kl_z1 - kl_z2, reconstruction, kl_z1, kl_z2)


def hierarchical_elbo(model, x: torch.Tensor, n_samples: int = 1,
                      generator: torch.Generator | None = None) -> ELBOTerms:
    """:func:`hierarchical_elbo_terms` as :class:`vae_lesson.ELBOTerms` for ``fit``: ``kl = kl_z1 + kl_z2``."""
    terms = hierarchical_elbo_terms(model, x, n_samples, generator)
    return ELBOTerms(terms.elbo, terms.reconstruction, terms.kl_z1 + terms.kl_z2)


@torch.no_grad()
def hierarchical_iwae(model, x: torch.Tensor, k: int, generator: torch.Generator | None = None,
                      max_rows: int = 4096) -> torch.Tensor:
    r"""IWAE bound $\log\frac1k\sum_i\frac{p(x\mid z_1^i)\,p(z_1^i\mid z_2^i)\,p(z_2^i)}{q(z_2^i\mid x)\,q(z_1^i\mid x,
    z_2^i)}$, $(z_2^i, z_1^i)\sim q$; ``x [batch, D]`` -> ``[batch]``, nats (chunks of ``max_rows`` decoded rows)."""
    model = _check_hierarchical(model)
    k = _checks.integer("k", k, minimum=1)
    max_rows = _checks.integer("max_rows", max_rows, minimum=1)
    out = []
    for b in range(0, x.shape[0], max_rows):
        xb = x[b:b + max_rows]
        step, running = max(1, max_rows // xb.shape[0]), None
        for start in range(0, k, step):
            q = model.infer(xb, min(step, k - start), generator)
            z2 = q["z2"]
            log_w = (bernoulli_log_likelihood(model.decode(q["z1"]), xb.to(z2.dtype))
                     + gaussian_log_likelihood(q["z1"], q["prior_mu1"], q["prior_logvar1"])
                     + gaussian_log_likelihood(z2, torch.zeros_like(z2), torch.zeros_like(z2))
                     - gaussian_log_likelihood(z2, q["mu2"], q["logvar2"])
                     - gaussian_log_likelihood(q["z1"], q["mu1"], q["logvar1"]))  # [chunk, batch]
            part = torch.logsumexp(log_w, 0)
            running = part if running is None else torch.logaddexp(running, part)
        out.append(running - math.log(k))
    return torch.cat(out)


@torch.no_grad()
def active_units_per_layer(model, X: torch.Tensor, threshold: float = 0.01, n_samples: int = 10,
                           generator: torch.Generator | None = None) -> dict[str, ActiveUnits]:
    r"""Burda et al.'s active units for each layer: unit $j$ is active when $\operatorname{Var}_x\,\mathbb E_q[z_j]
    > $ ``threshold``. $\mathbb E_q[z_2] = \mu_2(x)$; $\mathbb E_q[z_1] = \mathbb E_{q(z_2\mid x)}\,\mu_1(x, z_2)$, the
    mean over ``n_samples`` draws of $z_2$. ``X``: ``[n >= 2, D]``. Returns ``{"z1": ..., "z2": ...}``."""
    model = _check_hierarchical(model)
    threshold = _checks.number("threshold", threshold, minimum=0.0)
    q = model.infer(X, n_samples, generator)
    out = {}
    for name, mean in (("z1", q["mu1"].mean(0)), ("z2", q["mu2"])):
        activity = latent_activity(mean)  # [d], Var_x of the posterior mean
        out[name] = ActiveUnits(int((activity > threshold).sum()), activity)
    return out
