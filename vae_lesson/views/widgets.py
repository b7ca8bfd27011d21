"""Interactive explorers of a VAE's latent space: thin ipywidgets wiring around :mod:`vae_lesson.views.latent_views`.

Each builder checks its arguments, **encodes the data set once** (the expensive part), draws the first picture,
and returns a small dataclass: ``container`` is the widget to display (make it the last line of a cell; the
builders never call ``display``), the other fields are handles to the controls and to the state the callbacks
keep up to date (the ``z`` shown, the decoded pixels, the last figure), so that notebooks and tests can drive an
explorer by setting ``slider.value`` and read what it shows, the way ipywidgets tests itself::

    explorer = latent_sliders(model, X_test, y_test)
    explorer.container                  # as a cell's last line: shows the widget
    explorer.sliders[0].value = 1.5     # what a user does; explorer.pixels is now sigmoid(decode(z))

* :func:`latent_sliders` -- one slider per latent dimension, most active first, the decoded image live.
* :func:`latent_plane` -- a 2-D model's test codes by label, a marker you move, its decode beside the plot.
* :func:`latent_interpolation` -- two test digits, linear and spherical paths between their codes, a t slider.
* :func:`posterior_viewer` -- one test digit's q(z|x) 2σ ellipse over the aggregate posterior and the prior.

Callbacks only decode and draw. Pictures are PNG bytes in ``ipywidgets.Image`` widgets: they update quickly,
and a test can see that ``image.value`` changed. Controls that redraw a whole figure use
``continuous_update=False``. An error inside a callback is written to the explorer's ``output`` widget (below the
controls) instead of vanishing into the kernel log; the next successful update clears it.
Not here: the pictures themselves (:mod:`vae_lesson.views.latent_views`), which are plain functions you can call
without widgets.
"""

from __future__ import annotations

import io
import math
import numbers
from dataclasses import dataclass, field

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch

from vae_lesson import _checks
from vae_lesson.core.bounds import _check_model, _encode_gaussian
from vae_lesson.views import latent_views as views
from vae_lesson.views.plotting import image_side

FIGURE_DPI = 85  # resolution of the figures shown inside the widgets
PIXEL_SCALE = 6  # a 28 x 28 decode is shown as 168 x 168 screen pixels


# --- shared plumbing -------------------------------------------------------------------------------------------

def _labels(y, n: int) -> list | None:
    """Labels as a list of ``n`` ints or strings (e.g. ``y_test`` tensor, a NumPy array, ``["cat", "dog"]``)."""
    if y is None:
        return None
    if isinstance(y, (str, bytes)) or not hasattr(y, "__iter__"):
        _checks.fail("y", "one label per image of X (a tensor, array or list of ints or strings)",
                     type(y).__name__, TypeError)
    values = y.tolist() if hasattr(y, "tolist") else list(y)
    if not isinstance(values, list):  # a 0-d tensor or array
        _checks.fail("y", "one label per image of X (a 1-D tensor, array or list)", repr(y), TypeError)
    labels = []
    for i, v in enumerate(values):
        if isinstance(v, str):
            labels.append(v)
        elif isinstance(v, numbers.Integral) and not isinstance(v, bool):
            labels.append(int(v))
        elif isinstance(v, numbers.Real) and not isinstance(v, bool) and float(v).is_integer():
            labels.append(int(v))  # float labels such as 3.0
        else:
            _checks.fail(f"y[{i}]", "an int or a string label", repr(v), TypeError)
    if len(labels) != n:
        _checks.fail("y", f"one label per image of X ({n})", f"{len(labels)} labels")
    return labels


@torch.no_grad()
def _encode_data(model, X, y) -> tuple[torch.Tensor, torch.Tensor, list | None]:
    """Check the inputs and encode ``X [n, D]`` once: ``(mu, logvar)``, each ``[n, latent_dim]``, and labels.

    float64 ``X`` is cast once to the model's dtype for encoding (the float64 rule of the package)."""
    _check_model(model)
    _checks.tensor("X", X, ndim=2, low=0.0, high=1.0)
    if X.shape[0] < 2:
        _checks.fail("X", "at least two images", list(X.shape))
    input_dim = getattr(model, "input_dim", X.shape[1])
    if X.shape[1] != input_dim:
        _checks.fail("X", f"shape [n, {input_dim}] (the model's input_dim)", list(X.shape))
    y = _labels(y, X.shape[0])
    was_training = model.training
    model.eval()
    mu, logvar = _encode_gaussian(model, _checks.model_input("X", X, model))  # [n, latent_dim] each
    model.train(was_training)
    return mu, logvar, y


