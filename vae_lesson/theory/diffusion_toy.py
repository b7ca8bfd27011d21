r"""Diffusion as a hierarchical VAE: the fixed Gaussian encoder chain and its closed forms, and a one-pixel toy.

**The encoder chain** (variance preserving, Kingma et al. 2021). Latents $z_1, \dots, z_T$ have the shape of $x$;
step $t$ has a signal level $\alpha_t$ and a noise level $\sigma_t$ with $\alpha_t^2 + \sigma_t^2 = 1$, set by its
log signal-to-noise ratio $\lambda_t = \log(\alpha_t^2/\sigma_t^2)$, which falls linearly from ``log_snr_max`` at
$t = 1$ to ``log_snr_min`` at $t = T$ (:func:`vp_schedule`). Index $t = 0$ is the data ($\alpha_0 = 1$, $\sigma_0 = 0$).

$$q(z_t\mid x) = \mathcal N(\alpha_t x, \sigma_t^2 I), \qquad
  q(z_t\mid z_{t-1}) = \mathcal N(\alpha_{t|t-1} z_{t-1}, \sigma_{t|t-1}^2 I),\quad
  \alpha_{t|t-1} = \tfrac{\alpha_t}{\alpha_{t-1}},\ \sigma_{t|t-1}^2 = 1 - \alpha_{t|t-1}^2,$$

$$q(z_{t-1}\mid z_t, x) = \mathcal N\Big(\underbrace{\tfrac{\alpha_{t|t-1}\sigma_{t-1}^2}{\sigma_t^2} z_t
  + \tfrac{\alpha_{t-1}\sigma_{t|t-1}^2}{\sigma_t^2} x}_{\tilde\mu_t(z_t, x)},
  \underbrace{\tfrac{\sigma_{t|t-1}^2\sigma_{t-1}^2}{\sigma_t^2}}_{\tilde\sigma_t^2} I\Big)
  \quad\text{(Bayes' rule for two Gaussians)}.$$

**The decoder chain** guesses $x$: $p(z_{t-1}\mid z_t) = q(z_{t-1}\mid z_t, x = \hat x(z_t, t))$, so the per-step KL of
the ELBO is one line (:func:`denoising_kl`):

$$\mathrm{KL}\big(q(z_{t-1}\mid z_t, x)\,\|\,p(z_{t-1}\mid z_t)\big)
  = \tfrac12\big(\mathrm{SNR}_{t-1} - \mathrm{SNR}_t\big)\,\lVert x - \hat x(z_t, t)\rVert^2 .$$

**The toy** is one binary pixel $x \in \{0, 1\}$ with $P(x = 1) = \pi$. Its best guess $\hat x = E[x\mid z_t]$ is
exact (:func:`binary_pixel_denoiser`), the ELBO's expectations are one-dimensional integrals (:func:`toy_elbo`, by
quadrature) and so is the model's exact $\log p(x)$ (:func:`toy_log_marginal`, the reverse chain on a grid).

Not here: the MNIST model, its network and training (:mod:`vae_lesson.variants.diffusion`).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F

from vae_lesson import _checks
from vae_lesson.core.distributions import gaussian_kl


class Schedule(NamedTuple):
    """Noise levels of the chain, each ``[T + 1]`` (index ``t = 0`` is the data, ``1..T`` the latents), float64."""

    log_snr: torch.Tensor  # lambda_t = log(alpha_t^2 / sigma_t^2); +inf at t = 0
    alpha: torch.Tensor  # signal level, sqrt(sigmoid(lambda_t))
    sigma: torch.Tensor  # noise level, sqrt(sigmoid(-lambda_t))

    @property
    def num_steps(self) -> int:
        return len(self.alpha) - 1

    def snr(self, t) -> torch.Tensor:
        """$\\mathrm{SNR}_t = \\alpha_t^2/\\sigma_t^2$ (``inf`` at ``t = 0``)."""
        return self.log_snr[t].exp()


def vp_schedule(num_steps: int, log_snr_max: float = 5.0, log_snr_min: float = -7.0) -> Schedule:
    r"""A variance-preserving schedule with $\lambda_t$ linear in $t$: $\lambda_1$ = ``log_snr_max``,
    $\lambda_T$ = ``log_snr_min`` (for ``num_steps = 1`` just ``log_snr_max``). $\alpha_t^2 = \operatorname{sigmoid}
    (\lambda_t)$, $\sigma_t^2 = \operatorname{sigmoid}(-\lambda_t)$. Equal steps in $\lambda$ make every step divide
    the SNR by the same factor."""
    num_steps = _checks.integer("num_steps", num_steps, minimum=1)
    log_snr_max = _checks.number("log_snr_max", log_snr_max)
    log_snr_min = _checks.number("log_snr_min", log_snr_min)
    if not log_snr_min < log_snr_max:
        _checks.fail("log_snr_min", f"a number below log_snr_max={log_snr_max}", log_snr_min)
    steps = torch.linspace(log_snr_max, log_snr_min, num_steps, dtype=torch.float64) if num_steps > 1 else \
        torch.tensor([log_snr_max], dtype=torch.float64)
    log_snr = torch.cat([torch.tensor([math.inf], dtype=torch.float64), steps])  # [T + 1]
    return Schedule(log_snr, torch.sigmoid(log_snr).sqrt(), torch.sigmoid(-log_snr).sqrt())


def _check_schedule(schedule) -> Schedule:
    if not isinstance(schedule, Schedule):
        _checks.fail("schedule", "a Schedule (from vp_schedule)", type(schedule).__name__, TypeError)
    return schedule


def _step(schedule: Schedule, t, lowest: int = 1) -> torch.Tensor:
    """``t`` (an int, or an int64 tensor of steps) checked to lie in ``lowest..T``; returned as an int64 tensor."""
    if isinstance(t, torch.Tensor):
        if t.dtype != torch.int64:
            _checks.fail("t", "an int or an int64 tensor of steps", f"a {t.dtype} tensor", TypeError)
        values = t
    else:
        values = torch.tensor(_checks.integer("t", t))
    if values.numel() and (int(values.min()) < lowest or int(values.max()) > schedule.num_steps):
        _checks.fail("t", f"steps from {lowest} to T={schedule.num_steps}",
                     f"values from {int(values.min())} to {int(values.max())}")
    return values


def _coefficient(values: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``values[t]`` shaped to broadcast against ``like [batch, D]`` (``t`` a scalar or ``[batch]``), like's dtype."""
    out = values[t].to(like.dtype)
    return out.reshape(-1, *([1] * (like.dim() - 1))) if t.dim() else out


