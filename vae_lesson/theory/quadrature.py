r"""Exact $p(x)$ and $p(z\mid x)$ of a :class:`~vae_lesson.theory.toy.ToyModel` by quadrature, and Monte Carlo
estimates.

**Quadrature** (for $d \le 3$): the midpoint rule on a uniform grid of $N$ points per axis over $[-L, L]^d$,
cell centres $z_i$, cell volume $h^d$ with $h = 2L/N$, summed in log space (log-sum-exp) so nothing underflows:

$$\log p(x) \approx \log \sum_{i=1}^{N^d} \exp\big(\log p(x\mid z_i) + \log p(z_i)\big) + d\log h, \qquad
p(z_i\mid x) \approx \frac{p(x\mid z_i)\,p(z_i)}{p(x)}.$$

It is exact up to ~1e-9 relative once $h$ is well below the posterior's width and $L$ covers its mass (the
defaults: $L = 6$, $N = 2001$ for $d = 1$, $N = 401$ for $d = 2$). Its cost, $N^d$ evaluations of
$p(x\mid z)$, is why it dies with the dimension (notebook 03).

**Monte Carlo** (any $d$): importance sampling with a Gaussian proposal $q(z) = \mathcal N(\mu, \operatorname{diag}
e^{\text{logvar}})$, an unbiased estimate of $p(x)$ returned as its log,

$$\hat p(x) = \frac1S \sum_{s=1}^S \frac{p(x\mid z_s)\,p(z_s)}{q(z_s)},\quad z_s \sim q; \qquad
\text{naive MC: } q = p(z),\ \hat p(x) = \frac1S\sum_s p(x\mid z_s).$$

Every function returns ``[batch]`` tensors in nats (float64); each row of ``x`` gets its own independent samples,
so ``x.repeat(R, 1)`` gives ``R`` independent estimates per data point (see :func:`relative_error`).
"""

from __future__ import annotations

import math

import torch

from vae_lesson import _checks
from vae_lesson.core.distributions import reparameterize
from vae_lesson.theory.linear_gaussian import LinearGaussian
from vae_lesson.theory.toy import ToyModel

DEFAULT_LIMIT = 6.0  # the grid covers [-6, 6]^d: the prior puts less than 1e-8 of its mass outside
DEFAULT_POINTS = {1: 2001, 2: 401, 3: 121}
MAX_GRID_POINTS = 4_000_000
_CHUNK_ELEMENTS = 2**22  # bound on the size of intermediate [rows, batch, D] tensors


def _check_model(model: object) -> ToyModel:
    if not isinstance(model, ToyModel):
        _checks.fail("model", "a vae_lesson.theory.toy.ToyModel", type(model).__name__, TypeError)
    return model


def quadrature_grid(latent_dim: int, n_points: int, limit: float = DEFAULT_LIMIT) -> tuple[torch.Tensor, float]:
    """Midpoint grid over ``[-limit, limit]^latent_dim``: ``(z [n_points**d, d], log cell volume d*log h)``.

    Points are ordered like ``torch.meshgrid(axis, axis, indexing="ij")``: for ``d = 2``, ``density.reshape(N, N)``
    has ``z_1`` along rows; draw it with ``plt.contour(axis, axis, density.reshape(N, N).T)``.
    """
    latent_dim = _checks.integer("latent_dim", latent_dim, minimum=1)
    n_points = _checks.integer("n_points", n_points, minimum=2)
    limit = _checks.number("limit", limit, positive=True)
    if n_points**latent_dim > MAX_GRID_POINTS:
        _checks.fail("n_points", f"n_points**d <= {MAX_GRID_POINTS:,} grid points (quadrature costs N^d)",
                     f"{n_points}**{latent_dim} = {n_points**latent_dim:.3g}")
    h = 2 * limit / n_points
    axis = -limit + h * (torch.arange(n_points, dtype=torch.float64) + 0.5)  # [N]
    z = torch.stack(torch.meshgrid(*[axis] * latent_dim, indexing="ij"), dim=-1).reshape(-1, latent_dim)
    return z, latent_dim * math.log(h)  # [N^d, d]