def _index(name: str, value: object, n: int) -> int:
    value = _checks.integer(name, value, minimum=0)
    if value >= n:
        _checks.fail(name, f"an index of a test image, 0 to {n - 1}", value)
    return value


def _pixels_png(pixels: torch.Tensor) -> bytes:
    """A flattened square image ``[D]`` in [0, 1] as PNG bytes, enlarged ``PIXEL_SCALE`` times (no smoothing)."""
    side = image_side(pixels.shape[-1])
    big = np.kron(pixels.detach().reshape(side, side).numpy(), np.ones((PIXEL_SCALE, PIXEL_SCALE)))
    buffer = io.BytesIO()
    plt.imsave(buffer, big, cmap="gray", vmin=0, vmax=1, format="png")
    return buffer.getvalue()


def _figure_png(fig) -> bytes:
    """PNG bytes of a figure, which is then closed (so the notebook does not show it a second time)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=FIGURE_DPI)
    plt.close(fig)
    return buffer.getvalue()


def _digit_box(description: str, value: int, n: int) -> widgets.BoundedIntText:
    return widgets.BoundedIntText(value=value, min=0, max=n - 1, description=description,
                                  style={"description_width": "initial"}, layout=widgets.Layout(width="170px"))


def _title(y, i: int) -> str:
    return f"test digit #{i}" + (f" (a {y[i]})" if y is not None else "")


def _state():
    return field(default=None, init=False)  # kept up to date by the callbacks


@dataclass
class _Explorer:
    """What every explorer has: the widget to display and the ``Output`` where callback errors appear."""

    container: widgets.VBox
    output: widgets.Output

    def _wire(self, update, *controls) -> None:
        """Call ``update()`` now and whenever a control's value changes, errors shown in ``output``.

        ``interactive_output``'s idea, with the error handling spelled out so it works in plain Python too.
        """
        self._muted = False  # True while several controls are set at once

        def run(_change=None):
            if self._muted:
                return
            try:
                update()
            except Exception as err:  # shown in the widget, where the learner is looking
                self.output.append_stderr(f"{type(err).__name__}: {err}\n")
            else:
                self.output.outputs = ()
        for control in controls:
            control.observe(run, names="value")
        self._run = run
        update()  # the first picture; an error here is raised at once

    def _set_all(self, pairs) -> None:
        """Set several ``(control, value)`` pairs, then update once."""
        self._muted = True
        try:
            for control, value in pairs:
                control.value = value
        finally:
            self._muted = False
        self._run()


def _row(*children) -> widgets.HBox:
    for child in children:
        child.layout.margin = "0 16px 0 0"
    return widgets.HBox(children)


def _frame(title: str, body, output) -> widgets.VBox:
    return widgets.VBox([widgets.HTML(f"<b>{title}</b>"), body, output],
                        layout=widgets.Layout(border="1px solid #ddd", padding="6px"))


def _slider(name: str, limit: float, value: float, step: float, continuous: bool, width: str = "340px",
            **kwargs) -> widgets.FloatSlider:
    return widgets.FloatSlider(value=value, min=-limit, max=limit, step=step, readout_format=".2f",
                               description=name, continuous_update=continuous, style={"description_width": "36px"},
                               layout=widgets.Layout(width=width), **kwargs)


@dataclass
class LatentSliders(_Explorer):
    """:func:`latent_sliders`: ``sliders[k]`` sets latent dimension ``dims[k]``; the most active comes first."""

    sliders: list  # FloatSlider per shown dimension
    dims: list  # the latent index j each slider sets
    activity: torch.Tensor  # [latent_dim], Var_x(mu_j) over the data set
    digit: widgets.BoundedIntText  # the test image "reset" uses
    reset: widgets.Button
    image: widgets.Image  # the decoded image sigmoid(decode(z)), PNG
    original: widgets.Image  # the chosen test image x
    z: torch.Tensor = _state()  # [1, latent_dim], the point decoded
    pixels: torch.Tensor = _state()  # [D], the image shown

    def current_z(self) -> torch.Tensor:
        """The latent point shown, ``[1, latent_dim]`` (a copy)."""
        return self.z.clone()


def latent_sliders(model, X: torch.Tensor, y=None, *, digit: int = 0, max_sliders: int | None = None,
                   limit: float = 3.0) -> LatentSliders:
    """Sliders for the ``max_sliders`` (default: all) most active latent dimensions, ranked by
    :func:`~vae_lesson.views.latent_views.latent_activity` over ``X [n, D]``; the decode follows every move.

    Each slider spans ``[-limit, limit]``, widened (to whole numbers) where an encoding of ``X`` lies further out.
    The sliders start at the encoding ``mu`` of image ``digit`` of ``X``; "reset" puts them at the encoding of the
    image chosen in the box. Dimensions without a slider keep that encoding.
    """
    mu, _, y = _encode_data(model, X, y)
    n, latent_dim = mu.shape
    digit = _index("digit", digit, n)
    limit = _checks.number("limit", limit, positive=True)
    shown = latent_dim if max_sliders is None else _checks.integer("max_sliders", max_sliders, minimum=1)
    activity = views.latent_activity(mu)  # [latent_dim]
    dims = torch.argsort(activity, descending=True)[:shown].tolist()
    bounds = [max(limit, math.ceil(float(mu[:, j].abs().max()))) for j in dims]  # every encoding fits
    sliders = [_slider(f"z{j + 1}", bound, float(mu[digit, j]), 0.01, True, width="290px",
                       tooltip=f"activity Var_x(mu_{j + 1}) = {activity[j]:.2f}") for j, bound in zip(dims, bounds)]
    digit_box = _digit_box("test digit #", digit, n)
    reset = widgets.Button(description="reset to its encoding", icon="undo", layout=widgets.Layout(width="170px"))
    image, original, caption = widgets.Image(format="png"), widgets.Image(format="png"), widgets.HTML()
    columns = [widgets.VBox(sliders[i:i + 8]) for i in range(0, len(sliders), 8)]  # 8 sliders per column
    body = _row(*columns, widgets.VBox([widgets.HTML("decoded: sigmoid(decode(z))"), image]),
                widgets.VBox([caption, original, digit_box, reset]))
    output = widgets.Output()
    container = _frame("Latent sliders: one per dimension, most active first (activity in the tooltips)", body, output)
    explorer = LatentSliders(container, output, sliders, dims, activity, digit_box, reset, image, original)
    base = mu[digit:digit + 1].clone()  # [1, latent_dim]: the values of dimensions without a slider

    def update():
        z = base.clone()  # [1, latent_dim]
        for slider, j in zip(sliders, dims):
            z[0, j] = slider.value
        explorer.z, explorer.pixels = z, views.decoded_pixels(model, z)[0]  # [D]
        image.value = _pixels_png(explorer.pixels)

    def show_digit(_change=None):
        caption.value, original.value = _title(y, digit_box.value), _pixels_png(X[digit_box.value])

    def reset_to_digit(_button=None):
        base.copy_(mu[digit_box.value:digit_box.value + 1])
        explorer._set_all((s, float(base[0, j])) for s, j in zip(sliders, dims))

    explorer._wire(update, *sliders)
    digit_box.observe(show_digit, names="value")
    reset.on_click(reset_to_digit)
    show_digit()
    return explorer


def _require_2d(model) -> None:
    if getattr(model, "latent_dim", None) != 2:
        _checks.fail("model", "a model with latent_dim = 2 (a latent plane)",
                     f"latent_dim = {getattr(model, 'latent_dim', None)}")


@dataclass
class LatentPlane(_Explorer):
    """:func:`latent_plane`: the sliders ``z1``, ``z2`` place the marker; ``figure`` is the last one drawn."""

    z1: widgets.FloatSlider
    z2: widgets.FloatSlider
    digit: widgets.BoundedIntText
    jump: widgets.Button  # moves the marker to the chosen test image's encoding
    image: widgets.Image  # the figure: scatter, marker, decoded image (PNG)
    codes: torch.Tensor  # [n, 2], the posterior means of the data set
    point: torch.Tensor = _state()  # [2], where the marker is
    pixels: torch.Tensor = _state()  # [D], the decode at point
    figure: object = _state()  # the matplotlib Figure behind image (closed)


def latent_plane(model, X: torch.Tensor, y=None, *, digit: int = 0) -> LatentPlane:
    """A 2-D model's encodings of ``X`` scattered by label ``y``; two sliders move a marker, decoded beside the plot.

    The marker starts at the encoding of image ``digit``; the box and "jump" move it to another image's encoding.
    """
    _require_2d(model)
    mu, _, y = _encode_data(model, X, y)
    if y is not None and any(isinstance(label, str) for label in y):
        _checks.fail("y", "integer labels for latent_plane (the plane colours digits 0-9; latent_sliders, "
                     "latent_interpolation and posterior_viewer accept strings)",
                     repr(next(label for label in y if isinstance(label, str))), TypeError)
    digit = _index("digit", digit, mu.shape[0])
    limit = max(3.0, math.ceil(float(mu.abs().max())))
    z1, z2 = (_slider(f"z{j + 1}", limit, float(mu[digit, j]), 0.05, False) for j in (0, 1))
    digit_box = _digit_box("test digit #", digit, mu.shape[0])
    jump = widgets.Button(description="jump to its encoding", icon="crosshairs", layout=widgets.Layout(width="170px"))
    image, output = widgets.Image(format="png"), widgets.Output()
    controls = _row(widgets.VBox([z1, z2]), widgets.VBox([digit_box, jump]))
    container = _frame("Latent plane: move the cross with the sliders, or jump to a test digit's encoding",
                       widgets.VBox([controls, image]), output)
    explorer = LatentPlane(container, output, z1, z2, digit_box, jump, image, mu)

    def update():
        explorer.point = torch.tensor([z1.value, z2.value])  # [2]
        explorer.pixels = views.decoded_pixels(model, explorer.point)[0]  # [D]
        explorer.figure = views.render_latent_plane(mu, y, explorer.point, explorer.pixels, limit=limit)
        image.value = _figure_png(explorer.figure)

    explorer._wire(update, z1, z2)
    jump.on_click(lambda _button: explorer._set_all(((z1, float(mu[digit_box.value, 0])),
                                                     (z2, float(mu[digit_box.value, 1])))))
    return explorer


@dataclass
class LatentInterpolation(_Explorer):
    """:func:`latent_interpolation`: ``linear`` and ``spherical`` are the decodes at ``t`` (``[D]`` each)."""

    digit_a: widgets.BoundedIntText
    digit_b: widgets.BoundedIntText
    t: widgets.FloatSlider
    image: widgets.Image  # the figure (PNG)
    mu: torch.Tensor  # [n, latent_dim], the encodings of the data set
    z_a: torch.Tensor = _state()  # [latent_dim]
    z_b: torch.Tensor = _state()  # [latent_dim]
    linear: torch.Tensor = _state()  # [D], decode of lerp(z_a, z_b, t)
    spherical: torch.Tensor = _state()  # [D], decode of slerp(z_a, z_b, t)
    figure: object = _state()


def latent_interpolation(model, X: torch.Tensor, y=None, *, digits: tuple[int, int] = (0, 1),
                         n_steps: int = 9) -> LatentInterpolation:
    """Walk from the encoding (``mu``) of one image of ``X`` to another's, on a straight line and on a great
    circle; every image is a decode, nothing is blended in pixel space. ``digits``: the two starting images."""
    mu, _, y = _encode_data(model, X, y)
    n = mu.shape[0]
    if not (isinstance(digits, (tuple, list)) and len(digits) == 2):
        _checks.fail("digits", "two indices (a, b)", repr(digits), TypeError)
    a, b = (_index(f"digits[{k}]", d, n) for k, d in enumerate(digits))
    n_steps = _checks.integer("n_steps", n_steps, minimum=2)
    box_a, box_b = _digit_box("from test digit #", a, n), _digit_box("to test digit #", b, n)
    t = widgets.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.05, readout_format=".2f", description="t",
                            continuous_update=False, layout=widgets.Layout(width="340px"),
                            style={"description_width": "20px"})
    image, output = widgets.Image(format="png"), widgets.Output()
    container = _frame("Interpolation: linear (top) and spherical (bottom) paths between two encodings",
                       widgets.VBox([_row(box_a, box_b, t), image]),
                       output)
    explorer = LatentInterpolation(container, output, box_a, box_b, t, image, mu)

    def update():
        z_a, z_b = mu[box_a.value], mu[box_b.value]  # [latent_dim] each
        explorer.z_a, explorer.z_b = z_a, z_b
        explorer.linear = views.decoded_pixels(model, views.lerp(z_a, z_b, t.value))[0]  # [D]
        explorer.spherical = views.decoded_pixels(model, views.slerp(z_a, z_b, t.value))[0]  # [D]
        title = f"From {_title(y, box_a.value)} to {_title(y, box_b.value)}, decoded along the way"
        explorer.figure = views.render_interpolation(model, z_a, z_b, t.value, n_steps, title=title)
        image.value = _figure_png(explorer.figure)

    explorer._wire(update, box_a, box_b, t)
    return explorer


@dataclass
class PosteriorViewer(_Explorer):
    """:func:`posterior_viewer`: ``figure`` holds the ellipse of the chosen image's q(z|x)."""

    digit: widgets.BoundedIntText
    image: widgets.Image  # the figure (PNG)
    dims: tuple  # the two latent dimensions shown
    mu: torch.Tensor  # [n, latent_dim]
    logvar: torch.Tensor  # [n, latent_dim]
    samples: torch.Tensor  # [n, 2]: z_n ~ q(z|x_n), a sample of the aggregate posterior, in the shown dimensions
    figure: object = _state()


