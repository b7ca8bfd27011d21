r"""Objectives: the evidence lower bound (ELBO) and the importance-weighted bound (IWAE).

For one data point $x$ and an encoder $q_\phi(z\mid x)$,

$$\log p_\theta(x) \;\ge\; \mathcal L_K(x) = \mathbb E_{z_{1..K}\sim q}\Big[\log \tfrac1K \sum_{i=1}^K
  \frac{p_\theta(x\mid z_i)\,p(z_i)}{q_\phi(z_i\mid x)}\Big] \;\ge\; \mathcal L_1(x) = \text{ELBO}(x),$$

and $\text{ELBO}(x) = \underbrace{\mathbb E_q[\log p_\theta(x\mid z)]}_{\text{reconstruction}}
- \underbrace{\mathrm{KL}(q_\phi(z\mid x)\,\|\,p(z))}_{\text{kl}}$.

:func:`elbo` estimates the reconstruction term by Monte Carlo and computes the KL in closed form;
:func:`iwae_bound` averages the importance weights inside the log with log-sum-exp, in chunks so that
``k = 5000`` on 1000 images fits in memory. All results are ``[batch]`` tensors in nats.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from vae_lesson import _checks
from vae_lesson.core.distributions import (
    _bernoulli_log_likelihood,
    _gaussian_kl,
    _gaussian_log_likelihood,
    _reparameterize,
)


class ELBOTerms(NamedTuple):
    """Per-example terms, each ``[batch]`` in nats: ``elbo = reconstruction - kl``."""

    elbo: torch.Tensor
    reconstruction: torch.Tensor
    kl: torch.Tensor


def _check_model(model: object, needs: tuple[str, ...] = ("encode", "decode")) -> None:
    if not isinstance(model, torch.nn.Module) or not all(hasattr(model, m) for m in needs):
        _checks.fail("model", "a vae_lesson.VAE (an nn.Module with encode(x) -> (mu, logvar) and decode(z))",
                     type(model).__name__, TypeError)


def _encode_gaussian(model, x):
    out = model.encode(x)
    if not (isinstance(out, tuple) and len(out) == 2):
        _checks.fail("model", "encode(x) to return (mu, logvar), as a VAE does", type(out).__name__, TypeError)
    return out


MAX_DECODE_ROWS = 2**16  # elbo: above this many decoded rows (n_samples * batch), decode in chunks of samples
MAX_Z_ELEMENTS = 2**27  # elbo: n_samples * batch * latent_dim at most (the z drawn at once: 512 MiB of float32)
MAX_LOG_WEIGHT_ELEMENTS = 2**30  # iwae_log_weights: k * batch * input_dim decoded pixels at once, at most


def _model_x(model, x):
    """The float64 rule: a floating-point ``x`` cast once to the model's dtype (the model's ``encode`` checks it)."""
    if isinstance(x, torch.Tensor) and x.is_floating_point():
        return _checks.model_input("x", x, model)
    return x


def elbo(model, x: torch.Tensor, n_samples: int = 1, generator: torch.Generator | None = None) -> ELBOTerms:
    r"""The ELBO of a VAE, per example.

    $\text{reconstruction} = \frac1S \sum_{s=1}^S \log p_\theta(x \mid z_s)$, $z_s = \mu + \sigma\odot\varepsilon_s$
    (``S = n_samples``); $\text{kl} = \mathrm{KL}(q_\phi(z\mid x)\,\|\,\mathcal N(0, I))$ in closed form.

    ``x``: ``[batch, input_dim]``, pixels in [0, 1] (float64 is cast once to the model's dtype).
    Returns :class:`ELBOTerms` of ``[batch]`` tensors, nats.
    Differentiable: ``-elbo(model, x).elbo.mean()`` is the usual training loss.

    Memory: all ``S`` noise draws are made at once (``n_samples * batch * latent_dim <= MAX_Z_ELEMENTS``), and
    above ``MAX_DECODE_ROWS`` decoded rows the decoder runs over chunks of samples, so under ``torch.no_grad()``
    memory stays bounded for any allowed ``n_samples``. Chunking changes no number: every row is decoded exactly
    as in one pass, and the mean over samples is taken over the same ``[S, batch]`` values.
    """
    _check_model(model)
    n_samples = _checks.integer("n_samples", n_samples, minimum=1)
    _checks.generator("generator", generator)
    x = _model_x(model, x)
    mu, logvar = _encode_gaussian(model, x)  # [batch, latent_dim] each; encode checks x
    with _SamplesOverflow(logvar):
        return _elbo(model, x, mu, logvar, n_samples, generator)


def _elbo(model, x, mu, logvar, n_samples, generator):
    if n_samples == 1:
        z = _reparameterize(mu, logvar, generator)  # [batch, latent_dim]
        reconstruction = _bernoulli_log_likelihood(model.decode(z), x)  # [batch]
    else:
        batch = mu.shape[0]
        per_sample = max(1, mu[0:1].numel()) * max(1, batch)  # batch * latent_dim
        if n_samples * per_sample > MAX_Z_ELEMENTS:
            _checks.fail("n_samples", f"at most {MAX_Z_ELEMENTS // per_sample} for a batch of {batch} with "
                         f"latent_dim {mu.shape[-1]} (n_samples * batch * latent_dim <= {MAX_Z_ELEMENTS}; "
                         "split the batch, or average several calls)", n_samples)
        shape = (n_samples, *mu.shape)
        z = _reparameterize(mu.expand(shape), logvar.expand(shape), generator)  # [S, batch, latent_dim]
        if n_samples * batch <= MAX_DECODE_ROWS:
            reconstruction = _bernoulli_log_likelihood(model.decode(z), x)  # [S, batch]
        else:
            step = max(1, MAX_DECODE_ROWS // max(1, batch))
            reconstruction = torch.cat([_bernoulli_log_likelihood(model.decode(z[s:s + step]), x)
                                        for s in range(0, n_samples, step)])  # [S, batch]
        reconstruction = reconstruction.mean(0)
    kl = _gaussian_kl(mu, logvar)  # [batch]
    return ELBOTerms(reconstruction - kl, reconstruction, kl)


def reconstruction_terms(model, x: torch.Tensor, generator: torch.Generator | None = None) -> ELBOTerms:
    """The autoencoder's objective in the same form: the Bernoulli log-likelihood of its reconstruction.

    There is no KL (``kl = 0``) and no bound: ``elbo`` here is just ``reconstruction``, nats per example.
    """
    _check_model(model)
    x = _model_x(model, x)
    recon = _bernoulli_log_likelihood(model.decode(model.encode(x)), x)  # [batch]
    zero = torch.zeros_like(recon)
    return ELBOTerms(recon, recon, zero)


def iwae_log_weights(model, x: torch.Tensor, k: int, generator: torch.Generator | None = None) -> torch.Tensor:
    r"""Log importance weights $\log w_i = \log p_\theta(x\mid z_i) + \log p(z_i) - \log q_\phi(z_i\mid x)$.

    Returns ``[k, batch]``, nats, all ``k`` at once (use :func:`iwae_bound` for large ``k``): at most
    ``MAX_LOG_WEIGHT_ELEMENTS`` decoded pixels (``k * batch * input_dim``).
    """
    _check_model(model)
    k = _checks.integer("k", k, minimum=1)
    _checks.generator("generator", generator)
    x = _model_x(model, x)
    mu, logvar = _encode_gaussian(model, x)
    pixels = max(1, x.shape[0] * x.shape[-1])
    if k * pixels > MAX_LOG_WEIGHT_ELEMENTS:
        _checks.fail("k", f"at most {MAX_LOG_WEIGHT_ELEMENTS // pixels} for {x.shape[0]} images of {x.shape[-1]} "
                     "pixels (all k are decoded at once; iwae_bound streams any k)", k)
    with _SamplesOverflow(logvar):
        return _check_log_weights(_log_weights(model, x, mu, logvar, k, generator), logvar)


class _SamplesOverflow:
    """``with _SamplesOverflow(logvar):`` a non-finite ``z`` the caller never passed (it was drawn here) is
    reported as the encoder's fault, still as a ``NonFiniteError`` (so ``fit`` turns it into divergence)."""

    def __init__(self, logvar: torch.Tensor):
        self.logvar = logvar

    def __enter__(self):
        return self

    def __exit__(self, kind, err, tb):
        if kind is not None and issubclass(kind, _checks.NonFiniteError) and str(err).startswith("z:"):
            lv = self.logvar.detach()
            top = float(lv.max()) if lv.numel() else float("nan")
            _checks.fail("model", "an encoder whose samples z = mu + exp(logvar / 2) * eps stay finite",
                         f"non-finite samples (logvar reaches {top:.4g}; exp overflows {lv.dtype} above about "
                         f"{2 * math.log(torch.finfo(lv.dtype).max):.0f}); decode said: {err}", _checks.NonFiniteError)
        return False


def _check_log_weights(values: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Never a silent NaN: NaN log-weights come from samples z that overflowed (an under-confident encoder)."""
    if bool(torch.isnan(values).any()):
        _checks.fail("model", "an encoder whose samples z = mu + exp(logvar / 2) * eps stay finite",
                     f"NaN log-weights (logvar reaches {float(logvar.max()):.4g}; exp overflows "
                     f"{logvar.dtype} above about {2 * math.log(torch.finfo(logvar.dtype).max):.0f})",
                     _checks.NonFiniteError)
    return values


def _log_weights(model, x, mu, logvar, k, generator):
    shape = (k, *mu.shape)
    z = _reparameterize(mu.expand(shape), logvar.expand(shape), generator)  # [k, batch, latent_dim]
    log_px_z = _bernoulli_log_likelihood(model.decode(z), x)  # [k, batch]
    log_pz = _gaussian_log_likelihood(z, torch.zeros_like(z), torch.zeros_like(z))  # [k, batch]
    log_qz = _gaussian_log_likelihood(z, mu, logvar)  # [k, batch]
    return log_px_z + log_pz - log_qz


def iwae_bound(model, x: torch.Tensor, k: int, generator: torch.Generator | None = None,
               max_rows: int = 4096) -> torch.Tensor:
    r"""$\log \frac1k \sum_{i=1}^k \frac{p_\theta(x, z_i)}{q_\phi(z_i\mid x)}$, $z_i \sim q_\phi(z\mid x)$, per example.

    A stochastic lower bound on $\log p_\theta(x)$ whose expectation rises with ``k`` towards it (Burda et al.,
    2016); ``k = 1`` is the one-sample ELBO (same expectation as :func:`elbo`). Computed with log-sum-exp,
    streaming over chunks of at most ``max_rows`` decoded rows, so memory stays bounded for any ``k``.
    ``x``: ``[batch, input_dim]``. Returns ``[batch]``, nats. Wrap in ``torch.no_grad()`` for evaluation.
    """
    _check_model(model)
    k = _checks.integer("k", k, minimum=1)
    max_rows = _checks.integer("max_rows", max_rows, minimum=1)
    _checks.generator("generator", generator)
    x = _model_x(model, x)
    mu, logvar = _encode_gaussian(model, x)  # [batch, latent_dim]
    results = []
    batch_chunk = min(x.shape[0], max_rows) or 1
    for b in range(0, x.shape[0], batch_chunk):
        xb, mub, lvb = x[b:b + batch_chunk], mu[b:b + batch_chunk], logvar[b:b + batch_chunk]
        k_chunk = max(1, max_rows // xb.shape[0])
        running = None  # log sum_i w_i over the chunks so far, [batch_chunk]
        for start in range(0, k, k_chunk):
            with _SamplesOverflow(lvb):
                lw = _log_weights(model, xb, mub, lvb, min(k_chunk, k - start), generator)  # [chunk, batch_chunk]
            part = torch.logsumexp(lw, dim=0)
            running = part if running is None else torch.logaddexp(running, part)
        results.append(running - math.log(k))
    return _check_log_weights(torch.cat(results), logvar) if results else mu.new_zeros(0)
