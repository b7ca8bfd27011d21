r"""Evaluating a trained VAE in nats: importance-weighted estimates of $\log p_\theta(x)$ and the amortization gap.

For one test image $x$, three numbers bracket each other (Cremer, Li & Duvenaud, *Inference Suboptimality in
Variational Autoencoders*, 2018):

$$\underbrace{\mathcal L(x; q_\phi)}_{\text{amortized ELBO}} \;\le\;
\underbrace{\mathcal L(x; q^*_x)}_{\text{local ELBO}} \;\le\; \log p_\theta(x) \;\approx\;
\mathcal L_K(x) \text{ for large } K,$$

where $q_\phi(z\mid x)$ is the encoder's Gaussian and $q^*_x$ is the best diagonal Gaussian for this one $x$
(found by :func:`optimise_local_posterior`). The **amortization gap** $\mathcal L(x; q^*_x) - \mathcal L(x; q_\phi)$
is what the encoder loses by predicting $q$ with one network for all images; the **approximation gap**
$\log p_\theta(x) - \mathcal L(x; q^*_x)$ is what any diagonal Gaussian loses. $\mathcal L_K$ is the IWAE bound
(:func:`vae_lesson.iwae_bound`); :func:`iwae_curve` gives it for several $K$ at the cost of the largest one.

Everything here is for *evaluation*: the decoder $\theta$ is never changed. All values are nats per example,
summed over pixels, for the package's Bernoulli decoder. Posterior collapse diagnostics live in
:mod:`vae_lesson.analysis.collapse`.
"""

from __future__ import annotations

import math

import torch

from vae_lesson import _checks
from vae_lesson.core.bounds import (
    ELBOTerms,
    check_log_weights,
    check_vae,
    elbo_from_q,
    encode_gaussian,
    log_importance_weights,
)
from vae_lesson.core.distributions import reparameterize


def _check_x(name: str, X, model) -> torch.Tensor:
    _checks.tensor(name, X, ndim=2, low=0.0, high=1.0)
    input_dim = getattr(model, "input_dim", X.shape[1])
    if X.shape[1] != input_dim:
        _checks.fail(name, f"shape [n, {input_dim}] (the model's input_dim)", list(X.shape))
    return _checks.model_input(name, X, model)  # float64 data: cast once to the model's dtype


def _check_ks(ks) -> list[int]:
    if isinstance(ks, (str, bytes)) or not hasattr(ks, "__iter__"):
        _checks.fail("ks", "a sequence of ints such as (1, 10, 100)", repr(ks), TypeError)
    ks = [_checks.integer(f"ks[{i}]", k, minimum=1) for i, k in enumerate(ks)]
    if not ks:
        _checks.fail("ks", "at least one value of k", "an empty sequence")
    return ks


def _check_proposal(model, X, mu, logvar):
    if (mu is None) != (logvar is None):
        _checks.fail("mu, logvar", "both tensors (a proposal) or both None (the encoder's q)",
                     f"mu={type(mu).__name__}, logvar={type(logvar).__name__}", TypeError)
    if mu is None:
        return None
    _checks.tensor("mu", mu, ndim=2)
    _checks.tensor("logvar", logvar, ndim=2)
    _checks.same_shape("mu", mu, "logvar", logvar)
    if mu.shape[0] != X.shape[0]:
        _checks.fail("mu", f"one row per example of X, [{X.shape[0]}, latent_dim]", list(mu.shape))
    return mu, logvar


