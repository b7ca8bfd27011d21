r"""Tools for *studying* the ELBO on models where every term is exact (notebook 04): not for training VAEs.

The identity behind everything here, for any density $q(z)$ and a fixed $x$:

$$\log p(x) = \underbrace{\mathbb E_{q}\big[\log p(x, z) - \log q(z)\big]}_{\text{ELBO}(q)}
  + \underbrace{\mathbb E_{q}\big[\log q(z) - \log p(z\mid x)\big]}_{\mathrm{KL}(q\,\|\,p(z\mid x))\ \ge\ 0}.$$

* :func:`ascend_elbo` raises an exact, differentiable ELBO by plain gradient ascent on the parameters of a
  diagonal Gaussian $q = \mathcal N(\mu, \operatorname{diag} e^{\text{logvar}})$ and records the ELBO at every
  step, so that ``log p(x) - trace`` is the gap closing (or not) during optimisation.
* :func:`mean_field_optimum` is the answer that ascent should find when the target posterior is a Gaussian
  $\mathcal N(m, \Lambda^{-1})$: $\mu = m$, $\sigma_j^2 = 1/\Lambda_{jj}$, with the smallest reachable gap
  $\tfrac12(\sum_j \log\Lambda_{jj} - \log\det\Lambda)$ nats.
* :func:`monte_carlo_kl` and :func:`monte_carlo_elbo` are brute-force sampling estimates (mean and standard
  error) used to check closed forms.
* :func:`gauss_hermite_elbo` and :func:`best_gaussian_q` handle a 1-D latent: the ELBO of a Gaussian $q$ by
  Gauss-Hermite quadrature (smooth and differentiable in $\mu$ and $\log\sigma^2$), and the best Gaussian $q$ found
  by Adam from given starts (one row per start), for the learning side of the ELBO (the best-Gaussian ELBO of a
  model, compared with its exact $\log p(x)$).
* :func:`ellipse` gives the points of a 2-D Gaussian's $k$-standard-deviation contour, for pictures.

Everything is per example (``[batch]``) and in nats; computations run in the dtype of the inputs (use float64
to see identities hold to ~1e-12).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch

from vae_lesson import _checks
from vae_lesson.core.distributions import gaussian_log_likelihood, reparameterize


class ELBOAscent(NamedTuple):
    """The result of :func:`ascend_elbo`, all detached: ``elbo [num_steps + 1, batch]`` (nats, before each step
    and at the end), the final ``q_mu``, ``q_logvar`` ``[batch, d]``, and the path of both,
    ``path_mu``, ``path_logvar`` ``[num_steps + 1, batch, d]`` (row ``t`` is the q whose ELBO is ``elbo[t]``)."""

    elbo: torch.Tensor
    q_mu: torch.Tensor
    q_logvar: torch.Tensor
    path_mu: torch.Tensor
    path_logvar: torch.Tensor


def ascend_elbo(elbo_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], q_mu: torch.Tensor,
                q_logvar: torch.Tensor, num_steps: int = 500, lr: float = 0.1) -> ELBOAscent:
    r"""Maximise ``elbo_fn(q_mu, q_logvar)`` by plain gradient ascent, one independent $q$ per example.

    Update: $(\mu, \text{logvar}) \leftarrow (\mu, \text{logvar}) + \text{lr}\cdot\nabla\,\text{ELBO}$ (no
    momentum, no adaptive step: the trace shows the objective itself, not an optimiser's tricks).
    ``elbo_fn`` maps ``q_mu, q_logvar [batch, d]`` to ``[batch]`` nats and must be differentiable, e.g.
    ``lambda m, v: model.elbo(x, m, v)`` for a :class:`~vae_lesson.LinearGaussian`. The starting tensors are not
    modified. Returns :class:`ELBOAscent`; ``log_p_x - result.elbo`` is the gap at every step.
    """
    if not callable(elbo_fn):
        _checks.fail("elbo_fn", "a callable (q_mu, q_logvar) -> [batch] ELBO", type(elbo_fn).__name__, TypeError)
    _checks.tensor("q_mu", q_mu, ndim=2)
    _checks.tensor("q_logvar", q_logvar, ndim=2)
    _checks.same_shape("q_mu", q_mu, "q_logvar", q_logvar)
    num_steps = _checks.integer("num_steps", num_steps, minimum=0)
    lr = _checks.number("lr", lr, positive=True)
    mu = q_mu.detach().clone().requires_grad_(True)  # [batch, d]
    logvar = q_logvar.detach().clone().requires_grad_(True)  # [batch, d]
    trace, path_mu, path_logvar = [], [], []
    for step in range(num_steps + 1):
        value = elbo_fn(mu, logvar)  # [batch]
        if not (isinstance(value, torch.Tensor) and value.shape == (q_mu.shape[0],)):
            _checks.fail("elbo_fn", f"to return a [batch] = [{q_mu.shape[0]}] tensor",
                         getattr(value, "shape", type(value).__name__))
        if not bool(torch.isfinite(value).all()):
            raise FloatingPointError(f"ascend_elbo: the ELBO became non-finite at step {step}; lower lr={lr:g}")
        trace.append(value.detach())
        path_mu.append(mu.detach().clone())
        path_logvar.append(logvar.detach().clone())
        if step == num_steps:
            break
        grad_mu, grad_logvar = torch.autograd.grad(value.sum(), (mu, logvar))  # examples are independent
        with torch.no_grad():
            mu += lr * grad_mu
            logvar += lr * grad_logvar
    return ELBOAscent(torch.stack(trace), mu.detach(), logvar.detach(), torch.stack(path_mu), torch.stack(path_logvar))


def mean_field_optimum(mean: torch.Tensor, cov: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""The diagonal Gaussian closest to $\mathcal N(\text{mean}, \text{cov})$ in $\mathrm{KL}(q\,\|\,p)$.

    With $\Lambda = \text{cov}^{-1}$: $\mu = \text{mean}$, $\sigma_j^2 = 1/\Lambda_{jj}$ (never more than the
    marginal variance $\text{cov}_{jj}$), and the smallest KL is $\tfrac12\big(\sum_j\log\Lambda_{jj} -
    \log\det\Lambda\big) \ge 0$ (Hadamard's inequality; 0 iff cov is diagonal). In 2-D with correlation $\rho$
    it equals $-\tfrac12\log(1-\rho^2)$.
    ``mean [batch, d]``, ``cov [d, d]``. Returns ``(q_mu [batch, d], q_logvar [batch, d], kl [batch])``, nats.
    """
    _checks.tensor("mean", mean, ndim=2)
    _checks.tensor("cov", cov, ndim=2)
    d = mean.shape[1]
    if cov.shape != (d, d):
        _checks.fail("cov", f"shape [{d}, {d}] (d from mean)", list(cov.shape))
    precision = torch.linalg.inv(cov)  # [d, d]
    diag = torch.diagonal(precision)  # [d]
    if not bool((diag > 0).all()):
        _checks.fail("cov", "a symmetric positive-definite matrix", "a matrix whose inverse has diagonal <= 0")
    q_logvar = (-diag.log()).expand_as(mean).clone()  # [batch, d]
    kl = 0.5 * (diag.log().sum() - torch.linalg.slogdet(precision)[1])  # scalar
    return mean.clone(), q_logvar, kl.expand(mean.shape[0]).clone()


def _mean_and_stderr(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    n = values.shape[0]  # values: [num_samples, batch]
    return values.mean(0), values.std(0) / math.sqrt(n)


def _check_sampling_args(q_mu, q_logvar, num_samples, generator):
    _checks.tensor("q_mu", q_mu, ndim=2)
    _checks.tensor("q_logvar", q_logvar, ndim=2)
    _checks.same_shape("q_mu", q_mu, "q_logvar", q_logvar)
    _checks.generator("generator", generator)
    return _checks.integer("num_samples", num_samples, minimum=2)


@torch.no_grad()
def monte_carlo_kl(q_mu: torch.Tensor, q_logvar: torch.Tensor, num_samples: int = 100_000,
                   generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Sampling estimate of $\mathrm{KL}(q\,\|\,\mathcal N(0, I)) = \mathbb E_{z\sim q}[\log q(z) - \log p(z)]$.

    ``q_mu``, ``q_logvar``: ``[batch, d]``. Returns ``(estimate [batch], standard error [batch])`` in nats;
    the closed form should lie within a few standard errors of the estimate.
    """
    num_samples = _check_sampling_args(q_mu, q_logvar, num_samples, generator)
    shape = (num_samples, *q_mu.shape)
    z = reparameterize(q_mu.expand(shape), q_logvar.expand(shape), generator)  # [S, batch, d]
    log_q = gaussian_log_likelihood(z, q_mu, q_logvar)  # [S, batch]
    log_p = gaussian_log_likelihood(z, torch.zeros_like(z), torch.zeros_like(z))  # [S, batch]
    return _mean_and_stderr(log_q - log_p)


@torch.no_grad()
def monte_carlo_elbo(log_joint: Callable[[torch.Tensor], torch.Tensor], q_mu: torch.Tensor,
                     q_logvar: torch.Tensor, num_samples: int = 100_000,
                     generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Sampling estimate of $\text{ELBO}(q) = \mathbb E_{z\sim q}[\log p(x, z) - \log q(z)]$, per example.

    ``log_joint(z)`` maps ``z [S, batch, d]`` to $\log p(x_b, z)$ ``[S, batch]`` (each column uses its own
    $x_b$). ``q_mu``, ``q_logvar``: ``[batch, d]``. Returns ``(estimate [batch], standard error [batch])``, nats.
    """
    if not callable(log_joint):
        _checks.fail("log_joint", "a callable z [S, batch, d] -> [S, batch]", type(log_joint).__name__, TypeError)
    num_samples = _check_sampling_args(q_mu, q_logvar, num_samples, generator)
    shape = (num_samples, *q_mu.shape)
    z = reparameterize(q_mu.expand(shape), q_logvar.expand(shape), generator)  # [S, batch, d]
    log_q = gaussian_log_likelihood(z, q_mu, q_logvar)  # [S, batch]
    return _mean_and_stderr(log_joint(z) - log_q)


def gauss_hermite_elbo(log_joint: Callable[[torch.Tensor], torch.Tensor], q_mu: torch.Tensor,
                       q_logvar: torch.Tensor, n_nodes: int = 60) -> torch.Tensor:
    r"""The ELBO of a 1-D Gaussian $q = \mathcal N(\mu, \sigma^2)$ per row, by Gauss-Hermite quadrature, in nats.

    $\text{ELBO} = \sum_{k=1}^K \frac{w_k}{\sqrt\pi}\log p\big(x, \mu + \sqrt2\,\sigma\,t_k\big)
    + \tfrac12\log(2\pi e\sigma^2)$ with the $K$ = ``n_nodes`` Hermite nodes $t_k$ and weights $w_k$ (exact for
    polynomials of degree $< 2K$ in $z$; accurate when $\log p(x, z)$ is smooth on the scale of $\sigma$).
    ``log_joint(z)`` maps ``z [K, batch, 1]`` to $\log p(x_b, z)$ ``[K, batch]``; ``q_mu``, ``q_logvar``:
    ``[batch, 1]``. Returns ``[batch]``, differentiable in ``q_mu`` and ``q_logvar``.
    """
    if not callable(log_joint):
        _checks.fail("log_joint", "a callable z [K, batch, 1] -> [K, batch]", type(log_joint).__name__, TypeError)
    _checks.tensor("q_mu", q_mu, ndim=2)
    _checks.tensor("q_logvar", q_logvar, ndim=2)
    _checks.same_shape("q_mu", q_mu, "q_logvar", q_logvar)
    if q_mu.shape[1] != 1:
        _checks.fail("q_mu", "shape [batch, 1] (a 1-D latent)", list(q_mu.shape))
    n_nodes = _checks.integer("n_nodes", n_nodes, minimum=2)
    nodes, weights = np.polynomial.hermite.hermgauss(n_nodes)
    nodes = torch.tensor(nodes, dtype=q_mu.dtype)  # [K]
    weights = torch.tensor(weights / math.sqrt(math.pi), dtype=q_mu.dtype)  # [K], sum to 1
    z = q_mu + math.sqrt(2.0) * torch.exp(0.5 * q_logvar) * nodes[:, None, None]  # [K, batch, 1]
    values = log_joint(z)  # [K, batch]
    if not (isinstance(values, torch.Tensor) and values.shape == z.shape[:2]):
        _checks.fail("log_joint", f"to return shape {list(z.shape[:2])}", getattr(values, "shape", type(values)))
    entropy = 0.5 * (math.log(2 * math.pi) + 1 + q_logvar[:, 0])  # [batch]
    return (weights[:, None] * values).sum(0) + entropy


def best_gaussian_q(log_joint: Callable[[torch.Tensor], torch.Tensor], q_mu: torch.Tensor, q_logvar: torch.Tensor,
                    num_steps: int = 200, lr: float = 0.05, n_nodes: int = 60
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""Maximise :func:`gauss_hermite_elbo` over a 1-D Gaussian $q$ per row with Adam, from ``q_mu``, ``q_logvar``.

    Each row is an independent problem (give one row per starting point and keep the best row per data point:
    the ELBO of a multi-peaked posterior has one local maximum per peak). ``log_joint`` as in
    :func:`gauss_hermite_elbo`. Returns ``(q_mu [batch, 1], q_logvar [batch, 1], elbo [batch])``, detached, nats.
    """
    _checks.tensor("q_mu", q_mu, ndim=2)
    _checks.tensor("q_logvar", q_logvar, ndim=2)
    num_steps = _checks.integer("num_steps", num_steps, minimum=0)
    lr = _checks.number("lr", lr, positive=True)
    mu = q_mu.detach().clone().requires_grad_(True)  # [batch, 1]
    logvar = q_logvar.detach().clone().requires_grad_(True)  # [batch, 1]
    optimizer = torch.optim.Adam([mu, logvar], lr=lr)
    for _ in range(num_steps):
        loss = -gauss_hermite_elbo(log_joint, mu, logvar, n_nodes).sum()  # rows are independent
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        final = gauss_hermite_elbo(log_joint, mu, logvar, n_nodes)
    if not bool(torch.isfinite(final).all()):
        raise FloatingPointError(f"best_gaussian_q: the ELBO became non-finite; lower lr={lr:g}")
    return mu.detach(), logvar.detach(), final


def ellipse(mean: torch.Tensor, cov: torch.Tensor, n_std: float = 2.0, num_points: int = 200) -> torch.Tensor:
    r"""Points on the contour $(z - m)^\top \Sigma^{-1} (z - m) = k^2$ of a 2-D Gaussian ($k$ = ``n_std``).

    ``mean [2]``, ``cov [2, 2]`` (symmetric positive definite). Returns ``[num_points, 2]``, a closed curve
    ($z = m + k\,L\,(\cos t, \sin t)$ with $LL^\top = \Sigma$).
    """
    _checks.tensor("mean", mean, ndim=1)
    _checks.tensor("cov", cov, ndim=2)
    if mean.shape != (2,) or cov.shape != (2, 2):
        _checks.fail("cov", "a [2, 2] covariance with a [2] mean", f"{list(cov.shape)} and {list(mean.shape)}")
    n_std = _checks.number("n_std", n_std, positive=True)
    num_points = _checks.integer("num_points", num_points, minimum=3)
    chol = torch.linalg.cholesky(cov)  # [2, 2]
    t = torch.linspace(0, 2 * math.pi, num_points, dtype=cov.dtype)  # [num_points]
    circle = torch.stack([t.cos(), t.sin()], dim=1)  # [num_points, 2]
    return mean + n_std * circle @ chol.T  # [num_points, 2]
