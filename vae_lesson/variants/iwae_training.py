r"""Training with the importance-weighted bound (IWAE, Burda, Grosse & Salakhutdinov 2016) instead of the ELBO.

For one image $x$ and $k$ draws $z_1, \dots, z_k \sim q_\phi(z\mid x)$, the log importance weights are
$\log w_i = \log p_\theta(x\mid z_i) + \log p(z_i) - \log q_\phi(z_i\mid x)$, and

$$\mathcal L_k(x) = \log \frac1k \sum_{i=1}^k w_i, \qquad
\mathbb E[\mathcal L_1] = \text{ELBO} \le \mathbb E[\mathcal L_k] \le \mathbb E[\mathcal L_{k+1}]
\le \log p_\theta(x).$$

:func:`iwae_objective` turns $\mathcal L_k$ into an objective for :func:`vae_lesson.fit`. Its gradient,

$$\nabla \mathcal L_k = \sum_{i=1}^k \tilde w_i\, \nabla \log w_i, \qquad \tilde w_i = \frac{w_i}{\sum_l w_l},$$

is a weighted average of $k$ one-sample ELBO gradients, weighted by how well each $z_i$ explains $x$: the
encoder is no longer asked to make $q_\phi(z\mid x)$ close to the posterior in $\mathrm{KL}(q\,\|\,p)$, only to be a
good *proposal* for importance sampling, which tolerates (and rewards) a broader $q$. :func:`posterior_spread`
and the effective sample size (:func:`vae_lesson.analysis.evaluation.effective_sample_size`) measure that
difference on a trained encoder, and :func:`gradient_snr` the price
(Rainforth et al. 2018): as $k$ grows the decoder's gradient gets cleaner and the encoder's noisier relative to its
size.

Not here: evaluation of a trained model with a large $k$ (:func:`vae_lesson.iwae_bound`, and
``vae_lesson.analysis.evaluation``), and active units (``vae_lesson.analysis.collapse.active_units``). All values are
nats per example, summed over pixels, for the package's Bernoulli decoder.
"""

from __future__ import annotations

import math

import torch

from vae_lesson import _checks
from vae_lesson.core.bounds import Objective, check_vae, encode_gaussian, iwae_log_weights


def iwae_objective(k: int):
    r"""A training objective for :func:`vae_lesson.fit`: the $k$-sample bound $\mathcal L_k(x)$, per example.

    Returns ``objective(model, x, generator=None) ->`` :class:`~vae_lesson.core.bounds.Objective` with ``x``
    ``[batch, input_dim]``: ``terms = {"iwae_bound": L_k}``, $\mathcal L_k(x) = \log\frac1k\sum_i w_i$ ``[batch]``
    in nats (log-sum-exp over ``[k, batch]`` log weights from :func:`vae_lesson.iwae_log_weights`), differentiable,
    and ``loss = -L_k``. So ``fit`` minimises $-\frac1B\sum_n\mathcal L_k(x_n)$ and its history has the series
    ``iwae_bound`` (and ``val_iwae_bound``), nothing named ``kl`` or ``elbo``.

    There is no KL term: $\mathcal L_k$ has no such split for $k > 1$ (the prior and the encoder density sit
    inside the log-sum-exp), so ``fit(..., beta=...)`` other than 1 or ``kl_warmup_epochs`` is an error. Measure the
    ELBO and its KL afterwards with ``evaluate(model, X)``.

    ``k = 1`` is the one-sample ELBO with the KL estimated by Monte Carlo,
    $\log p_\theta(x\mid z) + \log p(z) - \log q_\phi(z\mid x)$: same expectation (and gradient in expectation)
    as :func:`vae_lesson.elbo`, a bit more variance. The cost is $k$ decoder passes per image.
    """
    k = _checks.integer("k", k, minimum=1)

    def objective(model, x: torch.Tensor, generator: torch.Generator | None = None) -> Objective:
        _checks.generator("generator", generator)
        log_w = iwae_log_weights(model, x, k, generator)  # [k, batch]
        bound = torch.logsumexp(log_w, dim=0) - math.log(k)  # [batch]
        return Objective(loss=-bound, terms={"iwae_bound": bound})

    objective.k = k
    objective.__name__ = objective.__qualname__ = f"iwae_objective({k})"
    return objective


