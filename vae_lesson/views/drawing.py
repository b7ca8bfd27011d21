r"""Draw a digit and watch the encoder answer: $q_\phi(z\mid x)$ moves over the latent plane while you draw.

:func:`draw_digit` puts a :class:`~vae_lesson.views.pointer.DrawPad` beside the latent plane of the test codes.
At every stroke the kernel prepares the drawing the way MNIST's digits were prepared
(:func:`~vae_lesson.views.latent_views.center_like_mnist`), encodes it, and the browser draws the mean and the 2σ
ellipse of $q_\phi(z\mid x)$, with the trail of the means since the pad was last cleared; beside it, what the
encoder saw and the decode at the mean. The test codes are drawn once; a stroke costs one encode and one decode.

Not here: the pad's and the plane's browser code (:mod:`vae_lesson.views.pointer`), the other explorers
(:mod:`vae_lesson.views.widgets`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import ipywidgets as widgets
import torch

from vae_lesson import _checks, gaussian_kl
from vae_lesson.views import latent_views as views
from vae_lesson.views.plotting import image_side
from vae_lesson.views.pointer import DrawPad, PointerFigure
from vae_lesson.views.widgets import (
    digit_box,
    encode_data,
    encode_images,
    frame,
    hint,
    index,
    integer_labels,
    signed,
    two_dims,
)

MAX_TRAIL = 400  # means kept for the trail on the plane


@dataclass
class DrawDigit:
    """:func:`draw_digit`: ``pad`` takes the drawing, ``canvas`` shows where it is encoded."""

    container: widgets.VBox
    output: widgets.Output  # errors of the callbacks appear here
    pad: DrawPad
    canvas: PointerFigure
    center: widgets.Checkbox  # prepare the drawing like MNIST (scale the box to 20 x 20, centre the mass)
    digit: widgets.BoundedIntText  # the test image "put it on the pad" loads
    put: widgets.Button
    dims: tuple  # the two latent dimensions drawn
    x: torch.Tensor = field(default=None, init=False)  # [D], what the encoder saw (after centring)
    mu: torch.Tensor = field(default=None, init=False)  # [latent_dim], the mean of q(z|x)
    logvar: torch.Tensor = field(default=None, init=False)  # [latent_dim]
    pixels: torch.Tensor = field(default=None, init=False)  # [D], sigmoid(decode(mu))
    trail: list = field(default_factory=list, init=False)  # the means (in dims) since the pad was last cleared

    def draw(self, x: torch.Tensor) -> None:
        """Put image ``x [D]`` on the pad, exactly as if it had been drawn there (the trail starts again)."""
        self.trail = []
        self.pad.load(x)


def draw_digit(model, X: torch.Tensor, y=None, *, dims: tuple[int, int] | None = None, center: bool = True,
               digit: int = 0) -> DrawDigit:
    r"""A pad to draw a digit on, beside the encodings of ``X [n, D]`` (labels ``y`` colour them); as you draw,
    the mean and the 2σ ellipse of $q_\phi(z\mid x)$ of your drawing move over them, and the decode at the mean is
    shown. ``dims``: the two latent dimensions drawn (default: the two most active). ``center``: prepare the
    drawing as MNIST's digits were before encoding (a box on the widget turns it off). ``digit``: the test image
    the "put it on the pad" button starts with (edit a real digit: close a 4 into a 9)."""
    mu_data, _, y = encode_data(model, X, y)
    integer_labels(y, "draw_digit")
    dims = two_dims(dims, mu_data)
    digit = index("digit", digit, mu_data.shape[0])
    if not isinstance(center, bool):
        _checks.fail("center", "True or False", repr(center), TypeError)
    side = image_side(X.shape[1])
    codes = mu_data[:, dims]  # [n, 2]
    limit = max(3.0, math.ceil(float(codes.abs().max())))
    canvas = PointerFigure(mode="none")
    fig = views.render_latent_plane(codes, y, limit=limit, title="Where your drawing is encoded")
    fig.axes[0].set(xlabel=f"$z_{{{dims[0] + 1}}}$", ylabel=f"$z_{{{dims[1] + 1}}}$")
    canvas.set_figure(fig, fig.axes[:1])
    pad = DrawPad(side=side, scale=max(1, 224 // side))
    pad.layout.margin = "0 14px 0 0"
    check = widgets.Checkbox(value=center, description="centre and scale like MNIST", indent=False,
                             layout=widgets.Layout(width="230px"))
    box = digit_box("test digit #", digit, mu_data.shape[0])
    put = widgets.Button(description="put it on the pad", icon="pencil", layout=widgets.Layout(width="170px"))
    output = widgets.Output()
    controls = widgets.HBox([check, box, put, hint("&nbsp;then draw over it, or clear the pad")])
    container = frame("Draw a digit: q(z|x) of your drawing (red: mean and 2σ ellipse, trail of the means) moves "
                      "as you draw", widgets.VBox([controls, widgets.HBox([pad, canvas])]), output)
    explorer = DrawDigit(container, output, pad, canvas, check, box, put, dims)
    raw = torch.zeros(side * side)  # [D], the last drawing as it came from the pad

    def encode(drawing: torch.Tensor) -> None:
        raw.copy_(drawing)
        x = views.center_like_mnist(drawing) if check.value else drawing  # [D]
        if float(x.max()) == 0:  # an empty pad: nothing to encode
            explorer.x, explorer.trail = x, []
            with canvas.hold_sync():
                canvas.overlay, canvas.status = {}, "draw a digit on the black pad"
                canvas.show_images([x, x], ["what the encoder sees", "decoded at the mean μ"])
            return
        mu, logvar = encode_images(model, x[None])  # [1, latent_dim] each
        explorer.x, explorer.mu, explorer.logvar = x, mu[0], logvar[0]
        explorer.pixels = views.decoded_pixels(model, mu)[0]  # [D]
        centre = mu[0, dims]  # [2]
        sigma = torch.exp(0.5 * logvar[0, dims])  # [2]
        explorer.trail = (explorer.trail + [centre.tolist()])[-MAX_TRAIL:]
        with canvas.hold_sync():
            canvas.overlay = {"ellipse": {"center": centre.tolist(), "radii": (2 * sigma).tolist()},
                              "trail": explorer.trail}
            canvas.show_images([x, explorer.pixels], ["what the encoder sees", "decoded at the mean μ"])
            canvas.status = (f"μ = ({signed(float(centre[0]))}, {signed(float(centre[1]))})   "
                             f"σ = ({sigma[0]:.2f}, {sigma[1]:.2f})   "
                             f"KL(q(z|x) ‖ p(z)) = {float(gaussian_kl(mu, logvar)[0]):.2f} nats")

    def guarded(drawing):
        try:
            encode(drawing)
        except Exception as err:  # shown in the widget, where the learner is looking
            output.outputs = ()
            output.append_stderr(f"{type(err).__name__}: {err}\n")
        else:
            output.outputs = ()

    pad.on_drawing(guarded)
    put.on_click(lambda _button: explorer.draw(X[box.value]))
    check.observe(lambda _change: guarded(raw.clone()), names="value")
    encode(raw.clone())  # the empty pad; an error here is raised at once
    return explorer
