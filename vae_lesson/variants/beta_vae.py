r"""β-VAEs on the rate–distortion plane, latent traversals, and a widget that flips between trained models.

A β-VAE (Higgins et al. 2017) trains on
$\mathbb E_q[\log p_\theta(x\mid z)] - \beta\,\mathrm{KL}(q_\phi(z\mid x)\,\|\,p(z))$ (``fit(model, X, beta=...)``).
Averaged over the data, its two terms are the **rate** and the **distortion** (Alemi et al. 2018, *Fixing a
Broken ELBO*), both in nats per example:

$$R = \mathbb E_x\,\mathrm{KL}\big(q_\phi(z\mid x)\,\|\,p(z)\big), \qquad
D = -\mathbb E_x\,\mathbb E_{q_\phi(z\mid x)}\big[\log p_\theta(x\mid z)\big], \qquad -\text{ELBO} = R + D,$$

and the β-VAE loss is $D + \beta R$: β is the price of one nat of rate in nats of distortion. β = 1 is the ELBO.

* :func:`rate_distortion` -- the point $(R, D)$ of a trained model on a data set;
* :func:`rate_decomposition` -- $R = I(x; z) + \mathrm{KL}(q(z)\,\|\,p(z))$, the rate split into information about
  the image and the mismatch between the aggregate posterior and the prior (Hoffman & Johnson 2016);
* :func:`plot_rate_distortion` -- a sweep of β drawn on the plane (a pure function: returns the figure);
* :func:`latent_traversal` -- decodes of one code with one coordinate swept at a time;
* :func:`render_beta_decodes` and :func:`beta_switcher` -- the same fixed codes decoded by each β's model, as a
  figure and as an ipywidgets control that flips between the models (the builder returns the container and never
  calls ``display``).

Not here: training (:func:`vae_lesson.fit` with ``beta``), likelihood evaluation (:mod:`vae_lesson.core.bounds`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple

import ipywidgets as widgets
import matplotlib.pyplot as plt
import torch

from vae_lesson import _checks
from vae_lesson.core.bounds import check_vae, encode_gaussian
from vae_lesson.core.distributions import gaussian_kl, reparameterize
from vae_lesson.core.training import evaluate
from vae_lesson.views.latent_views import aggregate_log_density, decoded_pixels
from vae_lesson.views.plotting import errors_shown_in, figure_png, tile


class RateDistortion(NamedTuple):
    """One model's point on the plane, nats per example: ``rate`` $R$, ``distortion`` $D$, ``elbo`` $= -(R + D)$."""

    rate: float
    distortion: float
    elbo: float


def rate_distortion(model, X: torch.Tensor, n_samples: int = 1,
                    generator: torch.Generator | None = None) -> RateDistortion:
    r"""$R = \frac1n\sum_n \mathrm{KL}(q_\phi(z\mid x_n)\,\|\,p(z))$ (closed form) and
    $D = -\frac1n\sum_n \frac1S\sum_s \log p_\theta(x_n\mid z_{n,s})$, $z_{n,s}\sim q_\phi(z\mid x_n)$.

    ``X``: ``[n, input_dim]`` in [0, 1]; ``n_samples`` = $S$ draws per image for the distortion. Returns
    :class:`RateDistortion` of floats in nats per example (``elbo`` from :func:`vae_lesson.evaluate`).
    """
    terms = evaluate(model, X, n_samples=n_samples, generator=generator)
    return RateDistortion(terms["kl"], -terms["reconstruction"], terms["elbo"])


class RateDecomposition(NamedTuple):
    r"""$R = I + \mathrm{KL}_{\text{agg}}$, nats per example: ``rate`` in closed form, the rest by Monte Carlo.

    ``mutual_information`` $I(x; z)$, ``marginal_kl`` $\mathrm{KL}(q(z)\,\|\,p(z))$ and their sum ``rate_mc`` (a
    sampled estimate of ``rate``), each with its standard error (``*_se``).
    """

    rate: float
    mutual_information: float
    mutual_information_se: float
    marginal_kl: float
    marginal_kl_se: float
    rate_mc: float
    rate_mc_se: float