def _log_weight_batches(model, X, K, proposal, generator, max_rows):
    # Yields (first row, log weights [K, batch]) batch by batch; the draws of iwae_curve since its first version.
    # X and the proposal were checked up front: the chunks run without value scans, and each batch's weights are
    # checked once (check_log_weights).
    batch = min(X.shape[0], max_rows) or 1
    for b in range(0, X.shape[0], batch):
        xb = X[b:b + batch]  # [batch, D]
        if proposal is None:
            mu, logvar = encode_gaussian(model, xb)  # [batch, latent_dim] each, encoded once
        else:
            mu, logvar = proposal[0][b:b + batch], proposal[1][b:b + batch]
        k_chunk = max(1, max_rows // xb.shape[0])
        with _checks.data_checked_upstream():
            log_w = torch.cat([log_importance_weights(model.decode, xb, mu, logvar, min(k_chunk, K - s), generator)
                               for s in range(0, K, k_chunk)])  # [K, batch], as iwae_log_weights computes them
        yield b, check_log_weights(log_w, logvar)


@torch.no_grad()
def iwae_curve(model, X: torch.Tensor, ks, generator: torch.Generator | None = None,
               max_rows: int = 2**12, mu: torch.Tensor | None = None,
               logvar: torch.Tensor | None = None) -> torch.Tensor:
    r"""The IWAE bound $\mathcal L_k(x) = \log \frac1k \sum_{i=1}^k w_i$ for every ``k`` in ``ks``, per example.

    The $w_i = p_\theta(x, z_i) / q(z_i \mid x)$, $z_i \sim q(z\mid x)$, are drawn **once**,
    $K = \max(ks)$ of them per example, and $\mathcal L_k$ uses the first $k$: each value has the distribution
    of :func:`vae_lesson.iwae_bound` with that $k$, the whole curve costs $K$ decoder passes per example instead
    of $\sum k$, and nested estimates make the curve smooth. Log weights are computed in chunks of at most
    ``max_rows`` decoded rows (bounded memory; chunks of a few thousand rows stay in the CPU cache and were
    measured a third faster than chunks of 32768) and kept, ``[K, batch]`` per batch of examples.

    The proposal $q$ is the encoder's $q_\phi(z\mid x)$, or, with ``mu`` and ``logvar`` (``[n, latent_dim]``
    each), the diagonal Gaussian $\mathcal N(\mu_n, \operatorname{diag} e^{\text{logvar}_n})$ for example $n$
    (e.g. the output of :func:`optimise_local_posterior`). Any proposal gives a stochastic lower bound,
    $\mathbb E[\mathcal L_k] \le \log p_\theta(x)$; a proposal closer to the posterior gives a tighter one.

    ``X``: ``[n, input_dim]`` in [0, 1]. Returns ``[len(ks), n]``, nats; average over ``dim=1`` for the curve.
    """
    check_vae(model)
    _check_x("X", X, model)
    ks = _check_ks(ks)
    _checks.generator("generator", generator)
    max_rows = _checks.integer("max_rows", max_rows, minimum=1)
    proposal = _check_proposal(model, X, mu, logvar)
    out = X.new_zeros(len(ks), X.shape[0])  # [len(ks), n]
    for b, log_w in _log_weight_batches(model, X, max(ks), proposal, generator, max_rows):
        for i, k in enumerate(ks):
            out[i, b:b + log_w.shape[1]] = torch.logsumexp(log_w[:k], dim=0) - math.log(k)
    return out


@torch.no_grad()
def importance_log_weights(model, X: torch.Tensor, k: int, generator: torch.Generator | None = None,
                           mu: torch.Tensor | None = None, logvar: torch.Tensor | None = None,
                           max_rows: int = 2**12) -> torch.Tensor:
    r"""All $k$ log importance weights $\log w_i = \log p_\theta(x\mid z_i) + \log p(z_i) - \log q(z_i\mid x)$.

    $z_i \sim q(z\mid x)$: the encoder's $q_\phi$, or $\mathcal N(\mu_n, \operatorname{diag} e^{\text{logvar}_n})$
    when ``mu`` and ``logvar`` ``[n, latent_dim]`` are given. The same draws as :func:`iwae_curve` with the same
    arguments and generator state, so ``torch.logsumexp(log_w[:j], 0) - log(j)`` is its $\mathcal L_j$. Use it
    for what the bound alone hides: the :func:`effective_sample_size` of the weights.

    ``X``: ``[n, input_dim]`` in [0, 1]. Returns ``[k, n]``, nats (memory $k \times n$ floats).
    """
    check_vae(model)
    _check_x("X", X, model)
    k = _checks.integer("k", k, minimum=1)
    _checks.generator("generator", generator)
    max_rows = _checks.integer("max_rows", max_rows, minimum=1)
    proposal = _check_proposal(model, X, mu, logvar)
    return torch.cat([log_w for _, log_w in _log_weight_batches(model, X, k, proposal, generator, max_rows)],
                     dim=1)  # [k, n]


def effective_sample_size(log_w: torch.Tensor) -> torch.Tensor:
    r"""Kish's effective sample size of importance weights, $\mathrm{ESS} = (\sum_i w_i)^2 / \sum_i w_i^2$.

    ``log_w``: ``[k, n]`` log weights, $k$ per example (e.g. from :func:`importance_log_weights`). Returns
    ``[n]``, between 1 (one weight dominates) and $k$ (all weights equal), computed in log space:
    $\exp(2\,\mathrm{logsumexp}(\log w) - \mathrm{logsumexp}(2\log w))$. A small ESS means the estimate of
    $\log p(x)$ rests on a few draws and is likely well below it: the proposal misses much of the posterior.
    """
    _checks.tensor("log_w", log_w, ndim=2)
    if log_w.shape[0] < 1:
        _checks.fail("log_w", "at least one weight per example, shape [k >= 1, n]", list(log_w.shape))
    return torch.exp(2 * torch.logsumexp(log_w, 0) - torch.logsumexp(2 * log_w, 0))  # [n]


def _draw_eps(mu: torch.Tensor, n_samples: int, generator) -> torch.Tensor:
    # Same draws as vae_lesson.elbo with the same generator state (shape [batch, d] when n_samples == 1).
    shape = mu.shape if n_samples == 1 else (n_samples, *mu.shape)
    device = generator.device if generator is not None else mu.device
    eps = torch.randn(shape, generator=generator, device=device, dtype=mu.dtype).to(mu.device)
    return eps.expand(1, *mu.shape) if n_samples == 1 else eps  # [S, batch, latent_dim]


def _check_eps(eps, mu: torch.Tensor) -> torch.Tensor:
    _checks.tensor("eps", eps, ndim=3)
    if eps.shape[1:] != mu.shape:
        _checks.fail("eps", f"shape [n_samples, {mu.shape[0]}, {mu.shape[1]}] (noise for each example)",
                     list(eps.shape))
    return eps


def elbo_with_q(model, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, n_samples: int = 1,
                generator: torch.Generator | None = None, eps: torch.Tensor | None = None) -> ELBOTerms:
    r"""The ELBO of ``x`` under **any** diagonal Gaussian $q = \mathcal N(\mu, \operatorname{diag} e^{\text{logvar}})$.

    $\mathcal L(x; q) = \frac1S\sum_{s=1}^S \log p_\theta(x \mid \mu + \sigma\odot\varepsilon_s)
    - \mathrm{KL}(q\,\|\,\mathcal N(0, I))$, the KL in closed form. With ``mu, logvar = model.encode(x)`` and the
    same generator state this is exactly :func:`vae_lesson.elbo`; with the output of
    :func:`optimise_local_posterior` it is the local ELBO. The formula is
    :func:`vae_lesson.core.bounds.elbo_from_q` (with ``model.decode``).

    ``x``: ``[batch, input_dim]``; ``mu``, ``logvar``: ``[batch, latent_dim]``; ``eps``: optional pre-drawn noise
    ``[n_samples, batch, latent_dim]`` (then ``n_samples`` and ``generator`` are not used). Returns
    :class:`vae_lesson.ELBOTerms` of ``[batch]`` tensors, nats. Differentiable in ``mu`` and ``logvar``.
    """
    check_vae(model)
    _check_x("x", x, model)
    _checks.tensor("mu", mu, ndim=2)
    _checks.tensor("logvar", logvar, ndim=2)
    _checks.same_shape("mu", mu, "logvar", logvar)
    if mu.shape[0] != x.shape[0]:
        _checks.fail("mu", f"one row per example of x, [{x.shape[0]}, latent_dim]", list(mu.shape))
    n_samples = _checks.integer("n_samples", n_samples, minimum=1)
    _checks.generator("generator", generator)
    eps = _draw_eps(mu, n_samples, generator) if eps is None else _check_eps(eps, mu)
    return elbo_from_q(model.decode, x, mu, logvar, eps=eps)


def optimise_local_posterior(model, x: torch.Tensor, num_steps: int = 200, lr: float = 1e-2, n_samples: int = 1,
                             generator: torch.Generator | None = None, eps: torch.Tensor | None = None,
                             mu: torch.Tensor | None = None,
                             logvar: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Fit one Gaussian $q^*_x = \mathcal N(\mu_x, \operatorname{diag} e^{\text{logvar}_x})$ for each x, decoder fixed.

    Starts at the encoder's output ``model.encode(x)`` (or at ``mu``, ``logvar`` ``[batch, latent_dim]`` when
    given, e.g. to continue an earlier run and see how much more it gains) and takes ``num_steps`` Adam steps
    (learning rate ``lr``) of gradient **ascent** on $\sum_n \mathcal L(x_n; q_{x_n})$ (:func:`elbo_with_q` with
    ``n_samples`` draws).
    The examples do not interact: the gradient for $(\mu_{x_n}, \text{logvar}_{x_n})$ is that of
    $\mathcal L(x_n; \cdot)$ alone, and Adam scales each coordinate separately. Only ``mu`` and ``logvar`` are
    updated; the model's parameters and their ``.grad`` are left untouched (amortization gap analysis,
    Cremer et al. 2018).

    * ``eps=None``: fresh noise from ``generator`` at every step (stochastic variational inference).
    * ``eps`` ``[n_samples, batch, latent_dim]``: the same noise at every step, so the objective is a
      deterministic function of ``(mu, logvar)`` (useful in tests).

    Returns ``(mu, logvar)``, each ``[batch, latent_dim]``, detached. Evaluate them with :func:`elbo_with_q`
    using *fresh* noise and many samples. Raises ``FloatingPointError`` if they overflow (lower ``lr``).
    """
    check_vae(model)
    _check_x("x", x, model)
    num_steps = _checks.integer("num_steps", num_steps, minimum=0)
    lr = _checks.number("lr", lr, positive=True)
    n_samples = _checks.integer("n_samples", n_samples, minimum=1)
    _checks.generator("generator", generator)
    start = _check_proposal(model, x, mu, logvar)
    with torch.no_grad():
        mu0, logvar0 = encode_gaussian(model, x) if start is None else start  # [batch, latent_dim] each
    if eps is not None:
        _check_eps(eps, mu0)
    mu = mu0.detach().clone().requires_grad_(True)
    logvar = logvar0.detach().clone().requires_grad_(True)
    optimizer = torch.optim.Adam([mu, logvar], lr=lr)
    for step in range(num_steps):
        noise = _draw_eps(mu, n_samples, generator) if eps is None else eps  # [S, batch, latent_dim]
        if not torch.isfinite(reparameterize(mu.detach(), logvar.detach(), eps=noise)).all():
            raise FloatingPointError(f"optimise_local_posterior: q's parameters overflowed after {step} steps "
                                     f"with lr={lr:g}; try lr={lr / 10:g}.")
        with _checks.data_checked_upstream():  # x and eps were checked up front, z just now
            loss = -elbo_from_q(model.decode, x, mu, logvar, eps=noise).elbo.sum()
        mu.grad, logvar.grad = torch.autograd.grad(loss, [mu, logvar])
        optimizer.step()
    return mu.detach(), logvar.detach()
