r"""The four small formulas every VAE is made of, in nats, per example.

Conventions (the whole package follows them):

* a Gaussian is given by its mean ``mu`` and its **log-variance** ``logvar`` $=\log\sigma^2$
  (unconstrained, so a network can output it directly);
* every log-density and KL is **summed over the data/latent dimensions** and returned per example,
  shape ``[batch]``, in **nats** (natural log). Divide by ``D * log(2)`` for bits per dimension.

One checked implementation of each formula: every model, bound, variant and notebook calls these. Their checks
of kind, dtype and shape cost nothing; their value scans (finite, in range) are skipped inside
:func:`vae_lesson.fit`'s steps, whose data were checked once up front (see ``vae_lesson._checks``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from vae_lesson import _checks

LOG_2PI = math.log(2 * math.pi)


def _broadcastable(a: torch.Size, b: torch.Size) -> bool:
    """Whether two shapes broadcast (each trailing pair equal or one of them 1): the rule of
    ``torch.broadcast_shapes``, which costs about 0.2 ms a call; this check costs about 1 microsecond."""
    return all(m == n or m == 1 or n == 1 for m, n in zip(reversed(a), reversed(b)))


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None,
                   eps: torch.Tensor | None = None) -> torch.Tensor:
    r"""Draw $z \sim \mathcal N(\mu, \operatorname{diag}\sigma^2)$ as
    $z = \mu + \sigma \odot \varepsilon$, $\varepsilon \sim \mathcal N(0, I)$.

    The randomness sits in $\varepsilon$, which does not depend on the parameters, so gradients flow to
    ``mu`` and ``logvar``. Shapes: ``mu``, ``logvar`` ``[..., latent_dim]`` (equal); returns the same shape.
    ``eps``: noise drawn beforehand (then ``generator`` must be None), any shape that broadcasts against ``mu``
    (e.g. ``[S, batch, latent_dim]`` for ``S`` draws per example); the result has the broadcast shape.
    """
    _checks.tensor("mu", mu)
    _checks.tensor("logvar", logvar)
    _checks.same_shape("mu", mu, "logvar", logvar)
    _checks.generator("generator", generator)
    if eps is None:
        device = generator.device if generator is not None else mu.device
        eps = torch.randn(mu.shape, generator=generator, device=device, dtype=mu.dtype).to(mu.device)
    else:
        if generator is not None:
            _checks.fail("generator", "None when eps is given (the noise is already drawn)", "a torch.Generator")
        _checks.tensor("eps", eps)
        if not _broadcastable(eps.shape, mu.shape):
            _checks.fail("eps", f"a shape that broadcasts against mu's {list(mu.shape)}", list(eps.shape))
    return mu + torch.exp(0.5 * logvar) * eps


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    r"""$\mathrm{KL}\big(\mathcal N(\mu, \operatorname{diag}\sigma^2)\,\|\,\mathcal N(0, I)\big)
    = \tfrac12 \sum_j \big(\mu_j^2 + \sigma_j^2 - 1 - \log\sigma_j^2\big)$.

    ``mu``, ``logvar``: ``[batch, latent_dim]``. Returns ``[batch]``, nats, summed over latent dimensions.
    Always >= 0, and 0 exactly when ``mu = 0`` and ``logvar = 0``.
    """
    _checks.tensor("mu", mu, ndim=2)
    _checks.tensor("logvar", logvar, ndim=2)
    _checks.same_shape("mu", mu, "logvar", logvar)
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(-1)


def bernoulli_log_likelihood(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    r"""$\log p(x \mid \text{logits}) = \sum_d \big[x_d \log s_d + (1 - x_d)\log(1 - s_d)\big]$,
    $s = \operatorname{sigmoid}(\text{logits})$.

    Computed from the logits (``x * logits - softplus(logits)``), so large logits stay exact.
    ``x``: ``[batch, D]`` with pixels in [0, 1] (grey values are allowed: the formula is then the usual
    cross-entropy). ``logits``: ``[batch, D]``, or ``[k, batch, D]`` for ``k`` decodes of the same ``x``.
    Returns ``[batch]`` (or ``[k, batch]``), nats, summed over the ``D`` pixels.
    """
    _checks.tensor("x", x, ndim=2, low=0.0, high=1.0)
    _checks.tensor("logits", logits, ndim=(2, 3))
    if logits.shape[-2:] != x.shape:
        _checks.fail("logits", f"shape [batch, D] or [k, batch, D] ending in {list(x.shape)} (the shape of x)",
                     list(logits.shape))
    return -F.binary_cross_entropy_with_logits(logits, x.expand_as(logits), reduction="none").sum(-1)


def _squared_distance(x, mean, logvar):
    """``(x - mean)^2 * exp(-logvar)``, finite wherever the exact value is.

    The plain product is used wherever it is finite (so ordinary inputs give the same bits as always). Where it
    is not -- ``0 * inf`` when an over-confident ``logvar`` (say -90) overflows ``exp(-logvar)`` at ``x == mean``,
    or an overflow of the product itself -- the term is recomputed as ``exp(2 log|x - mean| - logvar)`` in
    float64 (0 where ``x == mean``), which is finite unless the true value is beyond the dtype's range.
    """
    term = (x - mean).pow(2) * torch.exp(-logvar)
    if bool(torch.isfinite(term).all()):
        return term
    wide = torch.promote_types(term.dtype, torch.float64)
    x64, mean64, logvar64 = x.to(wide), mean.to(wide), logvar.to(wide)
    half = (x64 * 0.5 - mean64 * 0.5).abs()  # |x - mean| / 2, which cannot overflow
    log_distance = torch.log(half) + math.log(2.0)
    exact = torch.exp(2.0 * log_distance - logvar64)
    exact = torch.where(half == 0, torch.zeros_like(exact), exact).to(term.dtype)
    return torch.where(torch.isfinite(term), term, exact)


def gaussian_log_likelihood(x: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor | float) -> torch.Tensor:
    r"""$\log \mathcal N(x; \text{mean}, \operatorname{diag} e^{\text{logvar}})
    = -\tfrac12 \sum_d \big[\log 2\pi + \text{logvar}_d + (x_d - \text{mean}_d)^2 e^{-\text{logvar}_d}\big]$.

    ``x``: ``[..., D]``; ``mean`` and ``logvar`` broadcast against it (``logvar`` may be a number, e.g. a
    fixed observation noise). Returns the broadcast shape of the three without its last axis (``[batch]`` for
    ``[batch, D]`` input; ``[k, batch]`` when ``mean`` is ``[k, batch, D]``), nats, summed over ``D``.

    Stable for over-confident variances: ``gaussian_log_likelihood(x, x, logvar=-90.)`` is the finite
    ``-0.5 * D * (log 2pi - 90)``, not ``0 * inf = NaN`` (see :func:`_squared_distance`). Inputs of mixed float
    dtypes compute in the wider one.
    """
    _checks.tensor("x", x, ndim=tuple(range(1, 8)))
    _checks.tensor("mean", mean)
    if not isinstance(logvar, torch.Tensor):
        logvar = torch.tensor(_checks.number("logvar", logvar), dtype=x.dtype, device=x.device)
    _checks.tensor("logvar", logvar)
    for name, t in (("mean", mean), ("logvar", logvar)):
        if not _broadcastable(t.shape, x.shape):
            _checks.fail(name, f"a shape that broadcasts against x's {list(x.shape)}", list(t.shape))
    return -0.5 * (LOG_2PI + logvar + _squared_distance(x, mean, logvar)).sum(-1)
