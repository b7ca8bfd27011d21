r"""Objectives: the evidence lower bound (ELBO) and the importance-weighted bound (IWAE).

For one data point $x$ and an encoder $q_\phi(z\mid x)$,

$$\log p_\theta(x) \;\ge\; \mathcal L_K(x) = \mathbb E_{z_{1..K}\sim q}\Big[\log \tfrac1K \sum_{i=1}^K
  \frac{p_\theta(x\mid z_i)\,p(z_i)}{q_\phi(z_i\mid x)}\Big] \;\ge\; \mathcal L_1(x) = \text{ELBO}(x),$$

and $\text{ELBO}(x) = \underbrace{\mathbb E_q[\log p_\theta(x\mid z)]}_{\text{reconstruction}}
- \underbrace{\mathrm{KL}(q_\phi(z\mid x)\,\|\,p(z))}_{\text{kl}}$.

:func:`elbo` estimates the reconstruction term by Monte Carlo and computes the KL in closed form;
:func:`iwae_bound` averages the importance weights inside the log with log-sum-exp, in chunks so that
``k = 5000`` on 1000 images fits in memory. All results are ``[batch]`` tensors in nats. Each formula is written
once: :func:`elbo_from_q` (the ELBO of any diagonal Gaussian q) and :func:`log_importance_weights`; the model-level
functions here and every variant call them.

A training objective for :func:`vae_lesson.fit` returns :class:`ELBOTerms` (when its terms are exactly
reconstruction, KL and ELBO) or an :class:`Objective`: a per-example loss and named terms.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from vae_lesson import _checks
from vae_lesson.core.distributions import bernoulli_log_likelihood, gaussian_kl, gaussian_log_likelihood, reparameterize


class ELBOTerms(NamedTuple):
    """Per-example terms, each ``[batch]`` in nats: ``elbo = reconstruction - kl``."""

    elbo: torch.Tensor
    reconstruction: torch.Tensor
    kl: torch.Tensor


class Objective(NamedTuple):
    r"""What a training objective returns when its terms are not the ELBO's (reconstruction, KL, ELBO).

    * ``loss``: ``[batch]``, the per-example loss :func:`vae_lesson.fit` minimises (its batch mean);
    * ``terms``: ``{name: [batch] tensor}``, the quantities ``fit`` records under those names (``History``
      series, and ``val_<name>`` on validation data) and :func:`vae_lesson.evaluate` averages. Each name means one
      thing, e.g. ``"iwae_bound"`` for the IWAE-k bound, ``"squared_distance"`` for a VQ-VAE's codes;
    * ``beta_term``: ``[batch]`` or ``None``. When given, ``fit`` minimises the mean of
      ``loss + beta_t * beta_term`` (``beta`` and KL warm-up weight it, as they weight the KL of the ELBO);
      ``None``: the objective has no KL-like term, and ``fit(beta != 1)`` or ``kl_warmup_epochs > 0`` is an error.

    An objective may still return :class:`ELBOTerms` when its fields mean exactly reconstruction, KL and ELBO:
    ``fit`` then minimises ``-(reconstruction - beta_t * kl)`` and records the three.
    """

    loss: torch.Tensor
    terms: dict
    beta_term: torch.Tensor | None = None


def check_vae(model: object, needs: tuple[str, ...] = ("encode", "decode")) -> torch.nn.Module:
    """Check that ``model`` is an ``nn.Module`` with the methods ``needs`` (a VAE: ``encode`` and ``decode``)."""
    if not isinstance(model, torch.nn.Module) or not all(hasattr(model, m) for m in needs):
        _checks.fail("model", "a vae_lesson.VAE (an nn.Module with encode(x) -> (mu, logvar) and decode(z))",
                     type(model).__name__, TypeError)
    return model


def encode_gaussian(model, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``model.encode(x)``, checked to be a Gaussian's ``(mu, logvar)`` (each ``[batch, latent_dim]``)."""
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
    Differentiable: ``-elbo(model, x).elbo.mean()`` is the usual training loss. The formula itself is
    :func:`elbo_from_q` with the encoder's ``(mu, logvar)`` and the model's ``decode``.

    Memory: all ``S`` noise draws are made at once (``n_samples * batch * latent_dim <= MAX_Z_ELEMENTS``), and
    above ``MAX_DECODE_ROWS`` decoded rows the decoder runs over chunks of samples, so under ``torch.no_grad()``
    memory stays bounded for any allowed ``n_samples``. Chunking changes no number: every row is decoded exactly
    as in one pass, and the mean over samples is taken over the same ``[S, batch]`` values.
    """
    check_vae(model)
    n_samples = _checks.integer("n_samples", n_samples, minimum=1)
    _checks.generator("generator", generator)
    x = _model_x(model, x)
    mu, logvar = encode_gaussian(model, x)  # [batch, latent_dim] each; encode checks x
    with _SamplesOverflow(logvar):
        return _elbo_from_q(model.decode, x, mu, logvar, n_samples, generator, None)


def _check_q(x, mu, logvar, what: str = "x") -> None:
    _checks.tensor("x", x, ndim=2, low=0.0, high=1.0)
    _checks.tensor("mu", mu, ndim=2)
    _checks.tensor("logvar", logvar, ndim=2)
    _checks.same_shape("mu", mu, "logvar", logvar)
    if mu.shape[0] != x.shape[0]:
        _checks.fail("mu", f"one row per example of {what}, [{x.shape[0]}, latent_dim]", list(mu.shape))


def _check_decode(decode) -> None:
    if not callable(decode):
        _checks.fail("decode", "a function z -> x_logits (e.g. model.decode)", type(decode).__name__, TypeError)


def elbo_from_q(decode, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, n_samples: int = 1,
                generator: torch.Generator | None = None, eps: torch.Tensor | None = None) -> ELBOTerms:
    r"""The ELBO of ``x`` for a Bernoulli decoder and **any** diagonal Gaussian
    $q = \mathcal N(\mu, \operatorname{diag} e^{\text{logvar}})$: the one implementation of the formula.

    $\mathcal L(x; q) = \frac1S\sum_{s=1}^S \log p_\theta(x \mid z_s) - \mathrm{KL}(q\,\|\,\mathcal N(0, I))$, with
    $z_s$ = :func:`~vae_lesson.reparameterize` ``(mu, logvar)``, the log-likelihood
    :func:`~vae_lesson.bernoulli_log_likelihood` of ``decode(z_s)`` (logits) and the KL
    :func:`~vae_lesson.gaussian_kl` in closed form. :func:`elbo` is this with the encoder's ``(mu, logvar)``;
    the CVAE, free bits and the local posteriors of notebook 08 call it too.

    ``decode``: ``z [..., latent_dim] -> x_logits [..., input_dim]``; ``x``: ``[batch, input_dim]`` in [0, 1];
    ``mu``, ``logvar``: ``[batch, latent_dim]``; ``eps``: optional noise drawn beforehand,
    ``[n_samples, batch, latent_dim]`` (then ``n_samples`` and ``generator`` are not used). Returns
    :class:`ELBOTerms` of ``[batch]`` tensors, nats; differentiable in ``mu``, ``logvar`` and the decoder.
    """
    _check_decode(decode)
    _check_q(x, mu, logvar)
    n_samples = _checks.integer("n_samples", n_samples, minimum=1)
    _checks.generator("generator", generator)
    if eps is not None:
        _checks.tensor("eps", eps, ndim=3)
        if eps.shape[1:] != mu.shape:
            _checks.fail("eps", f"shape [n_samples, {mu.shape[0]}, {mu.shape[1]}] (noise for each example)",
                         list(eps.shape))
    with _SamplesOverflow(logvar):
        return _elbo_from_q(decode, x, mu, logvar, n_samples, generator, eps)


def _elbo_from_q(decode, x, mu, logvar, n_samples, generator, eps):
    if eps is not None:
        z = reparameterize(mu, logvar, eps=eps)  # [S, batch, latent_dim]
        reconstruction = _decoded_log_likelihood(decode, z, x).mean(0)  # [batch]
    elif n_samples == 1:
        z = reparameterize(mu, logvar, generator)  # [batch, latent_dim]
        reconstruction = bernoulli_log_likelihood(decode(z), x)  # [batch]
    else:
        batch = mu.shape[0]
        per_sample = max(1, mu[0:1].numel()) * max(1, batch)  # batch * latent_dim
        if n_samples * per_sample > MAX_Z_ELEMENTS:
            _checks.fail("n_samples", f"at most {MAX_Z_ELEMENTS // per_sample} for a batch of {batch} with "
                         f"latent_dim {mu.shape[-1]} (n_samples * batch * latent_dim <= {MAX_Z_ELEMENTS}; "
                         "split the batch, or average several calls)", n_samples)
        shape = (n_samples, *mu.shape)
        z = reparameterize(mu.expand(shape), logvar.expand(shape), generator)  # [S, batch, latent_dim]
        reconstruction = _decoded_log_likelihood(decode, z, x).mean(0)  # [batch]
    kl = gaussian_kl(mu, logvar)  # [batch]
    return ELBOTerms(reconstruction - kl, reconstruction, kl)


def _decoded_log_likelihood(decode, z, x):
    """``bernoulli_log_likelihood(decode(z), x)`` for ``z [S, batch, d]`` -> ``[S, batch]``, decoded in chunks of
    samples above ``MAX_DECODE_ROWS`` rows (each row decoded exactly as in one pass)."""
    n_samples, batch = z.shape[0], z.shape[1]
    if n_samples * batch <= MAX_DECODE_ROWS:
        return bernoulli_log_likelihood(decode(z), x)  # [S, batch]
    step = max(1, MAX_DECODE_ROWS // max(1, batch))
    return torch.cat([bernoulli_log_likelihood(decode(z[s:s + step]), x) for s in range(0, n_samples, step)])


def reconstruction_terms(model, x: torch.Tensor, generator: torch.Generator | None = None) -> Objective:
    """The autoencoder's objective: the Bernoulli log-likelihood of its reconstruction, nats per example.

    Returns :class:`Objective` ``(loss = -reconstruction, terms = {"reconstruction": ...})``: an autoencoder has
    no KL and no bound, so its history has a ``reconstruction`` series and nothing named ``kl`` or ``elbo``.
    """
    check_vae(model)
    x = _model_x(model, x)
    recon = bernoulli_log_likelihood(model.decode(model.encode(x)), x)  # [batch]
    return Objective(-recon, {"reconstruction": recon})


def iwae_log_weights(model, x: torch.Tensor, k: int, generator: torch.Generator | None = None) -> torch.Tensor:
    r"""Log importance weights $\log w_i = \log p_\theta(x\mid z_i) + \log p(z_i) - \log q_\phi(z_i\mid x)$.

    Returns ``[k, batch]``, nats, all ``k`` at once (use :func:`iwae_bound` for large ``k``): at most
    ``MAX_LOG_WEIGHT_ELEMENTS`` decoded pixels (``k * batch * input_dim``). The formula is
    :func:`log_importance_weights` with the encoder's ``(mu, logvar)``.
    """
    check_vae(model)
    k = _checks.integer("k", k, minimum=1)
    _checks.generator("generator", generator)
    x = _model_x(model, x)
    mu, logvar = encode_gaussian(model, x)
    pixels = max(1, x.shape[0] * x.shape[-1])
    if k * pixels > MAX_LOG_WEIGHT_ELEMENTS:
        _checks.fail("k", f"at most {MAX_LOG_WEIGHT_ELEMENTS // pixels} for {x.shape[0]} images of {x.shape[-1]} "
                     "pixels (all k are decoded at once; iwae_bound streams any k)", k)
    with _SamplesOverflow(logvar):
        return check_log_weights(_log_weights(model.decode, x, mu, logvar, k, generator), logvar)


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


def check_log_weights(values: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Never a silent NaN: log importance weights ``values`` (any shape) checked once, after they were computed
    with the per-call checks off; NaN ones come from samples z that overflowed (an under-confident encoder with
    log-variances ``logvar``), reported as the model's fault (``NonFiniteError``). Returns ``values``.

    A value scan like any other check: skipped inside ``fit``'s steps (the loss check catches the NaN there)."""
    if _checks.scanning() and bool(torch.isnan(values).any()):
        _checks.fail("model", "an encoder whose samples z = mu + exp(logvar / 2) * eps stay finite",
                     f"non-finite samples: NaN log-weights (logvar reaches {float(logvar.detach().max()):.4g}; exp "
                     f"overflows {logvar.dtype} above about {2 * math.log(torch.finfo(logvar.dtype).max):.0f})",
                     _checks.NonFiniteError)
    return values