@torch.no_grad()
def rate_decomposition(mu: torch.Tensor, logvar: torch.Tensor, n_samples: int = 4,
                       generator: torch.Generator | None = None) -> RateDecomposition:
    r"""Split the rate of the encodings ``mu, logvar`` ``[N, latent_dim]`` of $N$ images (Hoffman & Johnson 2016).

    With the images drawn uniformly from the data set, $x_n$ with probability $1/N$, the **aggregate posterior** is
    $q(z) = \frac1N\sum_n q(z\mid x_n)$ and the rate splits exactly into two non-negative terms:

    $$R = \frac1N\sum_n \mathrm{KL}\big(q(z\mid x_n)\,\|\,p(z)\big)
    = \underbrace{\mathbb E_n\mathbb E_{q(z\mid x_n)}\Big[\log\frac{q(z\mid x_n)}{q(z)}\Big]}_{I(x;\,z)\,\le\,\log N}
    + \underbrace{\mathbb E_{q(z)}\Big[\log\frac{q(z)}{p(z)}\Big]}_{\mathrm{KL}(q(z)\,\|\,p(z))}.$$

    ``rate`` is the left side in closed form. The right side is estimated with ``n_samples`` draws
    $z \sim q(z\mid x_n)$ for **every** $n$ ($M = N \cdot$ ``n_samples`` draws of $q(z)$), $\log q(z)$ an exact
    log-sum-exp over the $N$ components (:func:`vae_lesson.views.latent_views.aggregate_log_density`, cost $M N d$).
    Standard errors are the sample standard deviation over the $M$ draws divided by $\sqrt M$ (treating the draws as
    independent; slightly conservative, since every component is sampled equally often). $I(x; z) \le \log N$: a code
    can say at most which of the $N$ images it came from.
    """
    _checks.tensor("mu", mu, ndim=2)
    _checks.tensor("logvar", logvar, ndim=2)
    _checks.same_shape("mu", mu, "logvar", logvar)
    if mu.shape[0] < 1:
        _checks.fail("mu", "at least one encoded image, shape [N >= 1, latent_dim]", list(mu.shape))
    n_samples = _checks.integer("n_samples", n_samples, minimum=1)
    _checks.generator("generator", generator)
    eps = torch.randn(n_samples, *mu.shape, generator=generator, dtype=mu.dtype)  # [S, N, d]
    z = reparameterize(mu, logvar, eps=eps)  # [S, N, d], z ~ q(z | x_n)
    log_2pi = math.log(2 * math.pi)
    log_q_given_x = -0.5 * (eps.pow(2) + logvar + log_2pi).sum(-1).reshape(-1)  # [M], log q(z | x_n)
    log_q = aggregate_log_density(z.reshape(-1, mu.shape[1]), mu, logvar)  # [M], log q(z)
    log_p = -0.5 * (z.pow(2) + log_2pi).sum(-1).reshape(-1)  # [M], log p(z)
    rate = gaussian_kl(mu, logvar).mean().item()  # closed form

    def mean_se(values):
        se = values.std().item() / math.sqrt(values.numel()) if values.numel() > 1 else math.inf
        return values.mean().item(), se

    info, kl, total = (mean_se(v) for v in (log_q_given_x - log_q, log_q - log_p, log_q_given_x - log_p))
    return RateDecomposition(rate, *info, *kl, *total)


