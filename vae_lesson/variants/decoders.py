r"""What the decoder's distribution means: continuous Bernoulli, Gaussian and discretized Gaussian decoders.

The course's :class:`vae_lesson.VAE` scores pixels with a Bernoulli. This module gives the same MLP VAE other
observation models $p_\theta(x\mid z)$ (notebook 14), each with an honest ELBO and an IWAE bound, in **nats per
example**, summed over the $D$ pixels (``[batch]`` tensors):

* ``"bernoulli"``: $\log p(x\mid z) = \sum_d x_d\log\lambda_d + (1-x_d)\log(1-\lambda_d)$, $\lambda = \sigma(\eta)$
  (``x_logits`` $=\eta$). A probability for binary $x$; on grey $x$ a cross-entropy, not a density.
* ``"continuous_bernoulli"`` (Loaiza-Ganem & Cunningham, 2019): the same kernel made a density on $[0, 1]$,
  $\log p(x\mid z) = \sum_d\big[x_d\log\lambda_d + (1-x_d)\log(1-\lambda_d) + \log C(\eta_d)\big]$ with
  $C(\eta) = \eta / \tanh(\eta/2)$ (:func:`continuous_bernoulli_log_normalizer`).
* ``"gaussian"``: $\log\mathcal N(x;\ \mu, \sigma^2 I) = -\tfrac{1}{2\sigma^2}\lVert x-\mu\rVert^2
  - \tfrac D2\log(2\pi\sigma^2)$ with $\mu = \sigma(\eta)$ and $\sigma$ fixed, one learned $\sigma$ shared by all
  pixels, or one learned $\sigma_d$ per pixel. A density on $\mathbb R^D$: its nats are not probabilities.
* ``"discretized_gaussian"``: the same $\mu, \sigma$ as a probability over the 256 values $k/255$ of an 8-bit
  pixel (:func:`discretized_gaussian_log_likelihood`): a proper likelihood of 8-bit images, in bits/dim comparable
  with published 8-bit numbers.

Any model here can be *scored* under another likelihood of the same parameters (``likelihood=`` of
:func:`decoder_elbo` and :func:`decoder_iwae`), e.g. a Gaussian trained as a density and evaluated as a
discretized Gaussian. Not here: the Bernoulli formulas themselves (:mod:`vae_lesson.core.distributions`), training
(:func:`vae_lesson.fit` takes ``objective=decoder_objective()``), binarization (:mod:`vae_lesson.core.data`).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from vae_lesson import (
    VAE,
    ELBOTerms,
    _checks,
    bernoulli_log_likelihood,
    gaussian_kl,
    gaussian_log_likelihood,
    reparameterize,
)

LIKELIHOODS = ("bernoulli", "continuous_bernoulli", "gaussian", "discretized_gaussian")
SIGMAS = ("shared", "per_pixel")  # learned sigma; a number is a fixed sigma
LEVELS = 256  # an 8-bit pixel: values k / 255, k = 0..255
LOG_SIGMA2_SPEED = 20.0  # learned log sigma^2 is stored divided by this: Adam moves it this much faster
SERIES_BELOW = 0.05  # |eta| / 2 below this: Taylor series of log C (the closed form cancels there)


def continuous_bernoulli_log_normalizer(logits: torch.Tensor) -> torch.Tensor:
    r"""$\log C(\eta)$, the continuous Bernoulli's log-normaliser, elementwise (same shape as ``logits``, nats).

    $C(\eta)^{-1} = \int_0^1 \lambda^x (1-\lambda)^{1-x}\,dx = \tanh(\eta/2)/\eta$ with $\lambda = \sigma(\eta)$,
    so $\log C = \log 2 + \log u - \log\tanh u$ for $u = |\eta|/2$, which is $\log 2$ at $\eta = 0$
    ($\lambda = 1/2$). Stable everywhere: $\log\tanh u = \log(-\mathrm{expm1}(-2u)) - \mathrm{log1p}(e^{-2u})$
    for large $u$, and the series $\log(u\coth u) = u^2/3 - 7u^4/90 + 62u^6/2835 + O(u^8)$ below ``SERIES_BELOW``.
    """
    _checks.tensor("logits", logits)
    u = logits.abs() / 2
    safe = torch.where(u < SERIES_BELOW, torch.ones_like(u), u)  # keeps the unused branch finite
    log_tanh = torch.log(-torch.expm1(-2 * safe)) - torch.log1p(torch.exp(-2 * safe))
    closed = torch.log(safe) - log_tanh
    series = u.pow(2) / 3 - 7 * u.pow(4) / 90 + 62 * u.pow(6) / 2835
    return math.log(2.0) + torch.where(u < SERIES_BELOW, series, closed)


def continuous_bernoulli_mean(logits: torch.Tensor) -> torch.Tensor:
    r"""$\mathbb E[x]$ under the continuous Bernoulli, elementwise: $1/(1-e^{-\eta}) - 1/\eta$ ($1/2$ at $\eta = 0$).

    Not $\lambda = \sigma(\eta)$: the mean is pulled towards $1/2$ (e.g. $\lambda = 0.9$ gives $0.67$,
    $0.99$ gives $0.79$). Series $1/2 + \eta/12 - \eta^3/720$ below ``SERIES_BELOW``.
    """
    _checks.tensor("logits", logits)
    small = logits.abs() < 2 * SERIES_BELOW
    safe = torch.where(small, torch.ones_like(logits), logits)
    closed = -1 / torch.expm1(-safe) - 1 / safe
    return torch.where(small, 0.5 + logits / 12 - logits.pow(3) / 720, closed)


def continuous_bernoulli_log_likelihood(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    r"""$\sum_d \log \mathcal{CB}(x_d;\ \eta_d)$: the Bernoulli kernel plus $\log C(\eta_d)$, ``[...]`` (last axis
    summed), nats of a **density** on $[0, 1]^D$. ``logits`` ``[..., D]`` broadcasts against ``x`` ``[batch, D]``."""
    _checks.tensor("x", x, low=0.0, high=1.0)
    return bernoulli_log_likelihood(logits, x) + continuous_bernoulli_log_normalizer(logits).sum(-1)


def _log_cdf_difference(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``log(Phi(b) - Phi(a))`` for ``a < b`` (standardised), stable in both tails (mirrored when a + b > 0)."""
    flip = (a + b) > 0
    lo, hi = torch.where(flip, -b, a), torch.where(flip, -a, b)  # the same mass, on the side of the left tail
    log_hi = torch.special.log_ndtr(hi)
    return log_hi + torch.log(-torch.expm1(torch.special.log_ndtr(lo) - log_hi))