def log_importance_weights(decode, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, k: int,
                           generator: torch.Generator | None = None) -> torch.Tensor:
    r"""$\log w_i = \log p_\theta(x\mid z_i) + \log p(z_i) - \log q(z_i\mid x)$, $z_i \sim q$, for a Bernoulli
    decoder and any diagonal Gaussian $q = \mathcal N(\mu, \operatorname{diag} e^{\text{logvar}})$: the one
    implementation of the importance weights (IWAE bounds, curves and training, the CVAE's marginal).

    $z_i$ = :func:`~vae_lesson.reparameterize` of ``mu``, ``logvar`` expanded to ``[k, batch, latent_dim]``;
    $\log p(z_i)$ and $\log q(z_i\mid x)$ are :func:`~vae_lesson.gaussian_log_likelihood`. ``decode``:
    ``z -> x_logits``; ``x``: ``[batch, input_dim]`` in [0, 1]; ``mu``, ``logvar``: ``[batch, latent_dim]``.
    Returns ``[k, batch]``, nats (all ``k`` decoded at once: chunk ``k`` yourself for large values).
    """
    _check_decode(decode)
    _check_q(x, mu, logvar)
    k = _checks.integer("k", k, minimum=1)
    _checks.generator("generator", generator)
    with _SamplesOverflow(logvar):
        return check_log_weights(_log_weights(decode, x, mu, logvar, k, generator), logvar)


