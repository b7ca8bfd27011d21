r"""Views of a VAE's latent space: the few computations they need, and pure functions that draw them.

Computations (tensors in, tensors out):

* :func:`latent_activity` -- Burda et al.'s activity of each latent dimension,
  $A_j = \operatorname{Var}_x\big(\mathbb E_{q_\phi(z\mid x)}[z_j]\big) = \operatorname{Var}_x(\mu_j(x))$:
  a dimension the encoder never moves carries no information about $x$.
* :func:`lerp` and :func:`slerp` -- paths between two codes $z_a, z_b$; the spherical one,
  $\operatorname{slerp}(t) = \frac{\sin((1-t)\Omega)}{\sin\Omega} z_a + \frac{\sin(t\Omega)}{\sin\Omega} z_b$ with
  $\cos\Omega = \hat z_a\cdot\hat z_b$, turns at a constant rate instead of cutting through the middle of the ball.
* :func:`aggregate_log_density` -- $\log q(z)$ of the aggregate posterior
  $q(z) = \frac1N\sum_n q_\phi(z\mid x_n)$, in nats.
* :func:`prior_norm_cdf` and :func:`prior_norm_quantile` -- where a norm $\lVert z\rVert$ falls among the
  prior's: $\lVert z\rVert^2 \sim \chi^2_d$ under $\mathcal N(0, I_d)$.
* :func:`center_like_mnist` -- a hand-drawn digit scaled and centred the way MNIST's digits were.

Figures (``render_*``, among them :func:`render_manifold`, the decoded grid of a 2-D model): each takes data,
returns a matplotlib ``Figure`` and never displays it, so notebooks,
the widgets of :mod:`vae_lesson.views.widgets` and the tests share one function per picture. Not here: training,
and anything that waits for a user (that is :mod:`vae_lesson.views.widgets`).
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.colors import PowerNorm
from matplotlib.patches import Circle, Ellipse

from vae_lesson import _checks
from vae_lesson.views.plotting import image_side, plot_latent_scatter, tile

HOLE_RATIO = 0.1  # z is in a "hole" of q(z) where q(z) < HOLE_RATIO * p(z)


def latent_activity(mu: torch.Tensor) -> torch.Tensor:
    r"""Activity $A_j = \operatorname{Var}_n(\mu_{n,j})$ of each dimension over a data set: ``mu [n, d]`` -> ``[d]``.

    The population variance (divide by $n$) of the posterior means; Burda et al. (2016) call a unit active
    when $A_j > 10^{-2}$.
    """
    _checks.tensor("mu", mu, ndim=2)
    if mu.shape[0] < 2:
        _checks.fail("mu", "at least two rows (a variance over data points)", list(mu.shape))
    return mu.var(dim=0, correction=0)  # [d]


def _path_args(z_a, z_b, t) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    _checks.tensor("z_a", z_a, ndim=1)
    _checks.tensor("z_b", z_b, ndim=1)
    _checks.same_shape("z_a", z_a, "z_b", z_b)
    if not isinstance(t, torch.Tensor):
        t = torch.tensor(_checks.number("t", t), dtype=z_a.dtype)
    _checks.tensor("t", t, ndim=(0, 1))
    return z_a, z_b, t.to(z_a.dtype)[..., None]  # [k, 1], or [1] for a single t


def lerp(z_a: torch.Tensor, z_b: torch.Tensor, t) -> torch.Tensor:
    r"""The straight line $(1-t)\,z_a + t\,z_b$: ``z_a, z_b [d]``, ``t`` a float or ``[k]`` -> ``[d]`` or ``[k, d]``."""
    z_a, z_b, t = _path_args(z_a, z_b, t)
    return (1 - t) * z_a + t * z_b  # [k, d] (or [d])


def slerp(z_a: torch.Tensor, z_b: torch.Tensor, t) -> torch.Tensor:
    r"""Spherical interpolation: ``z_a, z_b [d]``, ``t`` a float or ``[k]`` -> ``[d]`` or ``[k, d]``.

    $\frac{\sin((1-t)\Omega)}{\sin\Omega} z_a + \frac{\sin(t\Omega)}{\sin\Omega} z_b$, with $\Omega$ the angle
    between $z_a$ and $z_b$. Exact at $t = 0, 1$; when $\lVert z_a\rVert = \lVert z_b\rVert$ the norm stays
    constant and the angle to $z_a$ grows linearly, $t\,\Omega$. Falls back to :func:`lerp` when the two are
    (anti)parallel or one is zero (the great circle is then not unique).
    """
    z_a, z_b, t = _path_args(z_a, z_b, t)
    norms = z_a.norm() * z_b.norm()
    cos_omega = (z_a @ z_b / norms).clamp(-1.0, 1.0) if norms > 0 else z_a.new_tensor(1.0)
    omega = torch.arccos(cos_omega)
    if torch.sin(omega) < 1e-6:
        return (1 - t) * z_a + t * z_b
    return (torch.sin((1 - t) * omega) * z_a + torch.sin(t * omega) * z_b) / torch.sin(omega)  # [k, d] (or [d])


def aggregate_log_density(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    r"""$\log q(z) = \log \frac1N \sum_{n=1}^N \mathcal N(z; \mu_n, \operatorname{diag} e^{\text{logvar}_n})$, nats.

    ``z [m, d]``; ``mu, logvar [N, d]`` (the encodings of a data set) -> ``[m]``. Log-sum-exp, in chunks of z.
    """
    _checks.tensor("z", z, ndim=2)
    _checks.tensor("mu", mu, ndim=2)
    _checks.tensor("logvar", logvar, ndim=2)
    _checks.same_shape("mu", mu, "logvar", logvar)
    if z.shape[1] != mu.shape[1]:
        _checks.fail("z", f"shape [m, {mu.shape[1]}] (the width of mu)", list(z.shape))
    out = []
    for start in range(0, z.shape[0], chunk):
        diff = z[start:start + chunk, None, :] - mu  # [chunk, N, d]
        log_n = -0.5 * (diff.pow(2) / logvar.exp() + logvar + math.log(2 * math.pi)).sum(-1)  # [chunk, N]
        out.append(torch.logsumexp(log_n, dim=1) - math.log(mu.shape[0]))
    return torch.cat(out)


def prior_norm_cdf(norm, latent_dim: int) -> torch.Tensor:
    r"""$P(\lVert z\rVert \le r)$ for $z \sim \mathcal N(0, I_d)$: the $\chi^2_d$ CDF at $r^2$, $P(d/2,\, r^2/2)$.

    ``norm``: $r \ge 0$, a float or a tensor of any shape; ``latent_dim``: $d$. Returns a float64 tensor of the
    same shape (a 0-d tensor for a float), the regularized lower incomplete gamma function
    (``torch.special.gammainc``). Multiply by 100 for the percentile of $r$ among the prior's norms.
    """
    latent_dim = _checks.integer("latent_dim", latent_dim, minimum=1)
    if not isinstance(norm, torch.Tensor):
        norm = torch.tensor(_checks.number("norm", norm), dtype=torch.float64)
    _checks.tensor("norm", norm)
    if bool((norm < 0).any()):
        _checks.fail("norm", "values >= 0 (a norm)", f"min {float(norm.min()):.4g}")
    half_d = torch.tensor(latent_dim / 2, dtype=torch.float64)
    return torch.special.gammainc(half_d, norm.double().pow(2) / 2)


def prior_norm_quantile(p: float, latent_dim: int) -> float:
    r"""The norm $r$ with $P(\lVert z\rVert \le r) = p$ under $\mathcal N(0, I_d)$ (inverts :func:`prior_norm_cdf`).

    ``p`` in $(0, 1)$; bisection to about $10^{-12}$. Example: the central 90 % of the prior's norms in
    $d = 16$ lie between ``prior_norm_quantile(0.05, 16)`` and ``prior_norm_quantile(0.95, 16)``.
    """
    p = _checks.number("p", p)
    if not 0 < p < 1:
        _checks.fail("p", "a probability strictly between 0 and 1", p)
    latent_dim = _checks.integer("latent_dim", latent_dim, minimum=1)
    low, high = 0.0, math.sqrt(latent_dim) + 20.0  # the CDF is ~1 at sqrt(d) + 20 for every d
    for _ in range(100):
        middle = 0.5 * (low + high)
        low, high = (middle, high) if float(prior_norm_cdf(middle, latent_dim)) < p else (low, middle)
    return 0.5 * (low + high)


def center_like_mnist(x: torch.Tensor, box: int | None = None) -> torch.Tensor:
    """A drawn digit ``x [D]`` (a flattened square in [0, 1]) prepared the way MNIST's digits were (LeCun et al.):
    its bounding box scaled to fit a ``box x box`` square (default: 20 for 28 x 28 images, the same share of other
    sides; keeping the aspect ratio, anti-aliased), then placed so that its centre of mass sits at the centre of the
    image. An empty image comes back unchanged.

    Why: the encoder only ever saw digits prepared so; a digit drawn small in a corner is, to it, a strange image.
    """
    _checks.tensor("x", x, ndim=1, low=0.0, high=1.0)
    side = image_side(x.numel())
    box = max(1, round(side * 20 / 28)) if box is None else _checks.integer("box", box, minimum=1)
    if box > side:
        _checks.fail("box", f"at most the image side ({side})", box)
    image = x.detach().float().reshape(side, side)
    rows, cols = torch.nonzero(image.amax(dim=1) > 0.05), torch.nonzero(image.amax(dim=0) > 0.05)
    if len(rows) == 0:
        return x.detach().clone()
    crop = image[rows.min():rows.max() + 1, cols.min():cols.max() + 1]  # [h, w], the bounding box
    scale = box / max(crop.shape)
    height, width = (max(1, round(length * scale)) for length in crop.shape)
    small = torch.nn.functional.interpolate(crop[None, None], size=(height, width), mode="bilinear",
                                            antialias=True, align_corners=False)[0, 0].clamp(0, 1)  # [height, width]
    mass = small.sum()
    centre_row = (small.sum(dim=1) * torch.arange(height)).sum() / mass
    centre_col = (small.sum(dim=0) * torch.arange(width)).sum() / mass
    top = min(max(round((side - 1) / 2 - float(centre_row)), 0), side - height)
    left = min(max(round((side - 1) / 2 - float(centre_col)), 0), side - width)
    out = torch.zeros(side, side)
    out[top:top + height, left:left + width] = small
    return out.reshape(-1).to(x.dtype)  # [D]


@torch.no_grad()
def decoded_pixels(model, z: torch.Tensor) -> torch.Tensor:
    """Pixel probabilities ``sigmoid(decode(z))``: ``z [batch, latent_dim]`` (or ``[latent_dim]``) -> ``[batch, D]``."""
    _checks.tensor("z", z, ndim=(1, 2))
    return torch.sigmoid(model.decode(z.reshape(-1, z.shape[-1])))  # [batch, D]


def _show(ax, pixels: torch.Tensor, title: str = "") -> None:
    side = image_side(pixels.shape[-1])
    ax.imshow(pixels.detach().reshape(side, side).numpy(), cmap="gray", vmin=0, vmax=1)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def render_decoded(model, z: torch.Tensor, title: str = "decoded image sigmoid(decode(z))"):
    """One decoded image at ``z [latent_dim]`` (or ``[1, latent_dim]``), as a small figure."""
    pixels = decoded_pixels(model, z)  # [1, D]
    if pixels.shape[0] != 1:
        _checks.fail("z", "a single latent vector, [latent_dim] or [1, latent_dim]", list(z.shape))
    fig, ax = plt.subplots(figsize=(3, 3.2))
    _show(ax, pixels[0], title)
    return fig


def _point(name: str, point, width: int = 2) -> torch.Tensor:
    point = torch.as_tensor(point, dtype=torch.float32).reshape(-1)
    if point.numel() != width:
        _checks.fail(name, f"{width} coordinates", list(point.shape))
    return _checks.tensor(name, point)


def render_latent_plane(codes: torch.Tensor, labels, point=None, decoded: torch.Tensor | None = None,
                        limit: float | None = None, title: str = "The test set in the latent plane",
                        posterior=None):
    """Codes ``[n, 2]`` scattered by label, a black cross at ``point`` (2 numbers) and, when given, the
    ``decoded [D]`` image at that point beside the plot. ``limit``: axes span ``[-limit, limit]`` (default: fit).
    ``posterior``: ``(mu, logvar)`` (2 numbers each) of a q(z|x) to draw as its 2σ ellipse, centred at ``mu``.

    Without ``point`` and ``decoded`` the figure is the scatter alone: the background the pointer explorers draw
    once (:func:`vae_lesson.views.widgets.latent_plane`), its marker and decode then drawn by the browser."""
    scatter_only = point is None and decoded is None
    fig = plt.figure(figsize=(5.4, 4.9) if scatter_only else (9.4, 4.6), layout="constrained")
    if scatter_only:
        ax = fig.subplots()
    else:
        ax, ax_img = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.9, 1]})
    plot_latent_scatter(codes, labels, title=title, ax=ax, s=5)
    limit = limit or max(3.0, 1.05 * float(codes.abs().max()))
    if point is not None:
        point = _point("point", point)
        ax.plot(*point.tolist(), marker="X", ms=15, color="black", mec="white", mew=1.5, ls="none",
                label="you are here", gid="marker")
        limit = max(limit, 1.05 * float(point.abs().max()))
    if posterior is not None:
        mu, logvar = _point("posterior[0] (mu)", posterior[0]), _point("posterior[1] (logvar)", posterior[1])
        sigma = (0.5 * logvar).exp()  # [2]
        ax.add_patch(Ellipse(mu.tolist(), 4 * float(sigma[0]), 4 * float(sigma[1]), fc=(0.84, 0.15, 0.16, 0.25),
                             ec="tab:red", lw=2, gid="posterior", label="q(z|x), 2σ"))
    ax.set(xlim=(-limit, limit), ylim=(-limit, limit), aspect="equal", xlabel="$z_1$", ylabel="$z_2$")
    ax.grid(alpha=0.25)
    if scatter_only:
        return fig
    if decoded is None:
        ax_img.axis("off")
    else:
        where = f" at z = ({point[0]:.2f}, {point[1]:.2f})" if point is not None else ""
        _show(ax_img, decoded, "decoded" + where)
    return fig


def render_manifold(model, n: int = 15, coverage: float = 0.9, title: str = ""):
    r"""The decoded manifold of a 2-D model: an ``n x n`` grid of decodes $\operatorname{sigmoid}(\text{decode}(z))$.

    The grid points are equally spaced in *prior probability*, not in $z$: $z_j = \Phi^{-1}(u_j)$ for $u_j$ evenly
    spaced over the central ``coverage`` of $(0, 1)$ (Kingma & Welling 2014, Fig. 4), so each cell stands for the
    same prior mass and the tails of $\mathcal N(0, 1)$ get as many cells as its centre deserves. Columns run
    along $z_1$ (left to right), rows along $z_2$ (top is high $z_2$, as in the latent plane); the ticks give $z$.
    """
    n = _checks.integer("n", n, minimum=2)
    coverage = _checks.number("coverage", coverage, positive=True)
    if not coverage < 1:
        _checks.fail("coverage", "a fraction of the prior's mass in (0, 1)", coverage)
    if getattr(model, "latent_dim", None) != 2:
        _checks.fail("model", "a model with latent_dim = 2", f"latent_dim = {getattr(model, 'latent_dim', None)}")
    u = torch.linspace(0.5 - coverage / 2, 0.5 + coverage / 2, n, dtype=torch.float64)
    axis = torch.special.ndtri(u).float()  # [n], Phi^-1(u): prior quantiles
    z2, z1 = torch.meshgrid(axis.flip(0), axis, indexing="ij")  # top row: largest z2
    z = torch.stack([z1, z2], dim=-1).reshape(-1, 2)  # [n*n, 2], row by row
    images = decoded_pixels(model, z)  # [n*n, D]
    side = image_side(images.shape[1])
    fig, ax = plt.subplots(figsize=(7.2, 7.2), layout="constrained")
    ax.imshow(tile(images, n), cmap="gray", vmin=0, vmax=1)
    centres = [i * (side + 1) + side / 2 for i in range(n)]
    every = max(1, n // 7)
    ax.set_xticks(centres[::every], [f"{v:.2f}" for v in axis.tolist()[::every]])
    ax.set_yticks(centres[::every], [f"{v:.2f}" for v in axis.flip(0).tolist()[::every]])
    ax.set(xlabel="$z_1$ (prior quantiles)", ylabel="$z_2$ (prior quantiles)",
           title=title or f"Decoded manifold: {n} x {n} points, equal prior mass each (central {coverage:.0%})")
    return fig


def render_interpolation(model, z_a: torch.Tensor, z_b: torch.Tensor, t: float | None, n_steps: int = 9,
                         title: str = ""):
    r"""Decode the linear and the spherical path from ``z_a`` to ``z_b`` (each ``[latent_dim]``).

    Top two rows: ``n_steps`` decodes at evenly spaced $t$ (the ends are the decodes of $z_a$ and $z_b$), an
    orange line at the chosen ``t``, and the decodes at ``t`` on the right. Bottom: $\lVert z(t)\rVert$ along
    both paths, with $\sqrt d$, the radius where the prior's mass concentrates when $d$ is large, and (grey band)
    the central 90 % of the prior's norms, :func:`prior_norm_quantile` at 0.05 and 0.95.

    ``t=None`` draws the paths alone, without the orange line and the decodes at ``t``: the background that
    :func:`vae_lesson.views.widgets.latent_interpolation` draws once (the browser draws the line).
    """
    if t is not None:
        t = _checks.number("t", t)
    n_steps = _checks.integer("n_steps", n_steps, minimum=2)
    ts = torch.linspace(0, 1, n_steps)  # [n_steps]
    paths = {"linear": lerp, "spherical": slerp}
    fig = plt.figure(figsize=(10, 5.6) if t is not None else (8.2, 5.0), layout="constrained")
    if t is not None:
        grid = fig.add_gridspec(3, 2, width_ratios=[n_steps, 1.3], height_ratios=[1, 1, 1.2])
    else:
        grid = fig.add_gridspec(3, 1, height_ratios=[1, 1, 1.2])
    for row, (name, path) in enumerate(paths.items()):
        strip = decoded_pixels(model, path(z_a, z_b, ts))  # [n_steps, D]
        side = image_side(strip.shape[1])
        ax = fig.add_subplot(grid[row, 0])
        ax.imshow(tile(strip, n_steps), cmap="gray", vmin=0, vmax=1)
        ax.set_xticks([i * (side + 1) + side / 2 for i in range(n_steps)], [f"{v:.2f}" for v in ts.tolist()])
        ax.set_yticks([])
        ax.set_ylabel(name)
        if t is None:
            continue
        ax.axvline(t * (n_steps - 1) * (side + 1) + side / 2, color="tab:orange", lw=2)
        ax_now = fig.add_subplot(grid[row, 1])
        _show(ax_now, decoded_pixels(model, path(z_a, z_b, t))[0], f"{name}, t = {t:.2f}")
        for spine in ax_now.spines.values():
            spine.set(color="tab:orange", lw=2)
    ax.set_xlabel("t")
    ax_norm = fig.add_subplot(grid[2, :] if t is not None else grid[2, 0])
    dense = torch.linspace(0, 1, 101)  # [101]
    for name, path in paths.items():
        ax_norm.plot(dense, path(z_a, z_b, dense).norm(dim=1), label=name)
    d = z_a.numel()
    ax_norm.axhspan(prior_norm_quantile(0.05, d), prior_norm_quantile(0.95, d), color="0.88",
                    label="central 90 % of the prior's norms")
    ax_norm.axhline(math.sqrt(d), color="gray", ls="--", label=r"$\sqrt{d}$ (typical prior norm)")
    if t is not None:
        ax_norm.axvline(t, color="tab:orange", lw=2)
    ax_norm.set(xlabel="t", ylabel="‖z(t)‖", xlim=(0, 1), ylim=(0, None))
    ax_norm.legend(fontsize=8, loc="lower right")
    ax_norm.grid(alpha=0.3)
    fig.suptitle(title or "Interpolating in z: each image is decoded, nothing is blended in pixel space")
    return fig


def render_posterior(mu, logvar, codes: torch.Tensor, image: torch.Tensor | None = None, limit: float | None = None,
                     axis_labels=("$z_1$", "$z_2$"), title: str = "One digit's posterior over the aggregate posterior"):
    r"""The ellipse of $q_\phi(z\mid x)$ at 2σ (semi-axes $2e^{\text{logvar}_j/2}$, centred at ``mu``; both 2
    numbers) over ``codes [n, 2]`` (samples of the aggregate posterior, grey) and the prior's 1σ and 2σ circles.
    ``image [D]``, if given, is drawn on the right (the digit ``x``). ``mu = logvar = None`` draws the references
    alone: the background of :func:`vae_lesson.views.widgets.posterior_viewer`, whose browser draws the ellipse."""
    if image is not None and mu is None:
        _checks.fail("mu", "the posterior mean of the image drawn (2 numbers)", None, TypeError)
    fig = plt.figure(figsize=(8.6 if image is not None else 6, 5), layout="constrained")
    axes = fig.subplots(1, 2, gridspec_kw={"width_ratios": [2.3, 1]}) if image is not None else [fig.subplots()]
    ax = axes[0]
    points = codes.detach().numpy()
    ax.scatter(points[:, 0], points[:, 1], s=5, color="0.55", alpha=0.5, label="q(z): one sample per image")
    for radius in (1, 2):
        ax.add_patch(Circle((0, 0), radius, fill=False, ls="--", color="tab:blue", lw=1.2,
                            label="p(z): 1σ and 2σ circles" if radius == 1 else None))
    if mu is not None:
        mu, logvar = _point("mu", mu), _point("logvar", logvar)
        sigma = (0.5 * logvar).exp()  # [2]
        ax.add_patch(Ellipse(mu.tolist(), 4 * float(sigma[0]), 4 * float(sigma[1]), fc=(0.84, 0.15, 0.16, 0.25),
                             ec="tab:red", lw=2, gid="posterior",
                             label=f"q(z|x), 2σ: σ = ({sigma[0]:.2f}, {sigma[1]:.2f})"))
        ax.plot(*mu.tolist(), marker="+", ms=10, mew=2, color="tab:red", ls="none")
    limit = limit or max(3.0, 1.05 * float(codes.abs().max()))
    ax.set(xlim=(-limit, limit), ylim=(-limit, limit), aspect="equal", xlabel=axis_labels[0],
           ylabel=axis_labels[1], title=title)
    ax.legend(fontsize=8, loc="upper right", framealpha=0.9)
    if image is not None:
        _show(axes[1], image, f"x, encoded at ({mu[0]:.2f}, {mu[1]:.2f})")
    return fig


def render_aggregate_posterior(mu: torch.Tensor, logvar: torch.Tensor, limit: float = 3.5, n_grid: int = 121):
    r"""Left: the density of the aggregate posterior $q(z)$ of a 2-D model (``mu, logvar [N, 2]``, square-root
    colour scale) with the prior's 1σ, 2σ, 3σ circles. Right, inside the prior's 3σ circle: $\log_{10} q(z)/p(z)$;
    the black line $q = p/10$ (:data:`HOLE_RATIO`) encloses the holes, where the prior puts mass that the
    encoder never uses."""
    limit = _checks.number("limit", limit, positive=True)
    axis = torch.linspace(-limit, limit, _checks.integer("n_grid", n_grid, minimum=2))  # [n_grid]
    z2, z1 = torch.meshgrid(axis.flip(0), axis, indexing="ij")
    z = torch.stack([z1, z2], dim=-1).reshape(-1, 2)  # [n_grid**2, 2], top row first
    log_q = aggregate_log_density(z, mu, logvar).reshape(n_grid, n_grid)
    log_p = (-0.5 * z.pow(2).sum(1) - math.log(2 * math.pi)).reshape(n_grid, n_grid)
    ratio = ((log_q - log_p) / math.log(10)).clamp(-2, 2).numpy()
    ratio[(z.pow(2).sum(1) > 9).reshape(n_grid, n_grid).numpy()] = np.nan  # outside 3σ: the prior has ~1% there
    fig, (ax_q, ax_r) = plt.subplots(1, 2, figsize=(10.5, 4.6), layout="constrained")
    extent = (-limit, limit, -limit, limit)
    shown = ax_q.imshow(log_q.exp().numpy(), cmap="magma", norm=PowerNorm(0.5), extent=extent)
    fig.colorbar(shown, ax=ax_q, label="q(z) (square-root scale)")
    for radius in (1, 2, 3):
        ax_q.add_patch(Circle((0, 0), radius, fill=False, ls="--", color="white", lw=1))
    ax_q.set_title("aggregate posterior q(z); dashed: prior 1σ, 2σ, 3σ", fontsize=10)
    shown = ax_r.imshow(ratio, cmap="RdBu", vmin=-2, vmax=2, extent=extent)
    fig.colorbar(shown, ax=ax_r, label=r"$\log_{10}\, q(z)/p(z)$ (clipped to ±2)")
    ax_r.contour(axis.numpy(), axis.flip(0).numpy(), ratio, levels=[math.log10(HOLE_RATIO)], colors="black",
                 linestyles="solid", linewidths=1.2)
    for radius in (1, 2, 3):
        ax_r.add_patch(Circle((0, 0), radius, fill=False, ls="--", color="0.4", lw=1))
    ax_r.set_title(f"red, inside the black line: holes, q(z) < {HOLE_RATIO:g} p(z)", fontsize=10)
    for ax in (ax_q, ax_r):
        ax.set(xlabel="$z_1$", ylabel="$z_2$")
    return fig