def plot_rate_distortion(points: dict, zero_rate_distortion: float | None = None,
                         distortion_floor: float | None = None, title: str = "The rate–distortion plane"):
    r"""Draw ``points`` (``{beta: RateDistortion}``) with rate on x and distortion on y, nats per example.

    Each point is labelled with its β and crossed by a short segment of slope $-\beta$: the lines along which
    that model's loss $D + \beta R$ is constant. A dashed line of slope $-1$ through the β = 1 point (when present)
    marks a constant ELBO; points above it have a worse ELBO. Optional references: ``zero_rate_distortion`` (the
    best distortion with $R = 0$, marked on the D axis) and ``distortion_floor`` (a horizontal line no model can
    cross). Returns the figure.
    """
    if not points:
        _checks.fail("points", "a non-empty dict {beta: RateDistortion}", "an empty dict")
    betas = sorted(points)
    rates = [points[b].rate for b in betas]
    distortions = [points[b].distortion for b in betas]
    fig, ax = plt.subplots(figsize=(10, 5))
    span = max(rates) - min(0.0, min(rates))
    references = [d for d in (zero_rate_distortion, distortion_floor) if d is not None]
    span_d = max(distortions + references) - min(distortions + references) or 1.0
    for beta, r, d in zip(betas, rates, distortions):
        dr = 0.05 * span / (1 + (beta * span / span_d) ** 2) ** 0.5  # the same length on screen for every slope
        ax.plot([r - dr, r + dr], [d + beta * dr, d - beta * dr], color="0.55", lw=1, zorder=1)
    ax.plot(rates, distortions, "o-", color="C0", ms=6, label="trained β-VAEs", zorder=3)
    for beta, r, d in zip(betas, rates, distortions):
        ax.annotate(f"β = {beta:g}", (r, d), textcoords="offset points", xytext=(8, 6), fontsize=9)
    if 1 in points or 1.0 in points:
        one = points[1.0]
        grid = torch.linspace(0, max(rates) * 1.05, 2).tolist()
        ax.plot(grid, [-one.elbo - r for r in grid], "--", color="C3",
                label=f"constant ELBO through β = 1: R + D = {-one.elbo:.1f} nats")
    if zero_rate_distortion is not None:
        ax.plot([0], [zero_rate_distortion], "s", color="C2", ms=8,
                label=f"R = 0: z ignored, best fixed image ({zero_rate_distortion:.1f} nats)")
    if distortion_floor is not None:
        ax.axhline(distortion_floor, color="0.3", lw=1, ls=":",
                   label=f"entropy floor of the grey pixels ({distortion_floor:.1f} nats)")
    ax.plot([], [], color="0.55", lw=1, label="slope −β: lines of constant β-loss D + βR")
    ax.set_xlabel("rate R = E_x KL(q(z|x) ‖ p(z))   [nats per image]")
    ax.set_ylabel("distortion D = −E_x E_q log p(x|z)   [nats per image]")
    ax.set_title(title)
    ax.set_xlim(left=-0.03 * span)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0))  # outside the axes: covers no data
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


@torch.no_grad()
@torch.no_grad()
def latent_traversal(model, z: torch.Tensor, dims, values) -> torch.Tensor:
    r"""Decode ``z [latent_dim]`` with coordinate $z_j$ replaced by each of ``values``, for each ``j`` in ``dims``.

    Returns ``[len(dims) * len(values), input_dim]`` pixel probabilities, row by row: one row per dimension,
    one column per value (show with ``ncols=len(values)``).
    """
    _checks.tensor("z", z, ndim=1)
    if z.shape[0] != model.latent_dim:
        _checks.fail("z", f"shape [{model.latent_dim}] (latent_dim)", list(z.shape))
    dims = [_checks.integer(f"dims[{i}]", j, minimum=0) for i, j in enumerate(dims)]
    if any(j >= model.latent_dim for j in dims):
        _checks.fail("dims", f"latent indices below {model.latent_dim}", dims)
    values = torch.as_tensor(values, dtype=z.dtype)  # [m]
    codes = z.repeat(len(dims), len(values), 1)  # [len(dims), m, latent_dim]
    for row, j in enumerate(dims):
        codes[row, :, j] = values
    return decoded_pixels(model, codes.reshape(-1, z.shape[0]))  # [len(dims) * m, D]


def _check_models(models: dict) -> None:
    if not isinstance(models, dict) or not models:
        _checks.fail("models", "a non-empty dict {beta: trained VAE}", type(models).__name__, TypeError)
    for model in models.values():
        check_vae(model)