def _log_weights(decode, x, mu, logvar, k, generator):
    shape = (k, *mu.shape)
    z = reparameterize(mu.expand(shape), logvar.expand(shape), generator)  # [k, batch, latent_dim]
    log_px_z = bernoulli_log_likelihood(decode(z), x)  # [k, batch]
    log_pz = gaussian_log_likelihood(z, torch.zeros_like(z), torch.zeros_like(z))  # [k, batch]
    log_qz = gaussian_log_likelihood(z, mu, logvar)  # [k, batch]
    return log_px_z + log_pz - log_qz


def iwae_bound(model, x: torch.Tensor, k: int, generator: torch.Generator | None = None,
               max_rows: int = 4096) -> torch.Tensor:
    r"""$\log \frac1k \sum_{i=1}^k \frac{p_\theta(x, z_i)}{q_\phi(z_i\mid x)}$, $z_i \sim q_\phi(z\mid x)$, per example.

    A stochastic lower bound on $\log p_\theta(x)$ whose expectation rises with ``k`` towards it (Burda et al.,
    2016); ``k = 1`` is the one-sample ELBO (same expectation as :func:`elbo`). Computed with log-sum-exp of
    :func:`log_importance_weights`, streaming over chunks of at most ``max_rows`` decoded rows, so memory stays
    bounded for any ``k``. The inputs are checked once up front and the result once at the end (no check per
    chunk). ``x``: ``[batch, input_dim]``. Returns ``[batch]``, nats. Wrap in ``torch.no_grad()`` for evaluation.
    """
    check_vae(model)
    k = _checks.integer("k", k, minimum=1)
    max_rows = _checks.integer("max_rows", max_rows, minimum=1)
    _checks.generator("generator", generator)
    x = _model_x(model, x)
    mu, logvar = encode_gaussian(model, x)  # [batch, latent_dim]; encode checks x
    results = []
    batch_chunk = min(x.shape[0], max_rows) or 1
    with _checks.data_checked_upstream():
        for b in range(0, x.shape[0], batch_chunk):
            xb, mub, lvb = x[b:b + batch_chunk], mu[b:b + batch_chunk], logvar[b:b + batch_chunk]
            k_chunk = max(1, max_rows // xb.shape[0])
            running = None  # log sum_i w_i over the chunks so far, [batch_chunk]
            for start in range(0, k, k_chunk):
                lw = _log_weights(model.decode, xb, mub, lvb, min(k_chunk, k - start), generator)  # [chunk, b]
                part = torch.logsumexp(lw, dim=0)
                running = part if running is None else torch.logaddexp(running, part)
            results.append(running - math.log(k))
    return check_log_weights(torch.cat(results), logvar) if results else mu.new_zeros(0)
