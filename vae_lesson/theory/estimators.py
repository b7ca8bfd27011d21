r"""Two Monte Carlo estimators of the gradient of an expectation under a Gaussian, and their variance.

The quantity is the gradient, with respect to the parameters $\mu$ and $\log\sigma^2$ of
$q(z) = \mathcal N(\mu, \operatorname{diag}\sigma^2)$ (or of a network that outputs them, such as a VAE's
encoder), of

$$J = \mathbb E_{z\sim q}\big[f(z)\big].$$

* **Reparameterized** (pathwise) estimator. Write $z = \mu + \sigma\odot\varepsilon$, $\varepsilon\sim\mathcal N(0, I)$;
  the randomness no longer depends on the parameters, so the gradient moves inside the expectation:
  $$\nabla J = \mathbb E_\varepsilon\big[\nabla f(\mu + \sigma\odot\varepsilon)\big]
    \approx \frac1S\sum_{s=1}^S \nabla f(\mu + \sigma\odot\varepsilon_s).$$
  Needs $f$ differentiable in $z$.
* **Score-function** (REINFORCE, likelihood-ratio) estimator. $\nabla q = q\,\nabla\log q$ gives
  $$\nabla J = \mathbb E_{z\sim q}\big[f(z)\,\nabla\log q(z)\big]
    \approx \frac1S\sum_{s=1}^S \big(f(z_s) - b_s\big)\,\nabla\log q(z_s),$$
  with $\nabla_\mu\log q = (z-\mu)/\sigma^2$ and
  $\nabla_{\log\sigma^2}\log q = \tfrac12\big((z-\mu)^2/\sigma^2 - 1\big)$.
  $f$ is only evaluated. $b_s = 0$, or (``baseline=True``) the mean of $f$ over the *other* samples, a control
  variate that leaves the estimator unbiased because $\mathbb E[\nabla\log q] = 0$.

Both are unbiased; they differ in variance, which :func:`gradient_variance` measures over repeated estimates.
Both are written as a *surrogate* scalar whose autograd gradient is the estimate, so the same code serves a toy
$(\mu, \log\sigma^2)$ and a VAE encoder's weights (:func:`encoder_gradient`). Not for training: ``fit`` uses the
reparameterized ELBO of :mod:`vae_lesson.core.bounds` directly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch

from vae_lesson import _checks
from vae_lesson.core.bounds import check_vae, encode_gaussian
from vae_lesson.core.distributions import bernoulli_log_likelihood, gaussian_log_likelihood, reparameterize

ESTIMATORS = ("reparameterized", "score_function")


def _noise(mu: torch.Tensor, n_samples: int, generator, eps) -> torch.Tensor:
    shape = (n_samples, *mu.shape)
    if eps is None:
        device = generator.device if generator is not None else mu.device
        return torch.randn(shape, generator=generator, device=device, dtype=mu.dtype).to(mu.device)  # [S, ..., d]
    _checks.tensor("eps", eps)
    if tuple(eps.shape) != shape:
        _checks.fail("eps", f"shape [n_samples, *mu.shape] = {list(shape)}", list(eps.shape))
    return eps.to(mu)


def surrogate(f: Callable, mu: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor,
              estimator: str, baseline: bool = False) -> torch.Tensor:
    r"""A scalar whose gradient (w.r.t. anything ``mu`` and ``logvar`` depend on) is the chosen estimate.

    ``eps``: ``[S, ..., d]`` standard normal draws; ``mu``, ``logvar``: ``[..., d]``; ``f(z [S, ..., d])`` returns
    ``[S, ...]`` (one value per sample and per Gaussian). The target is $\nabla \sum_{\dots} \mathbb E_q[f]$.

    * ``"reparameterized"``: $\frac1S\sum_s \sum f(\mu + \sigma\odot\varepsilon_s)$, differentiated through $f$;
    * ``"score_function"``: $\frac1S\sum_s \sum (f(z_s) - b_s)\log q(z_s)$ with $z_s$ and $f(z_s)$ detached.
    """
    z = reparameterize(mu, logvar, eps=eps)  # [S, ..., d], mu + exp(logvar / 2) * eps
    if estimator != "reparameterized":
        z = z.detach()
    values = f(z)  # [S, ...]
    if not isinstance(values, torch.Tensor) or values.shape != z.shape[:-1]:
        got = list(values.shape) if isinstance(values, torch.Tensor) else type(values).__name__
        _checks.fail("f", f"f(z) of shape {list(z.shape[:-1])} (one value per sample and Gaussian)", got)
    if estimator == "reparameterized":
        return values.sum() / eps.shape[0]
    values = values.detach()
    if baseline:
        n = values.shape[0]
        values = values - (values.sum(0, keepdim=True) - values) / (n - 1)  # leave-one-out mean, [S, ...]
    log_q = gaussian_log_likelihood(z, mu, logvar)  # [S, ...], nats, summed over d
    return (values * log_q).sum() / eps.shape[0]


def _check_estimate_args(f, mu, logvar, n_samples, generator, baseline=False):
    if not callable(f):
        _checks.fail("f", "a callable z [n_samples, ..., d] -> [n_samples, ...]", type(f).__name__, TypeError)
    _checks.tensor("mu", mu, ndim=(1, 2))
    _checks.tensor("logvar", logvar, ndim=(1, 2))
    _checks.same_shape("mu", mu, "logvar", logvar)
    n_samples = _checks.integer("n_samples", n_samples, minimum=2 if baseline else 1)
    _checks.generator("generator", generator)
    return n_samples


def _gaussian_gradient(f, mu, logvar, n_samples, generator, eps, estimator, baseline=False):
    n_samples = _check_estimate_args(f, mu, logvar, n_samples, generator, baseline)
    mu = mu.detach().requires_grad_(True)
    logvar = logvar.detach().requires_grad_(True)
    eps = _noise(mu, n_samples, generator, eps)  # [S, ..., d]
    value = surrogate(f, mu, logvar, eps, estimator, baseline)
    if not value.requires_grad:
        _checks.fail("f", "a function differentiable in z (for a black box use score_function_gradient)",
                     "an output without a gradient")
    grad_mu, grad_logvar = torch.autograd.grad(value, (mu, logvar), allow_unused=True)
    zero = torch.zeros_like(mu)
    return (zero if grad_mu is None else grad_mu), (zero if grad_logvar is None else grad_logvar)


def reparameterized_gradient(f: Callable, mu: torch.Tensor, logvar: torch.Tensor, n_samples: int = 1,
                             generator: torch.Generator | None = None, eps: torch.Tensor | None = None):
    r"""Pathwise estimate of $(\nabla_\mu, \nabla_{\log\sigma^2})\,\mathbb E_{z\sim\mathcal N(\mu,\sigma^2)}[f(z)]$.

    $\frac1S\sum_s \nabla f(\mu + \sigma\odot\varepsilon_s)$ with ``S = n_samples``. ``mu``, ``logvar``: ``[d]`` or
    ``[batch, d]``; ``f(z)`` maps ``[S, d]`` to ``[S]`` (or ``[S, batch, d]`` to ``[S, batch]``) and must be
    differentiable. ``eps``: optional pre-drawn noise ``[S, *mu.shape]``. Returns ``(grad_mu, grad_logvar)``,
    each shaped like ``mu``, in units of $f$ per unit of the parameter.
    """
    return _gaussian_gradient(f, mu, logvar, n_samples, generator, eps, "reparameterized")


def score_function_gradient(f: Callable, mu: torch.Tensor, logvar: torch.Tensor, n_samples: int = 1,
                            generator: torch.Generator | None = None, eps: torch.Tensor | None = None,
                            baseline: bool = False):
    r"""Score-function (REINFORCE) estimate of the same gradient as :func:`reparameterized_gradient`.

    $\frac1S\sum_s (f(z_s) - b_s)\,\nabla\log q(z_s)$, $z_s = \mu + \sigma\odot\varepsilon_s$; $f$ is only
    evaluated (it may be a black box). ``baseline=True`` subtracts the leave-one-out mean of $f$ (needs
    ``n_samples >= 2``; still unbiased). Arguments and return as :func:`reparameterized_gradient`.
    """
    if not isinstance(baseline, bool):
        _checks.fail("baseline", "True or False", repr(baseline), TypeError)
    return _gaussian_gradient(f, mu, logvar, n_samples, generator, eps, "score_function", baseline)


def encoder_gradient(model, x: torch.Tensor, n_samples: int = 1, estimator: str = "reparameterized",
                     generator: torch.Generator | None = None, baseline: bool = False) -> torch.Tensor:
    r"""Estimate of $\nabla_\phi\,\frac1B\sum_n \mathbb E_{q_\phi(z\mid x_n)}[\log p_\theta(x_n\mid z)]$, flattened.

    The gradient of the ELBO's reconstruction term (nats per example, averaged over the batch ``x [B, D]``)
    with respect to the **encoder's** parameters $\phi$ of a VAE, by either estimator (``"reparameterized"`` or
    ``"score_function"``, the latter through $\nabla_\phi\log q_\phi(z\mid x)$), ``n_samples`` draws per example.
    Returns ``[P]``, ``P`` = number of encoder parameters, nats per unit of parameter.
    """
    check_vae(model)
    if not hasattr(model, "encoder"):
        _checks.fail("model", "a VAE with an .encoder module", type(model).__name__, TypeError)
    estimator = _checks.choice("estimator", estimator, ESTIMATORS)
    n_samples = _checks.integer("n_samples", n_samples, minimum=2 if baseline else 1)
    _checks.generator("generator", generator)
    mu, logvar = encode_gaussian(model, x)  # [B, latent_dim] each
    eps = _noise(mu, n_samples, generator, None)  # [S, B, latent_dim]
    f = lambda z: bernoulli_log_likelihood(model.decode(z), x)  # [S, B], nats
    value = surrogate(f, mu, logvar, eps, estimator, baseline) / x.shape[0]
    params = list(model.encoder.parameters())
    grads = torch.autograd.grad(value, params)
    return torch.cat([g.reshape(-1) for g in grads])  # [P]


class GradientSpread(NamedTuple):
    """Summary of repeated gradient estimates: ``mean [P]`` and ``variance`` = $\\sum_p \\mathrm{Var}[g_p]$."""

    mean: torch.Tensor
    variance: float


def gradient_variance(estimate: Callable[[], object], n_repeats: int) -> GradientSpread:
    r"""Call ``estimate()`` ``n_repeats`` times and measure the spread of the gradient estimates it returns.

    ``estimate()`` returns a tensor or a tuple of tensors (e.g. ``(grad_mu, grad_logvar)``), flattened and
    concatenated into one vector $g \in \mathbb R^P$. Returns the mean over repeats ``[P]`` and the **total
    variance** $\sum_{p=1}^P \widehat{\mathrm{Var}}[g_p]$ (trace of the covariance, unbiased, divisor
    ``n_repeats - 1``), in squared units of the gradient. Randomness comes from ``estimate`` (give it a generator).
    """
    if not callable(estimate):
        _checks.fail("estimate", "a callable returning a gradient estimate", type(estimate).__name__, TypeError)
    n_repeats = _checks.integer("n_repeats", n_repeats, minimum=2)
    rows = []
    for _ in range(n_repeats):
        out = estimate()
        parts = out if isinstance(out, (tuple, list)) else (out,)
        rows.append(torch.cat([p.detach().reshape(-1).double() for p in parts]))  # [P]
    samples = torch.stack(rows)  # [n_repeats, P]
    return GradientSpread(samples.mean(0), samples.var(0, unbiased=True).sum().item())