def render_beta_decodes(models: dict, beta: float, z: torch.Tensor, X: torch.Tensor | None = None,
                        ncols: int = 8):
    r"""The figure the β-switcher shows: ``z [n, latent_dim]`` decoded by ``models[beta]``.

    With ``X [m, input_dim]`` a second panel shows that model's reconstructions ``sigmoid(decode(mu(x)))``.
    Returns the figure; the pixels drawn are :func:`beta_decodes` ``(models, beta, z, X)``.
    """
    samples, reconstructions = beta_decodes(models, beta, z, X)
    panels = [(f"β = {beta:g}: decodes of the same {len(z)} codes z ~ N(0, I)", samples)]
    if X is not None:
        panels = [(f"β = {beta:g}: digits (top) and their reconstructions (bottom)",
                   torch.cat([X, reconstructions])), *panels]
    heights = [-(-len(images) // ncols) for _, images in panels]
    fig, axes = plt.subplots(len(panels), 1, figsize=(0.75 * ncols, 0.75 * sum(heights) + 0.6 * len(panels)),
                             gridspec_kw={"height_ratios": heights}, squeeze=False)
    for ax, (name, images) in zip(axes.flat, panels):
        ax.imshow(tile(images, ncols), cmap="gray", vmin=0, vmax=1)
        ax.set_title(name, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig


def beta_decodes(models: dict, beta: float, z: torch.Tensor, X: torch.Tensor | None = None):
    """``(samples [n, D], reconstructions [m, D] or None)``: ``z`` and (optionally) ``X`` through ``models[beta]``."""
    _check_models(models)
    if beta not in models:
        _checks.fail("beta", "one of the trained betas " + ", ".join(f"{b:g}" for b in models), repr(beta))
    model = models[beta]
    samples = decoded_pixels(model, z)  # [n, D]
    if X is None:
        return samples, None
    with torch.no_grad():
        was_training = model.training
        mu, _ = encode_gaussian(model.eval(), X)  # [m, latent_dim]
        model.train(was_training)
    return samples, decoded_pixels(model, mu)  # [m, D]


@dataclass
class BetaSwitcher:
    """:func:`beta_switcher`'s handles: ``container`` to display, ``control`` to set, what is shown now."""

    container: widgets.VBox
    control: widgets.ToggleButtons  # its value is the beta shown
    image: widgets.Image  # the PNG of render_beta_decodes
    output: widgets.Output  # errors raised in the callback appear here
    z: torch.Tensor  # [n, latent_dim], the fixed codes
    X: torch.Tensor | None  # [m, D], the fixed digits (or None)
    samples: torch.Tensor = field(default=None, init=False)  # [n, D], decodes shown now
    reconstructions: torch.Tensor | None = field(default=None, init=False)  # [m, D]


def beta_switcher(models: dict, z: torch.Tensor, X: torch.Tensor | None = None, ncols: int = 8,
                  beta: float | None = None) -> BetaSwitcher:
    """Toggle buttons over the keys of ``models`` (``{beta: trained VAE}``) and the picture of
    :func:`render_beta_decodes` for the chosen one. ``z`` (and ``X``) stay fixed, so only the model changes.

    Returns a :class:`BetaSwitcher`; display its ``container``. The builder never calls ``display``.
    """
    _check_models(models)
    _checks.tensor("z", z, ndim=2)
    betas = sorted(models)
    beta = betas[len(betas) // 2] if beta is None else beta
    control = widgets.ToggleButtons(options=[(f"β = {b:g}", b) for b in betas], value=beta,
                                    description="model:", style={"button_width": "70px"})
    image, output = widgets.Image(format="png"), widgets.Output()
    container = widgets.VBox([widgets.HTML("<b>The same codes through each β-VAE</b>"), control, image, output])
    switcher = BetaSwitcher(container, control, image, output, z, X)

    def draw():
        switcher.samples, switcher.reconstructions = beta_decodes(models, control.value, z, X)
        image.value = figure_png(render_beta_decodes(models, control.value, z, X, ncols))

    update = errors_shown_in(output, draw)
    control.observe(update, names="value")
    update()
    return switcher