def forward_marginal(schedule: Schedule, x: torch.Tensor, t) -> tuple[torch.Tensor, torch.Tensor]:
    r"""$q(z_t\mid x) = \mathcal N(\alpha_t x, \sigma_t^2)$: ``(mean, var)``, both of ``x``'s shape ``[..., D]``.
    ``t``: an int in ``1..T`` or an int64 tensor ``[batch]`` (one step per row of ``x``)."""
    _check_schedule(schedule)
    _checks.tensor("x", x)
    t = _step(schedule, t)
    alpha, sigma = _coefficient(schedule.alpha, t, x), _coefficient(schedule.sigma, t, x)
    return alpha * x, (sigma**2).expand_as(x)


def sample_forward(schedule: Schedule, x: torch.Tensor, t, eps: torch.Tensor | None = None,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    r"""$z_t = \alpha_t x + \sigma_t\varepsilon$, $\varepsilon\sim\mathcal N(0, I)$ (or the given ``eps``);
    ``x``'s shape."""
    mean, var = forward_marginal(schedule, x, t)
    _checks.generator("generator", generator)
    if eps is None:
        eps = torch.randn(x.shape, generator=generator, dtype=x.dtype)
    _checks.tensor("eps", eps)
    _checks.same_shape("x", x, "eps", eps)
    return mean + var.sqrt() * eps


def forward_step(schedule: Schedule, z_prev: torch.Tensor, t) -> tuple[torch.Tensor, torch.Tensor]:
    r"""One step of the encoder chain, $q(z_t\mid z_{t-1}) = \mathcal N(\alpha_{t|t-1} z_{t-1}, \sigma_{t|t-1}^2)$:
    ``(mean, var)`` of ``z_prev``'s shape (``z_prev`` is $x$ itself for ``t = 1``)."""
    _check_schedule(schedule)
    _checks.tensor("z_prev", z_prev)
    t = _step(schedule, t)
    ratio = _coefficient(schedule.alpha, t, z_prev) / _coefficient(schedule.alpha, t - 1, z_prev)
    return ratio * z_prev, (1 - ratio**2).expand_as(z_prev)


def posterior(schedule: Schedule, z_t: torch.Tensor, x: torch.Tensor, t) -> tuple[torch.Tensor, torch.Tensor]:
    r"""$q(z_{t-1}\mid z_t, x) = \mathcal N(\tilde\mu_t, \tilde\sigma_t^2)$ for ``t`` in ``2..T``: ``(mean, var)``.

    Computed as in the module docstring; ``var`` does not depend on ``z_t`` or ``x``. Shapes: ``z_t`` and ``x``
    equal, ``[..., D]``."""
    _check_schedule(schedule)
    _checks.tensor("z_t", z_t)
    _checks.tensor("x", x)
    _checks.same_shape("z_t", z_t, "x", x)
    t = _step(schedule, t, lowest=2)
    alpha_t, alpha_s = _coefficient(schedule.alpha, t, x), _coefficient(schedule.alpha, t - 1, x)
    var_t, var_s = _coefficient(schedule.sigma, t, x) ** 2, _coefficient(schedule.sigma, t - 1, x) ** 2
    ratio = alpha_t / alpha_s  # alpha_{t|t-1}
    var_step = 1 - ratio**2  # sigma^2_{t|t-1}
    mean = (ratio * var_s / var_t) * z_t + (alpha_s * var_step / var_t) * x
    return mean, (var_step * var_s / var_t).expand_as(x)


def kl_weight(schedule: Schedule, t) -> torch.Tensor:
    r"""$\tfrac12(\mathrm{SNR}_{t-1} - \mathrm{SNR}_t)$ for ``t`` in ``2..T`` (float64, ``t``'s shape)."""
    _check_schedule(schedule)
    t = _step(schedule, t, lowest=2)
    log_snr_t = schedule.log_snr[t]
    return 0.5 * log_snr_t.exp() * torch.expm1(schedule.log_snr[t - 1] - log_snr_t)


def denoising_kl(schedule: Schedule, x: torch.Tensor, x_hat: torch.Tensor, t) -> torch.Tensor:
    r"""$\mathrm{KL}(q(z_{t-1}\mid z_t, x)\,\|\,q(z_{t-1}\mid z_t, \hat x)) = \tfrac12(\mathrm{SNR}_{t-1} -
    \mathrm{SNR}_t)\sum_d (x_d - \hat x_d)^2$: the ELBO's term for step ``t`` (``2..T``) when the decoder's guess is
    ``x_hat``. ``x``, ``x_hat``: ``[batch, D]``; ``t`` an int or ``[batch]``. Returns ``[batch]``, nats."""
    _checks.tensor("x", x, ndim=2)
    _checks.tensor("x_hat", x_hat, ndim=2)
    _checks.same_shape("x", x, "x_hat", x_hat)
    weight = kl_weight(schedule, t).to(x.dtype)  # [] or [batch]
    return weight * (x - x_hat).pow(2).sum(-1)


def prior_kl(schedule: Schedule, x: torch.Tensor) -> torch.Tensor:
    r"""$\mathrm{KL}(q(z_T\mid x)\,\|\,\mathcal N(0, I))$, ``x [batch, D]`` -> ``[batch]`` nats (the course's
    :func:`vae_lesson.gaussian_kl` with $\mu = \alpha_T x$, $\log\sigma^2 = \log\sigma_T^2$)."""
    _check_schedule(schedule)
    _checks.tensor("x", x, ndim=2)
    T = schedule.num_steps
    logvar = torch.full_like(x, 2 * math.log(float(schedule.sigma[T])))
    return gaussian_kl(float(schedule.alpha[T]) * x, logvar)


# --- the one-pixel toy ---------------------------------------------------------------------------------------------

def _probability(name: str, value: float) -> float:
    value = _checks.number(name, value)
    if not 0 < value < 1:
        _checks.fail(name, "a probability strictly between 0 and 1", value)
    return value


def binary_pixel_logit(schedule: Schedule, z_t: torch.Tensor, t, p_one: float = 0.5) -> torch.Tensor:
    r"""The logit of $P(x = 1\mid z_t)$ for one binary pixel with $P(x = 1) = \pi$ (``p_one``):
    $\operatorname{logit}\pi + \mathrm{SNR}_t\,(z_t/\alpha_t - \tfrac12)$, from Bayes' rule with the two Gaussians
    $\mathcal N(z_t; 0, \sigma_t^2)$ and $\mathcal N(z_t; \alpha_t, \sigma_t^2)$. ``z_t``'s shape."""
    _check_schedule(schedule)
    _checks.tensor("z_t", z_t)
    p_one = _probability("p_one", p_one)
    t = _step(schedule, t)
    snr, alpha = _coefficient(schedule.log_snr.exp(), t, z_t), _coefficient(schedule.alpha, t, z_t)
    return math.log(p_one / (1 - p_one)) + snr * (z_t / alpha - 0.5)


def binary_pixel_denoiser(schedule: Schedule, z_t: torch.Tensor, t, p_one: float = 0.5) -> torch.Tensor:
    r"""$\hat x(z_t) = E[x\mid z_t] = P(x = 1\mid z_t)$, the exact best guess for one binary pixel (``z_t``'s shape)."""
    return torch.sigmoid(binary_pixel_logit(schedule, z_t, t, p_one))


class ToyELBO(NamedTuple):
    """The toy's ELBO terms for one value of x, nats (floats): ``elbo = reconstruction - sum(step_kls) - prior_kl``."""

    elbo: float
    reconstruction: float  # E_{q(z_1|x)} log p(x | z_1)
    step_kls: list  # [T - 1] floats: E_{q(z_t|x)} KL_t for t = 2..T
    prior_kl: float  # KL(q(z_T | x) || N(0, 1))


def _normal_nodes(n_grid: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Nodes ``u`` and weights ``w`` on [-12, 12] with sum_i w_i f(u_i) ~ E f(u), u ~ N(0, 1) (trapezoid, float64)."""
    u = torch.linspace(-12, 12, n_grid, dtype=torch.float64)
    w = torch.exp(-0.5 * u**2) * (u[1] - u[0]) / math.sqrt(2 * math.pi)
    w[0] = w[-1] = 0.5 * w[0]
    return u, w


def toy_elbo(schedule: Schedule, x: int, p_one: float = 0.5, n_grid: int = 20001) -> ToyELBO:
    r"""The toy model's ELBO for ``x`` in {0, 1}, each expectation over $z_t \sim q(z_t\mid x)$ by quadrature.

    Decoder chain: $\hat x$ = :func:`binary_pixel_denoiser`; $p(x\mid z_1) = \operatorname{Bernoulli}(x;
    \hat x(z_1))$; prior $\mathcal N(0, 1)$. No sampling: the exact value Monte Carlo estimates must agree with."""
    _check_schedule(schedule)
    if x not in (0, 1) or isinstance(x, bool):
        _checks.fail("x", "0 or 1 (the toy's pixel)", repr(x))
    n_grid = _checks.integer("n_grid", n_grid, minimum=101)
    u, w = _normal_nodes(n_grid)
    x_row = torch.full((1, 1), float(x), dtype=torch.float64)

    def z_at(t):  # [n_grid, 1], z_t = alpha_t x + sigma_t u
        return (schedule.alpha[t] * x + schedule.sigma[t] * u).unsqueeze(-1)

    logit_1 = binary_pixel_logit(schedule, z_at(1), 1, p_one)  # [n_grid, 1]
    reconstruction = float((w * -F.binary_cross_entropy_with_logits(logit_1, x_row.expand_as(logit_1),
                                                                      reduction="none")[:, 0]).sum())
    step_kls = []
    for t in range(2, schedule.num_steps + 1):
        x_hat = binary_pixel_denoiser(schedule, z_at(t), t, p_one)  # [n_grid, 1]
        step_kls.append(float((w * denoising_kl(schedule, x_row.expand_as(x_hat), x_hat, t)).sum()))
    prior = float(prior_kl(schedule, x_row))
    return ToyELBO(reconstruction - sum(step_kls) - prior, reconstruction, step_kls, prior)


def toy_log_marginal(schedule: Schedule, p_one: float = 0.5, n_grid: int = 4001, limit: float = 6.0) -> torch.Tensor:
    r"""The toy model's exact $\log p(x)$ for $x = 0$ and $1$, ``[2]`` nats: the decoder chain run on a grid.

    $p(z_T) = \mathcal N(0, 1)$; each step $p(z_{t-1}) = \int p(z_{t-1}\mid z_t)\,p(z_t)\,dz_t$ as a matrix of
    transition probabilities between grid cells (each column renormalised, so the chain keeps its mass); finally
    $p(x) = \sum_j p(x\mid z_1 = g_j)\,P(z_1 = g_j)$. The two values' probabilities sum to 1."""
    _check_schedule(schedule)
    p_one = _probability("p_one", p_one)
    n_grid = _checks.integer("n_grid", n_grid, minimum=101)
    limit = _checks.number("limit", limit, positive=True)
    grid = torch.linspace(-limit, limit, n_grid, dtype=torch.float64)  # [n]
    T = schedule.num_steps
    mass = torch.softmax(-0.5 * grid**2, 0)  # [n], P(z_T = g_j)
    for t in range(T, 1, -1):
        x_hat = binary_pixel_denoiser(schedule, grid, t, p_one)  # [n], the guess at each z_t
        mean, var = posterior(schedule, grid, x_hat, t)  # [n] each: p(z_{t-1} | z_t = g_j)
        log_kernel = -0.5 * (grid[:, None] - mean[None, :]) ** 2 / var[None, :]  # [n (z_{t-1}), n (z_t)]
        mass = torch.softmax(log_kernel, 0) @ mass
    p_x_one = binary_pixel_denoiser(schedule, grid, 1, p_one)  # [n], p(x = 1 | z_1)
    p_one_marginal = (p_x_one * mass).sum()
    return torch.stack([torch.log1p(-p_one_marginal), p_one_marginal.log()])