def discretized_gaussian_log_likelihood(x: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    r"""$\sum_d \log P(x_d)$ for 8-bit pixels $x_d = k/255$: a Gaussian $\mathcal N(\mu_d, e^{\text{logvar}_d})$
    integrated over the bin of $k$, ``[...]`` (last axis summed), nats of a **probability** (always $\le 0$).

    $P(k) = \Phi\big(\tfrac{b_{k+1}-\mu}{\sigma}\big) - \Phi\big(\tfrac{b_k-\mu}{\sigma}\big)$ with edges
    $b_k = (k - 1/2)/255$ and the end bins open ($b_0 = -\infty$, $b_{256} = +\infty$), so the 256
    probabilities sum to one (as in PixelCNN++'s discretized logistic). ``x`` ``[batch, D]`` in [0, 1] must be
    multiples of 1/255 (``load_mnist`` data are); ``mean`` ``[..., D]`` and ``logvar`` broadcast against it.
    """
    _checks.tensor("x", x, low=0.0, high=1.0)
    _checks.tensor("mean", mean)
    _checks.tensor("logvar", logvar)
    levels = x * (LEVELS - 1)
    if not bool(torch.all((levels - levels.round()).abs() < 1e-3)):
        _checks.fail("x", "8-bit pixels, multiples of 1/255 (as load_mnist returns them)",
                     "values between the levels")
    wide = torch.promote_types(mean.dtype, torch.float64)  # tail probabilities need the range of float64
    k = levels.round().to(wide)
    inv_sigma = torch.exp(-0.5 * logvar.to(wide))
    half = 0.5 / (LEVELS - 1)
    a = torch.where(k == 0, torch.full_like(k, -math.inf), (x.to(wide) - half - mean.to(wide)) * inv_sigma)
    b = torch.where(k == LEVELS - 1, torch.full_like(k, math.inf), (x.to(wide) + half - mean.to(wide)) * inv_sigma)
    return _log_cdf_difference(a, b).sum(-1).to(mean.dtype)


class DecoderVAE(VAE):
    r"""The course's MLP VAE with a chosen decoder distribution $p_\theta(x\mid z)$.

    ``likelihood``: one of :data:`LIKELIHOODS`. ``sigma`` (Gaussian decoders only): a number (fixed $\sigma$),
    ``"shared"`` (one learned $\log\sigma^2$) or ``"per_pixel"`` (``input_dim`` learned values), learned ones
    starting at ``init_sigma`` and kept above ``min_sigma`` (a density on pixels that are always 0 would
    otherwise drive $\sigma\to 0$ and $\log p\to+\infty$). A learned $\log\sigma^2$ is the parameter
    ``raw_log_sigma2`` times ``LOG_SIGMA2_SPEED``, so that Adam can move it in a few hundred steps.
    ``decode(z)`` returns logits $\eta$ as for :class:`vae_lesson.VAE`: the Bernoulli's $\lambda$, the continuous
    Bernoulli's $\lambda$, or the Gaussian's mean $\mu = \sigma(\eta)$, so ``reconstruct`` and ``sample`` show
    $\sigma(\eta)$ (for the continuous Bernoulli use :func:`continuous_bernoulli_mean`). :meth:`log_likelihood`
    scores ``x`` under the decoder.
    """

    def __init__(self, input_dim: int, latent_dim: int, hidden_dims=(400,), likelihood: str = "bernoulli",
                 sigma: float | str | None = None, init_sigma: float = 0.1, min_sigma: float = 1e-3):
        super().__init__(input_dim, latent_dim, hidden_dims)
        self.likelihood = _checks.choice("likelihood", likelihood, LIKELIHOODS)
        gaussian = likelihood in ("gaussian", "discretized_gaussian")
        if not gaussian and sigma is not None:
            _checks.fail("sigma", f"None for a {likelihood} decoder (it has no sigma)", repr(sigma))
        if gaussian and sigma is None:
            _checks.fail("sigma", "a number (fixed sigma), 'shared' or 'per_pixel'", "None")
        self.min_sigma = _checks.number("min_sigma", min_sigma, positive=True)
        init_sigma = _checks.number("init_sigma", init_sigma, positive=True)
        self.sigma_mode = sigma if isinstance(sigma, str) else ("fixed" if gaussian else None)
        if isinstance(sigma, str):
            _checks.choice("sigma", sigma, SIGMAS)
            shape = (self.input_dim,) if sigma == "per_pixel" else ()
            # Adam moves a parameter by about lr per step, and log sigma^2 has several units to travel: store it
            # divided by LOG_SIGMA2_SPEED, the same model with a faster optimiser for this one parameter
            self.raw_log_sigma2 = nn.Parameter(torch.full(shape, 2 * math.log(init_sigma) / LOG_SIGMA2_SPEED))
        elif gaussian:
            sigma = _checks.number("sigma", sigma, positive=True)
            self.register_buffer("log_sigma2", torch.tensor(2 * math.log(sigma)))
        self.config.update(likelihood=likelihood, sigma=sigma, init_sigma=init_sigma, min_sigma=self.min_sigma)

    def logvar_x(self) -> torch.Tensor:
        r"""$\log\sigma^2$ of the Gaussian decoder, ``[]`` or ``[input_dim]``, clamped at ``2 log min_sigma``."""
        if self.sigma_mode is None:
            _checks.fail("model", "a Gaussian decoder (it has a sigma)", f"a {self.likelihood} decoder")
        log_sigma2 = self.log_sigma2 if self.sigma_mode == "fixed" else LOG_SIGMA2_SPEED * self.raw_log_sigma2
        return log_sigma2.clamp(min=2 * math.log(self.min_sigma))

    def log_likelihood(self, x_logits: torch.Tensor, x: torch.Tensor, likelihood: str | None = None) -> torch.Tensor:
        """$\\log p_\\theta(x\\mid z)$ of ``x [batch, D]`` given ``x_logits`` ``[..., batch, D]``: ``[..., batch]``,
        nats. ``likelihood`` (default: the model's own) scores under another one of the same parameters."""
        likelihood = self.likelihood if likelihood is None else _checks.choice("likelihood", likelihood, LIKELIHOODS)
        if likelihood == "bernoulli":
            return bernoulli_log_likelihood(x_logits, x)
        if likelihood == "continuous_bernoulli":
            return continuous_bernoulli_log_likelihood(x_logits, x)
        mean, logvar = torch.sigmoid(x_logits), self.logvar_x()
        if likelihood == "gaussian":
            return gaussian_log_likelihood(x, mean, logvar.expand(x.shape[-1]))
        return discretized_gaussian_log_likelihood(x, mean, logvar.expand(x.shape[-1]))


def _check_decoder_model(model):
    if not isinstance(model, DecoderVAE):
        _checks.fail("model", "a vae_lesson.variants.decoders.DecoderVAE", type(model).__name__, TypeError)
    return model


def decoder_elbo(model: DecoderVAE, x: torch.Tensor, generator: torch.Generator | None = None,
                 n_samples: int = 1, likelihood: str | None = None) -> ELBOTerms:
    r"""ELBO terms per example under the model's decoder (or ``likelihood``), ``[batch]`` each, nats.

    ``reconstruction`` $= \frac1S\sum_s\log p_\theta(x\mid z_s)$, $z_s\sim q_\phi(z\mid x)$ (``S = n_samples``),
    ``kl`` $= \mathrm{KL}(q_\phi(z\mid x)\,\|\,\mathcal N(0, I))$ in closed form, ``elbo`` = their difference.
    Differentiable; ``objective=decoder_objective()`` hands it to :func:`vae_lesson.fit`.
    """
    _check_decoder_model(model)
    n_samples = _checks.integer("n_samples", n_samples, minimum=1)
    _checks.generator("generator", generator)
    mu, logvar = model.encode(x)  # [batch, latent_dim] each; encode checks x
    x = _checks.model_input("x", x, model)
    shape = (n_samples, *mu.shape)
    z = reparameterize(mu.expand(shape), logvar.expand(shape), generator=generator)  # [S, batch, latent_dim]
    reconstruction = model.log_likelihood(model.decode(z), x, likelihood).mean(0)  # [batch]
    kl = gaussian_kl(mu, logvar)  # [batch]
    return ELBOTerms(reconstruction - kl, reconstruction, kl)


def decoder_objective(likelihood: str | None = None):
    """``objective(model, x, generator=None) -> ELBOTerms`` for :func:`vae_lesson.fit`: :func:`decoder_elbo`."""
    if likelihood is not None:
        _checks.choice("likelihood", likelihood, LIKELIHOODS)

    def objective(model, x, generator=None):
        return decoder_elbo(model, x, generator=generator, likelihood=likelihood)

    return objective


@torch.no_grad()
def decoder_iwae(model: DecoderVAE, x: torch.Tensor, k: int, generator: torch.Generator | None = None,
                 likelihood: str | None = None, max_rows: int = 2**14) -> torch.Tensor:
    r"""$\mathcal L_k(x) = \log\frac1k\sum_{i=1}^k \frac{p_\theta(x\mid z_i)\,p(z_i)}{q_\phi(z_i\mid x)}$,
    $z_i\sim q_\phi(z\mid x)$: the IWAE bound under the model's decoder (or ``likelihood``), ``[batch]``, nats.

    A lower bound on $\log p_\theta(x)$ in expectation, tightening with ``k`` (Burda et al., 2016): a bound on a
    log-probability for the Bernoulli on binary data and the discretized Gaussian, on a log-density for the
    continuous ones. Streams over chunks of at most ``max_rows`` decoded rows.
    """
    _check_decoder_model(model)
    k = _checks.integer("k", k, minimum=1)
    max_rows = _checks.integer("max_rows", max_rows, minimum=1)
    _checks.generator("generator", generator)
    mu, logvar = model.encode(x)  # [batch, latent_dim]
    x = _checks.model_input("x", x, model)
    chunk = max(1, max_rows // max(1, x.shape[0]))
    parts = []
    for start in range(0, k, chunk):
        shape = (min(chunk, k - start), *mu.shape)
        z = reparameterize(mu.expand(shape), logvar.expand(shape), generator=generator)  # [chunk, batch, latent]
        log_w = (model.log_likelihood(model.decode(z), x, likelihood)
                 + gaussian_log_likelihood(z, torch.zeros_like(z), torch.zeros_like(z))
                 - gaussian_log_likelihood(z, mu, logvar))  # [chunk, batch]
        parts.append(torch.logsumexp(log_w, 0))
    return torch.logsumexp(torch.stack(parts), 0) - math.log(k)


def mean_and_se(values: torch.Tensor) -> tuple[float, float]:
    """Mean of per-example values ``[n]`` and its standard error across examples (sd / sqrt(n))."""
    _checks.tensor("values", values, ndim=1)
    if values.numel() < 2:
        _checks.fail("values", "at least two values (a standard error needs two)", values.numel())
    return values.mean().item(), (values.std() / math.sqrt(values.numel())).item()