@torch.no_grad()
def posterior_spread(model, X: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    r"""The encoder's standard deviations $\sigma_j(x) = e^{\text{logvar}_j/2}$, geometric mean over ``X``.

    ``X``: ``[n, input_dim]`` in [0, 1]. Returns ``[latent_dim]``: $\exp\big(\frac1n\sum_n \tfrac12\,
    \text{logvar}_j(x_n)\big)$, in units of the prior's standard deviation (1). Values near 1 mark dimensions
    where $q_\phi(z_j\mid x)$ is as wide as the prior (unused); small values, dimensions that pin $z_j$ down.
    """
    check_vae(model)
    _checks.tensor("X", X, ndim=2, low=0.0, high=1.0)
    if X.shape[0] < 1:
        _checks.fail("X", "at least one example", "an empty tensor")
    batch_size = _checks.integer("batch_size", batch_size, minimum=1)
    was_training = model.training
    model.eval()
    half_logvar = torch.cat([0.5 * encode_gaussian(model, X[s:s + batch_size])[1]
                             for s in range(0, X.shape[0], batch_size)])  # [n, latent_dim]
    model.train(was_training)
    return half_logvar.mean(0).exp()  # [latent_dim]


def gradient_snr(model, x: torch.Tensor, k: int, n_repeats: int = 100,
                 generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    r"""Signal-to-noise ratio of the IWAE-$k$ gradient, per parameter, for the encoder and for the decoder.

    Draws ``n_repeats`` independent estimates $g_r$ of $\nabla\frac1B\sum_n\mathcal L_k(x_n)$ on the fixed batch
    ``x [B, input_dim]`` (reparameterized, as in training) and returns, for each of ``"encoder"`` and ``"decoder"``,
    a ``[P]`` tensor (float64, dimensionless) of
    $$\mathrm{SNR}_p = \frac{\big|\overline{g}_p\big|}{\widehat{\mathrm{sd}}(g_p)}, \qquad
    \overline{g}_p = \frac1R\sum_r g_{r,p}, \quad \widehat{\mathrm{sd}} \text{ with divisor } R - 1$$
    (Rainforth et al. 2018, who prove that it grows like $\sqrt k$ for the decoder and shrinks like $1/\sqrt k$ for
    the encoder). ``NaN`` where the estimate never varies (e.g. weights of an always-blank pixel, gradient always
    0). The model's parameters are not changed; its ``.grad`` fields are left untouched.
    """
    check_vae(model)
    for part in ("encoder", "decoder"):
        if not isinstance(getattr(model, part, None), torch.nn.Module):
            _checks.fail("model", f"a VAE with an .{part} module", type(model).__name__, TypeError)
    _checks.tensor("x", x, ndim=2, low=0.0, high=1.0)
    if x.shape[0] < 1:
        _checks.fail("x", "at least one example", "an empty tensor")
    k = _checks.integer("k", k, minimum=1)
    n_repeats = _checks.integer("n_repeats", n_repeats, minimum=2)
    _checks.generator("generator", generator)
    objective = iwae_objective(k)
    params = {part: list(getattr(model, part).parameters()) for part in ("encoder", "decoder")}
    every = params["encoder"] + params["decoder"]
    sizes = [sum(p.numel() for p in params[part]) for part in ("encoder", "decoder")]
    rows = []
    for _ in range(n_repeats):
        bound = objective(model, x, generator=generator).terms["iwae_bound"].mean()  # scalar, nats
        grads = torch.autograd.grad(bound, every, allow_unused=True)
        rows.append(torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1).double()
                               for p, g in zip(every, grads)]))  # [P_encoder + P_decoder]
    samples = torch.stack(rows)  # [n_repeats, P]
    sd = samples.std(0, unbiased=True)
    snr = samples.mean(0).abs() / sd.where(sd > 0, torch.full_like(sd, float("nan")))  # [P]
    encoder, decoder = snr.split(sizes)
    return {"encoder": encoder, "decoder": decoder}
