"""Pure plotting helpers: each takes data, returns a matplotlib ``Figure``, and never calls ``show``/``display``.

Keeping drawing separate from computing lets notebooks, widgets and tests share one function per picture.
"""

from __future__ import annotations

import io
import math

import matplotlib.pyplot as plt
import numpy as np
import torch

from vae_lesson import _checks


def image_side(dim: int) -> int:
    """Side of a square image of ``dim`` pixels (784 -> 28, 64 -> 8)."""
    side = math.isqrt(dim)
    if side * side != dim:
        _checks.fail("images", "flattened square images (D = side * side)", f"D = {dim}")
    return side


def tile(images: torch.Tensor, ncols: int) -> np.ndarray:
    """Arrange ``images [n, D]`` (flattened squares) into one ``[rows*side, ncols*side]`` array, 1-pixel gaps."""
    _checks.tensor("images", images, ndim=2)
    ncols = _checks.integer("ncols", ncols, minimum=1)
    n, side = images.shape[0], image_side(images.shape[1])
    rows = max(1, math.ceil(n / ncols))
    canvas = np.ones((rows * (side + 1) - 1, ncols * (side + 1) - 1), dtype=np.float32)
    pics = images.detach().cpu().float().reshape(n, side, side).numpy()
    for i in range(n):
        r, c = divmod(i, ncols)
        canvas[r * (side + 1):r * (side + 1) + side, c * (side + 1):c * (side + 1) + side] = pics[i]
    return canvas


