r"""Posterior collapse: measure which latent dimensions a VAE uses, and the free-bits objective against it.

With a factorised $q_\phi(z\mid x) = \prod_j \mathcal N(\mu_j(x), \sigma_j^2(x))$ and $p(z) = \mathcal N(0, I)$,
the KL term of the ELBO is a sum over latent dimensions $j$,

$$\mathrm{KL}(q_\phi(z\mid x)\,\|\,p(z)) = \sum_j \mathrm{KL}_j(x), \qquad
\mathrm{KL}_j(x) = \tfrac12\big(\mu_j^2 + \sigma_j^2 - 1 - \log\sigma_j^2\big).$$

A dimension has **collapsed** when $q_\phi(z_j\mid x) \approx p(z_j)$ for every $x$: $\mathrm{KL}_j \approx 0$, so
$z_j$ carries no information about $x$ and the decoder ignores it. Two diagnostics:

* :func:`kl_per_dimension`: $\mathbb E_x[\mathrm{KL}_j(x)]$, nats, one number per dimension;
* :func:`active_units` (Burda, Grosse & Salakhutdinov 2016): dimension $j$ is *active* when
  $A_j = \operatorname{Var}_x\big(\mathbb E_{q_\phi(z\mid x)}[z_j]\big) = \operatorname{Var}_x(\mu_j(x)) > 0.01$.

And one remedy, **free bits** (Kingma et al. 2016, *Improved Variational Inference with Inverse Autoregressive
Flow*): :func:`free_bits_objective` replaces the KL of a mini-batch $M$ by
$\sum_j \max\big(\lambda, \frac1{|M|}\sum_{x\in M}\mathrm{KL}_j(x)\big)$, so a dimension may use up to
$\lambda$ nats for free. (The other remedy, KL warm-up, is ``fit(..., kl_warmup_epochs=...)``.)
Likelihood evaluation lives in :mod:`vae_lesson.analysis.evaluation`.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from vae_lesson import _checks
from vae_lesson.core.bounds import Objective, check_vae, elbo_from_q, encode_gaussian
from vae_lesson.views.latent_views import latent_activity


class ActiveUnits(NamedTuple):
    r"""``count``: how many latent dimensions are active; ``activity``: $\operatorname{Var}_x(\mu_j(x))$, ``[d]``."""

    count: int
    activity: torch.Tensor


def kl_terms(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    r"""$\mathrm{KL}_j = \tfrac12(\mu_j^2 + e^{\text{logvar}_j} - 1 - \text{logvar}_j)$ per example and dimension.

    ``mu``, ``logvar``: ``[batch, latent_dim]``. Returns ``[batch, latent_dim]``, nats; its sum over the last
    dimension is :func:`vae_lesson.gaussian_kl`.
    """
    _checks.tensor("mu", mu, ndim=2)
    _checks.tensor("logvar", logvar, ndim=2)
    _checks.same_shape("mu", mu, "logvar", logvar)
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)  # [batch, latent_dim]


@torch.no_grad()
def _encode_all(model, X, batch_size):
    check_vae(model)
    _checks.tensor("X", X, ndim=2, low=0.0, high=1.0)
    if X.shape[0] < 1:
        _checks.fail("X", "at least one example", "an empty tensor")
    if X.shape[1] != getattr(model, "input_dim", X.shape[1]):
        _checks.fail("X", f"shape [n, {model.input_dim}] (the model's input_dim)", list(X.shape))
    batch_size = _checks.integer("batch_size", batch_size, minimum=1)
    parts = [encode_gaussian(model, X[s:s + batch_size]) for s in range(0, X.shape[0], batch_size)]
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])  # [n, latent_dim] each


def kl_per_dimension(model, X: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    r"""Mean KL of each latent dimension over the data, $\frac1n\sum_{n}\mathrm{KL}_j(x_n)$.

    ``X``: ``[n, input_dim]`` in [0, 1]. Returns ``[latent_dim]``, nats; it sums to the mean of
    :func:`vae_lesson.gaussian_kl` over ``X`` (the ``kl`` that :func:`vae_lesson.evaluate` reports).
    A collapsed dimension has a value near 0.
    """
    mu, logvar = _encode_all(model, X, batch_size)
    return kl_terms(mu, logvar).mean(0)  # [latent_dim]


def active_units(model, X: torch.Tensor, threshold: float = 0.01, batch_size: int = 1000) -> ActiveUnits:
    r"""Burda et al.'s (2016) active units: $A_j = \operatorname{Var}_x(\mu_j(x)) > \text{threshold}$.

    $\mu_j(x) = \mathbb E_{q_\phi(z\mid x)}[z_j]$ is the encoder mean; the variance is over the rows of ``X``
    (population variance, divided by $n$). A unit whose posterior mean does not move with $x$ tells the
    decoder nothing. ``X``: ``[n, input_dim]``. Returns :class:`ActiveUnits` ``(count, activity [latent_dim])``.
    The 0.01 threshold is small against the prior's unit variance; after long training the used and unused
    units lie far on either side of it, but after a short one the unused units can still sit near it (notebook
    08), so report ``activity`` too, not only the count.
    """
    threshold = _checks.number("threshold", threshold, minimum=0.0)
    mu, _ = _encode_all(model, X, batch_size)
    activity = latent_activity(mu)  # [latent_dim], population variance of the posterior means
    return ActiveUnits(int((activity > threshold).sum()), activity)


def free_bits_objective(lambda_: float):
    r"""A training objective for :func:`vae_lesson.fit` with free bits (Kingma et al. 2016), $\lambda$ nats each.

    On a mini-batch $x_1..x_B$, with $\overline{\mathrm{KL}}_j = \frac1B\sum_n \mathrm{KL}_j(x_n)$,

    $$\text{loss} = -\frac1B\sum_n \log p_\theta(x_n\mid z_n) + \beta\sum_j \max(\lambda, \overline{\mathrm{KL}}_j).$$

    Returns ``objective(model, x, generator=None) ->`` :class:`~vae_lesson.core.bounds.Objective` with
    ``loss = -reconstruction`` and ``beta_term`` the clamped KL ``free_bits_kl`` ``[batch]``,
    $\sum_j [\mathrm{KL}_j(x_n)$ if $\overline{\mathrm{KL}}_j \ge \lambda$, else the constant $\lambda]$, whose
    batch mean is exactly the clamped sum above (a dimension below $\lambda$ gets no KL gradient); ``fit``'s
    ``beta`` and warm-up weight it. Its named terms, each ``[batch]`` in nats, are what ``fit``'s history records:
    ``reconstruction``, the true ``kl`` and ``elbo`` (:func:`~vae_lesson.core.bounds.elbo_from_q`, the same noise
    draws as :func:`vae_lesson.elbo`), ``free_bits_kl`` and ``free_bits_objective`` = reconstruction $-$
    free_bits_kl (whose batch mean is <= the ELBO's). ``lambda_ = 0`` gives the ELBO back.
    """
    lambda_ = _checks.number("lambda_", lambda_, minimum=0.0)

    def objective(model, x: torch.Tensor, generator: torch.Generator | None = None) -> Objective:
        check_vae(model)
        _checks.generator("generator", generator)
        mu, logvar = encode_gaussian(model, x)  # [batch, latent_dim] each
        terms = elbo_from_q(model.decode, x, mu, logvar, generator=generator)  # the true ELBO's terms, [batch]
        kl_dims = kl_terms(mu, logvar)  # [batch, latent_dim]
        below = kl_dims.detach().mean(0) < lambda_  # [latent_dim]
        clamped = torch.where(below, torch.full_like(kl_dims, lambda_), kl_dims).sum(-1)  # [batch]
        named = {"reconstruction": terms.reconstruction, "kl": terms.kl, "elbo": terms.elbo,
                 "free_bits_kl": clamped, "free_bits_objective": terms.reconstruction - clamped}
        return Objective(loss=-terms.reconstruction, terms=named, beta_term=clamped)

    objective.lambda_ = lambda_
    objective.__name__ = objective.__qualname__ = f"free_bits_objective({lambda_:g})"
    return objective