def posterior_viewer(model, X: torch.Tensor, y=None, *, digit: int = 0, dims: tuple[int, int] | None = None,
                     generator: torch.Generator | None = None) -> PosteriorViewer:
    r"""The 2σ ellipse of $q_\phi(z\mid x)$ for a chosen image of ``X``, over one sample $z_n \sim q_\phi(z\mid x_n)$
    per image (together, a sample of the aggregate posterior $q(z)$) and the prior's 1σ, 2σ circles.

    ``dims``: the two latent dimensions drawn (default: the two most active; a 2-D model shows its whole space).
    """
    mu, logvar, y = _encode_data(model, X, y)
    n, latent_dim = mu.shape
    if latent_dim < 2:
        _checks.fail("model", "a model with latent_dim >= 2", f"latent_dim = {latent_dim}")
    digit = _index("digit", digit, n)
    _checks.generator("generator", generator)
    if dims is None:
        dims = tuple(sorted(torch.argsort(views.latent_activity(mu), descending=True)[:2].tolist()))
    elif not (isinstance(dims, (tuple, list)) and len(dims) == 2 and dims[0] != dims[1]):
        _checks.fail("dims", "two different latent dimensions (i, j)", repr(dims), TypeError)
    dims = tuple(_index(f"dims[{k}]", d, latent_dim) for k, d in enumerate(dims))
    eps = torch.randn(mu.shape, generator=generator)  # [n, latent_dim]
    samples = (mu + (0.5 * logvar).exp() * eps)[:, dims]  # [n, 2]
    limit = max(3.0, math.ceil(float(samples.abs().max())))
    box = _digit_box("test digit #", digit, n)
    image, output = widgets.Image(format="png"), widgets.Output()
    container = _frame("Posterior viewer: q(z|x) of one test digit (red, 2σ) over q(z) (grey) and p(z) (blue)",
                       widgets.VBox([box, image]), output)
    explorer = PosteriorViewer(container, output, box, image, dims, mu, logvar, samples)
    labels = tuple(f"$z_{{{j + 1}}}$" for j in dims)

    def update():
        i = box.value
        explorer.figure = views.render_posterior(mu[i, dims], logvar[i, dims], samples, X[i], limit=limit,
                                           axis_labels=labels, title=f"q(z|x) of {_title(y, i)}")
        image.value = _figure_png(explorer.figure)

    explorer._wire(update, box)
    return explorer
