"""Pure plotting helpers: each takes data, returns a matplotlib ``Figure``, and never calls ``show``/``display``.

Keeping drawing separate from computing lets notebooks, widgets and tests share one function per picture.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import torch

from . import _checks


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