def show_images(images: torch.Tensor, ncols: int = 10, title: str = "", labels=None, size: float = 0.9):
    """A grid of flattened square images (values in [0, 1], shown white-on-black), optional label per image.

    Returns the figure. ``labels`` (one per image) are written above each image.
    """
    _checks.tensor("images", images, ndim=2)
    n = images.shape[0]
    ncols = min(_checks.integer("ncols", ncols, minimum=1), max(n, 1))
    rows = max(1, math.ceil(n / ncols))
    fig, axes = plt.subplots(rows, ncols, figsize=(size * ncols, size * rows + (0.4 if title else 0)),
                             squeeze=False)
    side = image_side(images.shape[1])
    pics = images.detach().cpu().float().reshape(n, side, side).numpy()
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(pics[i], cmap="gray", vmin=0, vmax=1)
            if labels is not None:
                ax.set_title(str(labels[i]), fontsize=8, pad=2)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def show_panels(panels: dict, ncols: int = 10, title: str = "", side_by_side: bool = False):
    """One titled grid per panel, ``panels`` a dict ``{panel title: images [n, D]}``; stacked, or side by side.

    Each panel is one :func:`tile` of its images (``ncols`` per row). Returns the figure.
    """
    if not isinstance(panels, dict) or not panels:
        _checks.fail("panels", "a non-empty dict {title: images [n, D]}", type(panels).__name__, TypeError)
    ncols = _checks.integer("ncols", ncols, minimum=1)
    for name, images in panels.items():
        _checks.tensor(f"panels[{name!r}]", images, ndim=2)
    n = len(panels)
    rows = max(math.ceil(len(images) / ncols) for images in panels.values())
    width, height = 0.6 * ncols, 0.6 * rows + 0.5
    fig, axes = plt.subplots(1 if side_by_side else n, n if side_by_side else 1, squeeze=False,
                             figsize=(width * n, height + 0.4) if side_by_side else (width, height * n + 0.4))
    for ax, (name, images) in zip(axes.flat, panels.items()):
        ax.imshow(tile(images, ncols), cmap="gray", vmin=0, vmax=1)
        ax.set_title(name, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_latent_scatter(z: torch.Tensor, labels=None, title: str = "", ax=None, s: float = 6.0):
    """Scatter 2-D codes ``z [n, 2]``, coloured by digit ``labels`` (0-9) with a legend. Returns the figure."""
    _checks.tensor("z", z, ndim=2)
    if z.shape[1] != 2:
        _checks.fail("z", "shape [n, 2] (a 2-D latent space)", list(z.shape))
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(5.5, 5))
    points = z.detach().cpu().numpy()
    if labels is None:
        ax.scatter(points[:, 0], points[:, 1], s=s, alpha=0.6)
    else:
        labels = np.asarray(labels)
        cmap = plt.get_cmap("tab10")
        for digit in np.unique(labels):
            mask = labels == digit
            ax.scatter(points[mask, 0], points[mask, 1], s=s, alpha=0.6, color=cmap(int(digit) % 10),
                       label=str(digit))
        ax.legend(title="digit", markerscale=2.5, fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    ax.set_xlabel("$z_1$")
    ax.set_ylabel("$z_2$")
    ax.set_title(title)
    return fig


def latent_grid(low: float, high: float, n: int, low2: float | None = None, high2: float | None = None):
    """An ``n x n`` grid of 2-D points, ``[n*n, 2]``, row by row from top (high z2) to bottom, left to right."""
    n = _checks.integer("n", n, minimum=1)
    low2 = low if low2 is None else low2
    high2 = high if high2 is None else high2
    z1 = torch.linspace(low, high, n)
    z2 = torch.linspace(high2, low2, n)  # top row is the largest z2, as on a plot
    return torch.stack(torch.meshgrid(z2, z1, indexing="ij")[::-1], dim=-1).reshape(-1, 2)


@torch.no_grad()
def show_latent_grid(model, low: float = -3.0, high: float = 3.0, n: int = 15, title: str = "",
                     low2: float | None = None, high2: float | None = None):
    """Decode an ``n x n`` grid over a 2-D latent plane and show it as one picture with z-axes.

    ``model.decode(z)`` must return logits; the image at column i, row j is ``sigmoid(decode(z))`` at the
    grid point, so the picture is a map of what the decoder does across the plane. Returns the figure.
    """
    if getattr(model, "latent_dim", 2) != 2:
        _checks.fail("model", "a model with latent_dim = 2", getattr(model, "latent_dim", None))
    low2 = low if low2 is None else low2
    high2 = high if high2 is None else high2
    z = latent_grid(low, high, n, low2, high2)  # [n*n, 2]
    images = torch.sigmoid(model.decode(z))  # [n*n, D]
    canvas = tile(images, n)
    fig, ax = plt.subplots(figsize=(6, 6))
    ax.imshow(canvas, cmap="gray", vmin=0, vmax=1, extent=(low, high, low2, high2), aspect="auto")
    ax.set_xlabel("$z_1$")
    ax.set_ylabel("$z_2$")
    ax.set_title(title)
    return fig


def plot_history(history, title: str = "Training curves", terms=("reconstruction", "kl", "elbo")):
    """Training curves from ``fit``'s history: one panel per term (``-reconstruction``, ``KL``, ``-ELBO``), nats.

    Train and (when the history has them) validation curves share a panel. Lower is better in every panel. ``terms``
    names the history's series (e.g. ``("iwae_bound",)`` for IWAE training): bounds and log-likelihoods are shown
    negated, penalties (``kl``, ``free_bits_kl``, ``squared_distance``) as they are.
    """
    labels = {"reconstruction": "−reconstruction  (−E_q log p(x|z))", "kl": "KL(q(z|x) ‖ p(z))",
              "elbo": "−ELBO", "iwae_bound": "−IWAE bound"}
    penalties = ("kl", "free_bits_kl", "squared_distance")
    fig, axes = plt.subplots(1, len(terms), figsize=(4.2 * len(terms), 3.4), squeeze=False)
    for ax, name in zip(axes.flat, terms):
        sign = 1.0 if name in penalties else -1.0
        epochs = np.arange(1, len(history[name]) + 1)
        ax.plot(epochs, sign * np.asarray(history[name]), marker="o", ms=3, label="train")
        if f"val_{name}" in history:
            ax.plot(epochs, sign * np.asarray(history[f"val_{name}"]), marker="s", ms=3, label="validation")
        ax.set_xlabel("epoch")
        ax.set_ylabel("squared distance" if name == "squared_distance" else "nats per example")
        ax.set_title(labels.get(name, name if sign > 0 else f"−{name}"))
        ax.legend()
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def figure_png(fig, dpi: int = 80) -> bytes:
    """The PNG bytes of ``fig`` (for an ``ipywidgets.Image``), and ``fig`` closed so that no figure is left open."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    plt.close(fig)
    return buffer.getvalue()


def errors_shown_in(output, update):
    """``update`` as a widget callback: an error it raises appears in ``output`` (an ``ipywidgets.Output``), where
    the learner looks (only the latest one: moving a slider does not pile up copies), and a success clears it.
    Called directly (no change event, as when the widget is built), the error is raised as well, so a wrong argument
    fails at once."""
    def run(_change=None):
        try:
            update()
        except Exception as err:  # shown in the widget, not lost in the kernel log
            output.outputs = ()
            output.append_stderr(f"{type(err).__name__}: {err}\n")
            if _change is None:
                raise
        else:
            output.outputs = ()
    return run
