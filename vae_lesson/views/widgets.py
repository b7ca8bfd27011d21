"""Interactive explorers of a VAE's latent space: thin wiring around :mod:`vae_lesson.views.latent_views`.

Each builder checks its arguments, **encodes the data set once** (the expensive part), draws what never changes
once, and returns a small dataclass: ``container`` is the widget to display (make it the last line of a cell; the
builders never call ``display``), the other fields are handles to the controls and to the state the callbacks
keep up to date (the ``z`` shown, the decoded pixels), so that notebooks and tests can drive an explorer the way a
learner does and read what it shows, the way ipywidgets tests itself::

    plane = latent_plane(model, X_test, y_test)
    plane.container                     # as a cell's last line: shows the widget
    plane.move_to(1.5, -0.5)            # what a click does; plane.pixels is now sigmoid(decode(z))

* :func:`latent_sliders` -- one slider per latent dimension, most active first (its activity beside it).
* :func:`latent_plane` -- a 2-D model's test codes by label: click or drag anywhere, the decode follows the pointer.
* :func:`latent_interpolation` -- linear and spherical paths between two encodings; drag along them to move ``t``.
* :func:`posterior_viewer` -- click or drag over the aggregate posterior: the nearest test digit's q(z|x) ellipse.
* :func:`vae_lesson.views.drawing.draw_digit` (its own module) -- draw a digit, watch q(z|x) move as you draw.

The pointer explorers are :class:`~vae_lesson.views.pointer.PointerFigure` widgets: the figure (scatter, strips)
is drawn **once**; at every pointer move the kernel only decodes and sends 784 bytes back, and the browser draws the
marker, line or ellipse. So they follow the pointer continuously. An error inside a callback is written to the
explorer's ``output`` widget (below the controls) instead of vanishing into the kernel log; the next successful
update clears it. Not here: the pictures themselves (:mod:`vae_lesson.views.latent_views`), plain functions you can
call without widgets, and which every notebook cell after a widget calls to show the same view statically.
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

from vae_lesson import _checks, gaussian_kl
from vae_lesson.core.bounds import check_vae, encode_gaussian
from vae_lesson.views import latent_views as views
from vae_lesson.views.plotting import image_side
from vae_lesson.views.pointer import PointerFigure

PIXEL_SCALE = 6  # a 28 x 28 image in an ipywidgets Image is shown as 168 x 168 screen pixels

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


def integer_labels(y, who: str) -> None:
    """Refuse string labels where the plane colours digits 0-9 (``who``: the function's name)."""
    if y is not None and any(isinstance(label, str) for label in y):
        _checks.fail("y", f"integer labels for {who} (the plane colours digits 0-9; latent_sliders, "
                     "latent_interpolation and posterior_viewer accept strings)",
                     repr(next(label for label in y if isinstance(label, str))), TypeError)


@torch.no_grad()
def encode_data(model, X, y) -> tuple[torch.Tensor, torch.Tensor, list | None]:
    """Check the inputs and encode ``X [n, D]`` once: ``(mu, logvar)``, each ``[n, latent_dim]``, and labels.

    float64 ``X`` is cast once to the model's dtype for encoding (the float64 rule of the package)."""
    check_vae(model)
    _checks.tensor("X", X, ndim=2, low=0.0, high=1.0)
    if X.shape[0] < 2:
        _checks.fail("X", "at least two images", list(X.shape))
    input_dim = getattr(model, "input_dim", X.shape[1])
    if X.shape[1] != input_dim:
        _checks.fail("X", f"shape [n, {input_dim}] (the model's input_dim)", list(X.shape))
    y = _labels(y, X.shape[0])
    mu, logvar = encode_images(model, X)
    return mu, logvar, y


@torch.no_grad()
def encode_images(model, X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(mu, logvar)`` of ``X [n, D]`` in eval mode (the model's mode is restored), each ``[n, latent_dim]``."""
    was_training = model.training
    model.eval()
    mu, logvar = encode_gaussian(model, _checks.model_input("X", X, model))  # [n, latent_dim] each
    model.train(was_training)
    return mu, logvar


def index(name: str, value: object, n: int) -> int:
    """``value`` as an index of one of ``n`` test images, or a ``ValueError`` naming ``name``."""
    value = _checks.integer(name, value, minimum=0)
    if value >= n:
        _checks.fail(name, f"an index of a test image, 0 to {n - 1}", value)
    return value


def require_2d(model) -> None:
    if getattr(model, "latent_dim", None) != 2:
        _checks.fail("model", "a model with latent_dim = 2 (a latent plane)",
                     f"latent_dim = {getattr(model, 'latent_dim', None)}")


def two_dims(dims, mu: torch.Tensor) -> tuple[int, int]:
    """The two latent dimensions to draw: ``dims`` checked, or by default the two most active of ``mu [n, d]``."""
    latent_dim = mu.shape[1]
    if latent_dim < 2:
        _checks.fail("model", "a model with latent_dim >= 2", f"latent_dim = {latent_dim}")
    if dims is None:
        return tuple(sorted(torch.argsort(views.latent_activity(mu), descending=True)[:2].tolist()))
    if not (isinstance(dims, (tuple, list)) and len(dims) == 2 and dims[0] != dims[1]):
        _checks.fail("dims", "two different latent dimensions (i, j)", repr(dims), TypeError)
    return tuple(index(f"dims[{k}]", d, latent_dim) for k, d in enumerate(dims))


def digit_box(description: str, value: int, n: int) -> widgets.BoundedIntText:
    return widgets.BoundedIntText(value=value, min=0, max=n - 1, description=description,
                                  style={"description_width": "initial"}, layout=widgets.Layout(width="200px"))


def title_of(y, i: int) -> str:
    return f"test digit #{i}" + (f" (a {y[i]})" if y is not None else "")


def pixels_png(pixels: torch.Tensor) -> bytes:
    """A flattened square image ``[D]`` in [0, 1] as PNG bytes, enlarged ``PIXEL_SCALE`` times (no smoothing)."""
    side = image_side(pixels.shape[-1])
    big = np.kron(pixels.detach().reshape(side, side).numpy(), np.ones((PIXEL_SCALE, PIXEL_SCALE)))
    buffer = io.BytesIO()
    plt.imsave(buffer, big, cmap="gray", vmin=0, vmax=1, format="png")
    return buffer.getvalue()


def signed(value: float) -> str:
    """``-1.39`` with a true minus sign, ``+0.52`` with a plus: readouts that keep their width."""
    return f"{value:+.2f}".replace("-", "\u2212")


def _state():
    return field(default=None, init=False)  # kept up to date by the callbacks


@dataclass
class _Explorer:
    """What every explorer has: the widget to display and the ``Output`` where callback errors appear."""

    container: widgets.VBox
    output: widgets.Output

    def _guard(self, update):
        """``update`` wrapped so that an error is shown in ``output`` (and success clears it)."""
        def run(*args):
            try:
                update(*args)
            except Exception as err:  # shown in the widget, where the learner is looking
                self.output.outputs = ()
                self.output.append_stderr(f"{type(err).__name__}: {err}\n")
            else:
                self.output.outputs = ()
        return run

    def _wire(self, update, *controls) -> None:
        """Call ``update()`` now and whenever a control's value changes, errors shown in ``output``."""
        self._muted = False  # True while several controls are set at once
        guarded = self._guard(update)

        def run(_change=None):
            if not self._muted:
                guarded()
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


def frame(title: str, body, output) -> widgets.VBox:
    return widgets.VBox([widgets.HTML(f"<b>{title}</b>"), body, output],
                        layout=widgets.Layout(border="1px solid #ddd", padding="6px"))


def hint(text: str) -> widgets.HTML:
    return widgets.HTML(f"<span style='color:#555'>{text}</span>")


# --- one slider per dimension ----------------------------------------------------------------------------------

@dataclass
class LatentSliders(_Explorer):
    """:func:`latent_sliders`: ``sliders[k]`` sets latent dimension ``dims[k]``; the most active comes first."""

    sliders: list  # FloatSlider per shown dimension
    readouts: list  # HTML: each slider's value, fully shown
    dims: list  # the latent index j each slider sets
    activity: torch.Tensor  # [latent_dim], Var_x(mu_j) over the data set
    digit: widgets.BoundedIntText  # the test image the sliders start from (changing it moves them there)
    reset: widgets.Button  # "reset sliders": back to that image's encoding
    image: widgets.Image  # the decoded image sigmoid(decode(z)), PNG
    original: widgets.Image  # the chosen test image x
    z: torch.Tensor = _state()  # [1, latent_dim], the point decoded
    pixels: torch.Tensor = _state()  # [D], the image shown

    def current_z(self) -> torch.Tensor:
        """The latent point shown, ``[1, latent_dim]`` (a copy)."""
        return self.z.clone()


def _activity_bar(value: float, largest: float) -> widgets.HTML:
    width = round(36 * value / largest) if largest > 0 else 0
    return widgets.HTML(f"<span style='white-space:nowrap'><span style='display:inline-block;width:{width}px;"
                        f"height:8px;background:#4c78a8;margin-right:4px'></span>"
                        f"<span style='font-size:12px'>A = {value:.2f}</span></span>",
                        layout=widgets.Layout(width="104px"))


def latent_sliders(model, X: torch.Tensor, y=None, *, digit: int = 0, max_sliders: int | None = None,
                   limit: float = 3.0) -> LatentSliders:
    """Sliders for the ``max_sliders`` (default: all) most active latent dimensions, ranked by
    :func:`~vae_lesson.views.latent_views.latent_activity` over ``X [n, D]`` (shown beside each slider as a bar
    and a number, A); the decode follows every move.

    Each slider spans ``[-limit, limit]``, widened (to whole numbers) where an encoding of ``X`` lies further out.
    The sliders start at the encoding ``mu`` of image ``digit`` of ``X``; choosing another image in the box moves
    them to its encoding, and "reset sliders" undoes your moves. Dimensions without a slider keep it too.
    """
    mu, _, y = encode_data(model, X, y)
    n, latent_dim = mu.shape
    digit = index("digit", digit, n)
    limit = _checks.number("limit", limit, positive=True)
    shown = latent_dim if max_sliders is None else _checks.integer("max_sliders", max_sliders, minimum=1)
    activity = views.latent_activity(mu)  # [latent_dim]
    dims = torch.argsort(activity, descending=True)[:shown].tolist()
    bounds = [max(limit, math.ceil(float(mu[:, j].abs().max()))) for j in dims]  # every encoding fits
    sliders = [widgets.FloatSlider(value=float(mu[digit, j]), min=-bound, max=bound, step=0.01, readout=False,
                                   description=f"z{j + 1}", continuous_update=True,
                                   style={"description_width": "32px"}, layout=widgets.Layout(width="196px"))
               for j, bound in zip(dims, bounds)]
    readouts = [widgets.HTML(layout=widgets.Layout(width="50px")) for _ in dims]
    rows = [widgets.HBox([s, r, _activity_bar(float(activity[j]), float(activity.max()))])
            for s, r, j in zip(sliders, readouts, dims)]
    box = digit_box("test digit #", digit, n)
    box.layout.width = "170px"
    reset = widgets.Button(description="reset sliders", icon="undo", tooltip="back to the test digit's encoding",
                           layout=widgets.Layout(width="170px"))
    image, original, caption = widgets.Image(format="png"), widgets.Image(format="png"), widgets.HTML()
    columns = [widgets.VBox(rows[i:i + 8], layout=widgets.Layout(margin="0 12px 0 0"))
               for i in range(0, len(rows), 8)]  # 8 sliders per column
    body = widgets.HBox([*columns, widgets.VBox([widgets.HTML("decoded: sigmoid(decode(z))"), image],
                                                layout=widgets.Layout(margin="0 12px 0 0")),
                         widgets.VBox([caption, original, box, reset])],
                        layout=widgets.Layout(flex_flow="row wrap"))  # a narrow notebook: the images go below
    output = widgets.Output()
    container = frame("Latent sliders: one per dimension, most active first (A: activity, the variance of the "
                      "encodings along that dimension)", body, output)
    explorer = LatentSliders(container, output, sliders, readouts, dims, activity, box, reset, image, original)
    base = mu[digit:digit + 1].clone()  # [1, latent_dim]: the values of dimensions without a slider

    def update():
        z = base.clone()  # [1, latent_dim]
        for slider, readout, j in zip(sliders, readouts, dims):
            z[0, j] = slider.value
            readout.value = f"<code>{signed(slider.value)}</code>"
        explorer.z, explorer.pixels = z, views.decoded_pixels(model, z)[0]  # [D]
        image.value = pixels_png(explorer.pixels)

    def go_to_digit(_change=None):
        i = box.value
        caption.value, original.value = title_of(y, i), pixels_png(X[i])
        base.copy_(mu[i:i + 1])
        explorer._set_all((s, float(base[0, j])) for s, j in zip(sliders, dims))

    explorer._wire(update, *sliders)
    box.observe(explorer._guard(go_to_digit), names="value")
    reset.on_click(explorer._guard(go_to_digit))
    go_to_digit()
    return explorer


# --- the latent plane ------------------------------------------------------------------------------------------

@dataclass
class LatentPlane(_Explorer):
    """:func:`latent_plane`: ``canvas`` shows the plane; a click or a drag on it (or :meth:`move_to`) decodes."""

    canvas: PointerFigure
    digit: widgets.BoundedIntText  # choosing a test image moves the marker to its encoding
    codes: torch.Tensor  # [n, 2], the posterior means of the data set
    limit: float  # the plane spans [-limit, limit] in both directions
    point: torch.Tensor = _state()  # [2], where the marker is
    pixels: torch.Tensor = _state()  # [D], the decode at point
    decodes: int = 0  # how many points were decoded (each pointer move that reached the kernel)

    def move_to(self, z1: float, z2: float) -> None:
        """Point at ``(z1, z2)``, exactly as a click on the plane does."""
        self.canvas.point_at(z1, z2)


def latent_plane(model, X: torch.Tensor, y=None, *, digit: int = 0) -> LatentPlane:
    """A 2-D model's encodings of ``X`` scattered by label ``y``; click or drag anywhere on the plane (or use the
    arrow keys) and the decode at the pointer is shown beside it. The scatter is drawn once; a move only decodes.

    The marker starts at the encoding of image ``digit``; choosing another image in the box moves it there.
    """
    require_2d(model)
    mu, _, y = encode_data(model, X, y)
    integer_labels(y, "latent_plane")
    digit = index("digit", digit, mu.shape[0])
    limit = max(3.0, math.ceil(float(mu.abs().max())))
    canvas = PointerFigure(mode="xy", clamp=[[-limit, limit], [-limit, limit]], step=0.05)
    fig = views.render_latent_plane(mu, y, limit=limit, title="Test digits in the latent plane")
    canvas.set_figure(fig, fig.axes[:1])
    box = digit_box("jump to test digit #", digit, mu.shape[0])
    output = widgets.Output()
    container = frame("Latent plane: click or drag anywhere; the digit decoded at the pointer follows it",
                      widgets.VBox([widgets.HBox([box, hint("&nbsp;or click the plane, then use the arrow keys")]),
                                    canvas]), output)
    explorer = LatentPlane(container, output, canvas, box, mu, limit)

    def update(value):
        point = torch.tensor(value, dtype=torch.float32)  # [2]
        pixels = views.decoded_pixels(model, point)[0]  # [D]
        explorer.point, explorer.pixels, explorer.decodes = point, pixels, explorer.decodes + 1
        with canvas.hold_sync():
            canvas.overlay = {"marker": point.tolist()}
            canvas.show_images([pixels], [f"decoded at z = ({signed(value[0])}, {signed(value[1])})"])
            canvas.status = f"z = ({signed(value[0])}, {signed(value[1])})   decodes so far: {explorer.decodes}"

    canvas.on_point(explorer._guard(update))
    box.observe(explorer._guard(lambda change: explorer.move_to(*mu[change["new"]].tolist())), names="value")
    update(mu[digit].tolist())  # the first picture; an error here is raised at once
    return explorer


# --- interpolation ---------------------------------------------------------------------------------------------

@dataclass
class LatentInterpolation(_Explorer):
    """:func:`latent_interpolation`: ``linear`` and ``spherical`` are the decodes at ``t`` (``[D]`` each)."""

    digit_a: widgets.BoundedIntText
    digit_b: widgets.BoundedIntText
    t: widgets.FloatSlider  # follows the pointer on the canvas; moving it moves the line
    canvas: PointerFigure
    mu: torch.Tensor  # [n, latent_dim], the encodings of the data set
    z_a: torch.Tensor = _state()  # [latent_dim]
    z_b: torch.Tensor = _state()  # [latent_dim]
    linear: torch.Tensor = _state()  # [D], decode of lerp(z_a, z_b, t)
    spherical: torch.Tensor = _state()  # [D], decode of slerp(z_a, z_b, t)

    def move_to(self, t: float) -> None:
        """Point at ``t`` on the paths, exactly as a click on the strips or the norm plot does."""
        self.canvas.point_at(t)


def latent_interpolation(model, X: torch.Tensor, y=None, *, digits: tuple[int, int] = (0, 1),
                         n_steps: int = 9) -> LatentInterpolation:
    """Walk from the encoding (``mu``) of one image of ``X`` to another's, on a straight line and on a great
    circle; every image is a decode, nothing is blended in pixel space. ``digits``: the two starting images.

    Click or drag along the strips (or the norm plot below them) to move ``t``; the decodes at ``t`` follow. The
    strips are drawn once per pair of digits; a move only decodes two points."""
    mu, _, y = encode_data(model, X, y)
    n = mu.shape[0]
    if not (isinstance(digits, (tuple, list)) and len(digits) == 2):
        _checks.fail("digits", "two indices (a, b)", repr(digits), TypeError)
    a, b = (index(f"digits[{k}]", d, n) for k, d in enumerate(digits))
    n_steps = _checks.integer("n_steps", n_steps, minimum=2)
    box_a, box_b = digit_box("from test digit #", a, n), digit_box("to test digit #", b, n)
    t = widgets.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.001, readout_format=".3f", description="t",
                            continuous_update=True, layout=widgets.Layout(width="300px"),
                            style={"description_width": "20px"})
    canvas = PointerFigure(mode="x", clamp=[[0.0, 1.0]], step=0.01)
    output = widgets.Output()
    container = frame("Interpolation: click or drag along the strips to move t; linear (top) and spherical (bottom)",
                      widgets.VBox([widgets.HBox([box_a, box_b, t]), canvas]), output)
    explorer = LatentInterpolation(container, output, box_a, box_b, t, canvas, mu)
    side = None

    def new_pair():
        nonlocal side
        explorer.z_a, explorer.z_b = mu[box_a.value], mu[box_b.value]  # [latent_dim] each
        title = f"From {title_of(y, box_a.value)} to {title_of(y, box_b.value)}, decoded along the way"
        fig = views.render_interpolation(model, explorer.z_a, explorer.z_b, None, n_steps, title=title)
        side = fig.axes[0].images[0].get_array().shape[0]  # the strip's height: one image
        canvas.set_figure(fig, fig.axes)
        pitch = (n_steps - 1) * (side + 1)  # image columns from t = 0 to t = 1 on a strip
        canvas.regions = [dict(r, xlim=[(x - side / 2) / pitch for x in r["xlim"]]) if k < 2 else r
                          for k, r in enumerate(canvas.regions)]  # the strips' columns as values of t

    def update():
        z_lin = views.lerp(explorer.z_a, explorer.z_b, t.value)  # [latent_dim]
        z_sph = views.slerp(explorer.z_a, explorer.z_b, t.value)  # [latent_dim]
        explorer.linear = views.decoded_pixels(model, z_lin)[0]  # [D]
        explorer.spherical = views.decoded_pixels(model, z_sph)[0]  # [D]
        with canvas.hold_sync():
            canvas.overlay = {"vline": t.value}
            canvas.show_images([explorer.linear, explorer.spherical],
                               [f"linear, t = {t.value:.2f}", f"spherical, t = {t.value:.2f}"])
            canvas.status = f"t = {t.value:.2f}   ‖z(t)‖: linear {z_lin.norm():.2f}, spherical {z_sph.norm():.2f}"

    def pair_changed(_change=None):
        new_pair()
        update()

    new_pair()
    explorer._wire(update, t)
    box_a.observe(explorer._guard(pair_changed), names="value")
    box_b.observe(explorer._guard(pair_changed), names="value")
    # t on the slider's grid: a value between its steps would come back rounded, and decode twice
    canvas.on_point(explorer._guard(lambda value: setattr(t, "value", round(min(1.0, max(0.0, value[0])), 3))))
    return explorer


# --- the posterior viewer --------------------------------------------------------------------------------------

@dataclass
class PosteriorViewer(_Explorer):
    """:func:`posterior_viewer`: ``digit`` is the test image whose q(z|x) is drawn; ``figure`` draws it statically."""

    digit: widgets.BoundedIntText  # a click on the plane picks the test image encoded nearest to it
    canvas: PointerFigure
    dims: tuple  # the two latent dimensions shown
    mu: torch.Tensor  # [n, latent_dim]
    logvar: torch.Tensor  # [n, latent_dim]
    samples: torch.Tensor  # [n, 2]: z_n ~ q(z|x_n), a sample of the aggregate posterior, in the shown dimensions
    render: object  # digit -> the static figure of that digit's posterior

    def move_to(self, z1: float, z2: float) -> None:
        """Point at ``(z1, z2)`` (in the shown dimensions), exactly as a click does: the nearest encoding is chosen."""
        self.canvas.point_at(z1, z2)

    @property
    def figure(self):
        """The static figure of the chosen digit's posterior (closed: it is not shown; read its artists)."""
        fig = self.render(self.digit.value)
        plt.close(fig)
        return fig


def posterior_viewer(model, X: torch.Tensor, y=None, *, digit: int = 0, dims: tuple[int, int] | None = None,
                     generator: torch.Generator | None = None) -> PosteriorViewer:
    r"""The 2σ ellipse of $q_\phi(z\mid x)$ for a chosen image of ``X``, over one sample $z_n \sim q_\phi(z\mid x_n)$
    per image (together, a sample of the aggregate posterior $q(z)$) and the prior's 1σ, 2σ circles.

    Click or drag anywhere: the image whose encoding is nearest to the pointer is chosen, its ellipse drawn and
    the image and its reconstruction shown. ``dims``: the two latent dimensions drawn (default: the two most
    active; a 2-D model shows its whole space).
    """
    mu, logvar, y = encode_data(model, X, y)
    n = mu.shape[0]
    digit = index("digit", digit, n)
    _checks.generator("generator", generator)
    dims = two_dims(dims, mu)
    eps = torch.randn(mu.shape, generator=generator)  # [n, latent_dim]
    samples = (mu + (0.5 * logvar).exp() * eps)[:, dims]  # [n, 2]
    limit = max(3.0, math.ceil(float(samples.abs().max())))
    labels = tuple(f"$z_{{{j + 1}}}$" for j in dims)
    kl = gaussian_kl(mu, logvar)  # [n], nats

    def render(i, with_posterior=True):
        return views.render_posterior(mu[i, dims] if with_posterior else None,
                                      logvar[i, dims] if with_posterior else None, samples,
                                      X[i] if with_posterior else None, limit=limit, axis_labels=labels,
                                      title=f"q(z|x) of {title_of(y, i)}" if with_posterior else
                                      "q(z|x) of the test digit nearest to the pointer")

    canvas = PointerFigure(mode="xy", clamp=[[-limit, limit], [-limit, limit]], step=0.05)
    fig = render(0, with_posterior=False)
    canvas.set_figure(fig, fig.axes[:1])
    box = digit_box("test digit #", digit, n)
    output = widgets.Output()
    container = frame("Posterior viewer: click or drag over q(z) (grey); the nearest test digit's q(z|x) (red, 2σ)",
                      widgets.VBox([widgets.HBox([box, hint("&nbsp;p(z): blue circles at 1σ and 2σ")]), canvas]),
                      output)
    explorer = PosteriorViewer(container, output, box, canvas, dims, mu, logvar, samples, render)
    reconstructions = views.decoded_pixels(model, mu)  # [n, D], once: a click only looks one up

    def update():
        i = box.value
        sigma = torch.exp(0.5 * logvar[i, dims])  # [2]
        with canvas.hold_sync():
            canvas.overlay = {"ellipse": {"center": mu[i, dims].tolist(), "radii": (2 * sigma).tolist()}}
            canvas.show_images([X[i], reconstructions[i]], [title_of(y, i), "decoded at its mean μ"])
            canvas.status = (f"μ = ({signed(float(mu[i, dims[0]]))}, {signed(float(mu[i, dims[1]]))})   "
                             f"σ = ({sigma[0]:.2f}, {sigma[1]:.2f})   KL(q(z|x) ‖ p(z)) = {kl[i]:.2f} nats")

    def pick(value):
        distance = (mu[:, dims] - torch.tensor(value)).pow(2).sum(dim=1)  # [n]
        box.value = int(distance.argmin())

    explorer._wire(update, box)
    canvas.on_point(explorer._guard(pick))
    return explorer
