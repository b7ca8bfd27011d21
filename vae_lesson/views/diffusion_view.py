r"""Look inside a diffusion model step by step: a pure figure and a thin ipywidgets slider over $t$.

:func:`diffusion_paths` does the work once: one image noised by the fixed encoder chain, $z_1, \dots, z_T$ (each
$z_t\sim q(z_t\mid z_{t-1})$), one sample drawn by the learned decoder chain from $z_T\sim\mathcal N(0, I)$ down to
$z_1$, and the model's guess $\hat x_\theta(z_t, t)$ at every step of both. :func:`render_diffusion_step` draws step
$t$ of those paths (a figure, no widgets); :func:`diffusion_explorer` wires a slider over $t$ to it: the callback
only draws. Errors in the callback appear in the explorer's ``output`` widget.

Not here: the model (:mod:`vae_lesson.variants.diffusion`) and the latent-space explorers of notebook 07
(:mod:`vae_lesson.views.widgets`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import ipywidgets as widgets
import matplotlib.pyplot as plt
import torch

from vae_lesson import _checks
from vae_lesson.theory.diffusion_toy import forward_step
from vae_lesson.variants.diffusion import Diffusion
from vae_lesson.views.plotting import errors_shown_in, figure_png, image_side

FIGURE_DPI = 80  # resolution of the figure inside the widget


class DiffusionPaths(NamedTuple):
    """One image's way up the encoder chain and one sample's way down the decoder chain, float32 ``[T, D]``."""

    x: torch.Tensor  # [D], the image
    forward_z: torch.Tensor  # [T, D], row t - 1: z_t of the image, drawn through the chain
    forward_x_hat: torch.Tensor  # [T, D], the model's guess of the image from that z_t
    reverse_z: torch.Tensor  # [T, D], row t - 1: z_t of a sample, drawn from z_T ~ N(0, I) downwards
    reverse_x_hat: torch.Tensor  # [T, D], the guess at that z_t; row 0 is the sample's pixel probabilities


@torch.no_grad()
def diffusion_paths(model: Diffusion, x: torch.Tensor, generator: torch.Generator | None = None) -> DiffusionPaths:
    """Noise ``x [D]`` (one image, pixels in [0, 1]) up the chain and draw one sample down it, with the model's
    guesses at every step. The work a widget does once."""
    if not isinstance(model, Diffusion):
        _checks.fail("model", "a vae_lesson.variants.diffusion.Diffusion", type(model).__name__, TypeError)
    _checks.tensor("x", x, ndim=1, low=0.0, high=1.0)
    if x.shape[0] != model.input_dim:
        _checks.fail("x", f"one image of {model.input_dim} pixels (input_dim)", list(x.shape))
    _checks.generator("generator", generator)
    was_training = model.training
    model.eval()
    x = _checks.model_input("x", x, model)
    z, forward_z, forward_x_hat = x[None], [], []  # [1, D]
    for t in range(1, model.num_steps + 1):
        mean, var = forward_step(model.schedule, z, t)
        z = mean + var.sqrt() * torch.randn(z.shape, generator=generator, dtype=z.dtype)  # z_t ~ q(z_t | z_{t-1})
        forward_z.append(z[0])
        forward_x_hat.append(model.denoise(z, t)[0])
    reverse_z, reverse_x_hat = model.sample_chain(1, generator)  # [T, 1, D] each
    model.train(was_training)
    return DiffusionPaths(x, torch.stack(forward_z), torch.stack(forward_x_hat), reverse_z[:, 0], reverse_x_hat[:, 0])


def _check_step(paths, t) -> int:
    if not isinstance(paths, DiffusionPaths):
        _checks.fail("paths", "DiffusionPaths (from diffusion_paths)", type(paths).__name__, TypeError)
    T = len(paths.forward_z)
    t = _checks.integer("t", t, minimum=1)
    if t > T:
        _checks.fail("t", f"a step from 1 to T={T}", t)
    return t


def render_diffusion_step(paths: DiffusionPaths, t: int, schedule=None):
    r"""Step ``t`` of ``paths`` as one row of five images: the image $x$; its $z_t$; the guess $\hat x(z_t, t)$; a
    sample's $z_t$ on the way down; the guess there. $z_t$ is shown on its own grey scale (its values are not
    pixels); the guesses on [0, 1]. With the model's ``schedule`` the title gives $\alpha_t$, $\sigma_t$ and
    $\log\mathrm{SNR}_t$. Returns the figure."""
    t = _check_step(paths, t)
    side = image_side(paths.x.shape[0])
    panels = [("the image x", paths.x, True), (f"its $z_{{{t}}}$ ~ q($z_{{{t}}}$|x)", paths.forward_z[t - 1], False),
              (f"guess $\\hat x$($z_{{{t}}}$, {t})", paths.forward_x_hat[t - 1], True),
              (f"a sample's $z_{{{t}}}$ (from $z_T$ down)", paths.reverse_z[t - 1], False),
              (f"guess $\\hat x$($z_{{{t}}}$, {t})", paths.reverse_x_hat[t - 1], True)]
    fig, axes = plt.subplots(1, 5, figsize=(9.5, 2.5))
    for ax, (name, image, is_pixels) in zip(axes, panels):
        shown = image.detach().reshape(side, side).numpy()
        ax.imshow(shown, cmap="gray", **({"vmin": 0, "vmax": 1} if is_pixels else {}))
        ax.set_title(name, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    title = f"step t = {t} of {len(paths.forward_z)}"
    if schedule is not None:
        title += (f":  α_t = {float(schedule.alpha[t]):.3f},  σ_t = {float(schedule.sigma[t]):.3f},  "
                  f"log SNR_t = {float(schedule.log_snr[t]):.2f}")
    fig.suptitle(title + "   (left: encoder chain on a test digit; right: decoder chain on a sample)", fontsize=9)
    fig.tight_layout()
    return fig


@dataclass
class DiffusionExplorer:
    """:func:`diffusion_explorer`'s handles: ``container`` to display, ``slider`` to set, what is shown now."""

    container: widgets.VBox
    slider: widgets.IntSlider  # its value is the step t shown
    image: widgets.Image  # the PNG of render_diffusion_step
    output: widgets.Output  # errors raised in the callback appear here
    paths: DiffusionPaths  # computed once when the explorer is built
    shown_x_hat: torch.Tensor = field(default=None, init=False)  # [D], the image's guess at the step shown


def diffusion_explorer(model: Diffusion, x: torch.Tensor, generator: torch.Generator | None = None,
                       t: int = 1) -> DiffusionExplorer:
    """A slider over the step ``t`` and the picture of :func:`render_diffusion_step` at that step, for one image
    ``x [D]`` and one sample (both drawn once, here). Display the returned explorer's ``container``."""
    paths = diffusion_paths(model, x, generator)
    t = _check_step(paths, t)
    slider = widgets.IntSlider(value=t, min=1, max=model.num_steps, description="step t", continuous_update=False)
    image, output = widgets.Image(format="png"), widgets.Output()
    container = widgets.VBox([widgets.HTML("<b>Diffusion, step by step: move t</b>"), slider, image, output])
    explorer = DiffusionExplorer(container, slider, image, output, paths)

    def draw():
        image.value = figure_png(render_diffusion_step(paths, slider.value, model.schedule), FIGURE_DPI)
        explorer.shown_x_hat = paths.forward_x_hat[slider.value - 1]

    update = errors_shown_in(output, draw)
    slider.observe(update, names="value")
    update()
    return explorer