def _check_gaussian(model, x, mu_name, mu, logvar_name, logvar) -> torch.Tensor:
    """Check the model, ``x``, and a diagonal Gaussian ``(mu, logvar)``, each ``[batch of x, latent_dim]``."""
    _check_model(model)
    x = model._check_x(x)
    _checks.tensor(mu_name, mu, ndim=2)
    _checks.tensor(logvar_name, logvar, ndim=2)
    _checks.same_shape(mu_name, mu, logvar_name, logvar)
    if mu.shape != (x.shape[0], model.latent_dim):
        _checks.fail(mu_name, f"shape [{x.shape[0]}, {model.latent_dim}] (batch of x, latent_dim)", list(mu.shape))
    return x


def _grid_for(model, n_points, limit):
    n_points = DEFAULT_POINTS.get(model.latent_dim, 0) if n_points is None else n_points
    if n_points == 0:
        _checks.fail("model", "latent_dim <= 3 for quadrature (or pass n_points)", model.latent_dim)
    return quadrature_grid(model.latent_dim, n_points, limit)


def _log_joint_chunks(model, x, z):
    """Yield ``(start, log p(x_i, z_g))``: ``[rows, G]`` blocks of consecutive rows of ``x``; the grid is decoded once.

    ``||x - f(z)||^2`` is expanded as ``|x|^2 - 2 x.f(z) + |f(z)|^2`` (one matrix product; float64, so the
    cancellation costs ~1e-13 nats)."""
    mean, log_prior = model.decode(z), model.log_prior(z)  # [G, D], [G]
    mean_sq = mean.pow(2).sum(-1)  # [G]
    s2 = model.sigma**2
    const = -0.5 * model.data_dim * math.log(2 * math.pi * s2)
    rows = max(1, _CHUNK_ELEMENTS // z.shape[0])
    for i in range(0, x.shape[0], rows):
        xb = x[i:i + rows]  # [rows, D]
        sq = (xb.pow(2).sum(-1, keepdim=True) - 2 * xb @ mean.T + mean_sq).clamp_min(0)  # [rows, G]
        yield i, const - sq / (2 * s2) + log_prior


def log_marginal_quadrature(model: ToyModel, x: torch.Tensor, n_points: int | None = None,
                            limit: float = DEFAULT_LIMIT) -> torch.Tensor:
    r"""$\log p(x) = \log\int p(x\mid z)\,p(z)\,dz$ by the midpoint rule: ``x [batch, D]`` -> ``[batch]``, nats.

    Exact only if ``[-limit, limit]^d`` holds the posterior's mass: for an ``x`` far from the data (e.g. beyond the
    spiral's radius $e^{0.3 \cdot 6} \approx 6$) compare with a larger ``limit``."""
    _check_model(model)
    x = model._check_x(x)
    z, log_volume = _grid_for(model, n_points, limit)  # [G, d]
    parts = [torch.logsumexp(block, dim=-1) for _, block in _log_joint_chunks(model, x, z)]  # [rows] each
    return (torch.cat(parts) if parts else x.new_zeros(0)) + log_volume


def posterior_on_grid(model: ToyModel, x: torch.Tensor, n_points: int | None = None,
                      limit: float = DEFAULT_LIMIT) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The exact posterior density $p(z\mid x)$ on the grid: ``(z [G, d], density [batch, G])``, $G = N^d$.

    Normalized so that ``density.sum(-1) * h**d == 1`` (a density per unit of $z$-volume, not a probability).
    """
    _check_model(model)
    x = model._check_x(x)
    z, log_volume = _grid_for(model, n_points, limit)  # [G, d]
    blocks = [block for _, block in _log_joint_chunks(model, x, z)]  # [rows, G] each
    log_joint = torch.cat([x.new_zeros(0, z.shape[0]), *blocks])  # [batch, G]
    log_density = log_joint - torch.logsumexp(log_joint, dim=-1, keepdim=True) - log_volume
    return z, log_density.exp()


def elbo_quadrature(model: ToyModel, x: torch.Tensor, q_mu: torch.Tensor, q_logvar: torch.Tensor,
                    n_points: int | None = None, limit: float = DEFAULT_LIMIT) -> torch.Tensor:
    r"""The ELBO of $q(z) = \mathcal N(q\_mu, \operatorname{diag} e^{q\_logvar})$ for each row of ``x``, nats.

    $\text{ELBO} = \mathbb E_q[\log p(x, z)] + \mathcal H(q)$: the expectation by quadrature on the grid (weights
    $q(z_i)h^d$, renormalized), the entropy $\mathcal H(q) = \tfrac12\sum_j \log(2\pi e\,\sigma_j^2)$ exactly.
    ``q_mu``, ``q_logvar``: ``[batch, d]``. Raises if the grid misses more than 1e-3 of q's mass (q too narrow
    for the grid spacing, or outside ``[-limit, limit]^d``). ``log_marginal_quadrature - elbo_quadrature``
    is $\mathrm{KL}(q \,\|\, p(z\mid x)) \ge 0$.
    """
    x = _check_gaussian(model, x, "q_mu", q_mu, "q_logvar", q_logvar)
    z, log_volume = _grid_for(model, n_points, limit)  # [G, d]
    q_mu, q_logvar = q_mu.double(), q_logvar.double()
    expected_log_joint = []
    for i, log_joint in _log_joint_chunks(model, x, z):  # [rows, G]
        mu, logvar = q_mu[i:i + log_joint.shape[0], None, :], q_logvar[i:i + log_joint.shape[0], None, :]
        log_q = -0.5 * (math.log(2 * math.pi) + logvar + (z - mu).pow(2) / logvar.exp()).sum(-1)  # [rows, G]
        mass = (torch.logsumexp(log_q, dim=-1) + log_volume).exp()  # q's mass on the grid, [rows]
        if bool((mass - 1).abs().max() > 1e-3):
            _checks.fail("q_logvar", "a q whose mass on the grid is 1 +- 1e-3 (q too narrow for the grid spacing "
                         "or outside [-limit, limit]^d: use more n_points or a larger limit)",
                         f"a mass of {float(mass[(mass - 1).abs().argmax()]):.4g}")
        weights = torch.softmax(log_q, dim=-1)  # q(z_i) h^d renormalized, [rows, G]
        expected_log_joint.append((weights * log_joint).sum(-1))
    entropy = 0.5 * (math.log(2 * math.pi) + 1 + q_logvar).sum(-1)  # [batch]
    return torch.cat([x.new_zeros(0), *expected_log_joint]) + entropy


def _log_mean_weights(model, x, mu, logvar, n_samples, generator, from_prior):
    x = model._check_x(x)
    n_samples = _checks.integer("n_samples", n_samples, minimum=1)
    _checks.generator("generator", generator)
    batch, d = x.shape[0], model.latent_dim
    chunk = max(1, _CHUNK_ELEMENTS // max(1, batch * max(d, model.data_dim)))
    running = None  # log sum_s w_s over the chunks so far, [batch]
    for start in range(0, n_samples, chunk):
        eps = torch.randn(min(chunk, n_samples - start), batch, d, generator=generator, dtype=torch.float64)
        z = reparameterize(mu, logvar, eps=eps)  # [chunk, batch, d]
        log_w = model._log_likelihood_of_mean(x, model.decode(z))  # log p(x|z_s), [chunk, batch]
        if not from_prior:  # + log p(z_s) - log q(z_s)
            log_w = log_w + model.log_prior(z) + 0.5 * (math.log(2 * math.pi) + logvar + eps.pow(2)).sum(-1)
        part = torch.logsumexp(log_w, dim=0)
        running = part if running is None else torch.logaddexp(running, part)
    return running - math.log(n_samples)


def naive_mc_log_marginal(model: ToyModel, x: torch.Tensor, n_samples: int,
                          generator: torch.Generator | None = None) -> torch.Tensor:
    r"""$\log \hat p(x)$, $\hat p(x) = \frac1S\sum_{s=1}^S p(x\mid z_s)$ with $z_s \sim p(z)$: ``[batch]``, nats.

    Unbiased for $p(x)$ (not for $\log p(x)$), but its variance explodes when the posterior is a tiny part of
    the prior, as it is in high dimension. Each row of ``x [batch, D]`` gets its own ``n_samples`` draws.
    """
    _check_model(model)
    zero = torch.zeros(model.latent_dim, dtype=torch.float64)
    return _log_mean_weights(model, x, zero, zero, n_samples, generator, from_prior=True)


def importance_sampling_log_marginal(model: ToyModel, x: torch.Tensor, proposal_mu: torch.Tensor,
                                     proposal_logvar: torch.Tensor, n_samples: int,
                                     generator: torch.Generator | None = None) -> torch.Tensor:
    r"""$\log \hat p(x)$, $\hat p(x) = \frac1S\sum_s p(x\mid z_s)p(z_s)/q(z_s)$ with $z_s \sim q$: ``[batch]``, nats.

    $q = \mathcal N(\text{proposal\_mu}, \operatorname{diag} e^{\text{proposal\_logvar}})$, both ``[batch, d]``.
    When $q$ is the exact posterior every weight equals $p(x)$: zero variance. An encoder $q_\phi(z\mid x)$ is
    a learned proposal of this kind (notebooks 03 and 08).
    """
    x = _check_gaussian(model, x, "proposal_mu", proposal_mu, "proposal_logvar", proposal_logvar)
    return _log_mean_weights(model, x, proposal_mu.double(), proposal_logvar.double(), n_samples, generator,
                             from_prior=False)


def relative_error(log_estimates: torch.Tensor, log_exact: torch.Tensor) -> torch.Tensor:
    r"""Root-mean-square relative error of repeated estimates of $p(x)$ (not of $\log p(x)$): ``[batch]``.

    $\sqrt{\frac1R\sum_{r=1}^R \big(\hat p_r(x)/p(x) - 1\big)^2}$ from ``log_estimates [R, batch]`` and
    ``log_exact [batch]``. 0 for a perfect estimator, about 0.1 for "right to 10 %", and 1 when every estimate
    is close to 0, i.e. the samples missed where $p(x\mid z)$ lives. A dimensionless ratio.
    """
    _checks.tensor("log_estimates", log_estimates, ndim=2, finite=False)
    _checks.tensor("log_exact", log_exact, ndim=1)
    if log_estimates.shape[1] != log_exact.shape[0]:
        _checks.fail("log_estimates", f"shape [R, {log_exact.shape[0]}] (R repeats of each log_exact)",
                     list(log_estimates.shape))
    ratio = torch.exp(log_estimates.double() - log_exact.double())  # p_hat / p, [R, batch]
    return (ratio - 1).pow(2).mean(0).sqrt()


def naive_mc_relative_std(linear: LinearGaussian, x: torch.Tensor, n_samples: int) -> torch.Tensor:
    r"""The exact relative standard deviation of naive Monte Carlo's $\hat p(x)$ for a linear-Gaussian model.

    $\sqrt{\operatorname{Var}[\hat p(x)]}/p(x) = \sqrt{\big(\mathbb E_{p(z)}[p(x\mid z)^2]/p(x)^2 - 1\big)/S}$,
    with $\mathbb E_{p(z)}[p(x\mid z)^2] = (4\pi\sigma^2)^{-D/2}\,\mathcal N(x;\ b,\ WW^\top + \tfrac{\sigma^2}2 I)$,
    because $\mathcal N(x; m, \sigma^2 I)^2 = (4\pi\sigma^2)^{-D/2}\mathcal N(x; m, \tfrac{\sigma^2}2 I)$.
    ``x [batch, D]``, ``n_samples`` $= S$. Returns ``[batch]``, dimensionless (compare with :func:`relative_error`).
    """
    if not isinstance(linear, LinearGaussian):
        _checks.fail("linear", "a vae_lesson.LinearGaussian", type(linear).__name__, TypeError)
    n_samples = _checks.integer("n_samples", n_samples, minimum=1)
    narrow = LinearGaussian(linear.W, linear.b, linear.sigma / math.sqrt(2))
    log_second_moment = narrow.log_marginal(x) - 0.5 * linear.data_dim * math.log(4 * math.pi * linear.sigma**2)
    return torch.sqrt(torch.expm1(log_second_moment - 2 * linear.log_marginal(x)) / n_samples)
