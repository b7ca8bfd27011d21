"""Two widgets that follow the pointer: a figure you click, drag or draw on, and a pad you draw a digit on.

Built on `anywidget <https://anywidget.dev>`_: a Python class with synced traits and a small ES module that the
browser runs (:mod:`vae_lesson.views.browser_code`), with no build step and nothing fetched at run time. Why
pointer widgets at all: redrawing a matplotlib figure with a 1000-point scatter costs a third of a second, so a
slider wired to it can only update when released. Here the figure is drawn **once**, as a PNG; the browser draws
the few things that move (a marker, an ellipse, a line) on top of it, and the kernel only decodes.

* :class:`PointerFigure` -- ``background`` (a figure's PNG) and ``regions`` (its axes: pixel box and data limits,
  from :func:`figure_regions`); the browser turns a click or a drag into ``pointer = [seq, x, y]`` in data
  coordinates. :meth:`PointerFigure.on_point` registers the kernel's answer: it sets ``overlay``, ``panels`` (images
  as ``uint8`` bytes) and ``status``; the widget then acknowledges with ``frame = seq``.
* :class:`DrawPad` -- ``drawing = {"seq": n, "pixels": [side * side grey levels]}`` while you draw;
  :meth:`DrawPad.on_drawing` registers the answer; :meth:`DrawPad.load` puts an image on the pad.

Not here: what is decoded and shown (that is :mod:`vae_lesson.views.widgets`).
"""

from __future__ import annotations

import io

import anywidget
import matplotlib.pyplot as plt
import numpy as np
import torch
import traitlets

from vae_lesson import _checks
from vae_lesson.views.browser_code import DRAW_PAD_ESM, POINTER_FIGURE_ESM
from vae_lesson.views.plotting import image_side

FIGURE_DPI = 144  # a background figure's PNG: w x h inches are w*144 x h*144 pixels...
PIXEL_RATIO = 2  # ...shown as w*72 x h*72 screen pixels, crisp on high-resolution screens too
PANEL_SCALE = 6  # a 28 x 28 image is shown as 168 x 168 screen pixels


def figure_regions(fig, axes) -> list[dict]:
    """Pixel boxes and data limits of ``axes`` in ``fig``'s PNG at :data:`FIGURE_DPI` (draw the figure first).

    Each region is ``{"x0", "y0", "x1", "y1"}`` (pixels, origin at the top left of the PNG) and ``"xlim"``,
    ``"ylim"`` (the data values at the box's left/right and bottom/top edges)."""
    height = fig.get_figheight() * FIGURE_DPI
    ratio = FIGURE_DPI / fig.dpi
    regions = []
    for ax in axes:
        box = ax.get_window_extent()  # display units at fig.dpi, origin at the bottom left
        regions.append({"x0": box.x0 * ratio, "x1": box.x1 * ratio, "y0": height - box.y1 * ratio,
                        "y1": height - box.y0 * ratio, "xlim": list(map(float, ax.get_xlim())),
                        "ylim": list(map(float, ax.get_ylim()))})
    return regions


def figure_background(fig, axes) -> tuple[bytes, list[dict]]:
    """``fig`` as PNG bytes at :data:`FIGURE_DPI` and the :func:`figure_regions` of ``axes``; closes ``fig``."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=FIGURE_DPI)  # also runs the layout, so the boxes below are final
    regions = figure_regions(fig, axes)
    plt.close(fig)
    return buffer.getvalue(), regions


def image_bytes(*images: torch.Tensor) -> bytes:
    """Images ``[D]`` in [0, 1] (flattened squares, all the same size) as ``uint8`` grey levels, one byte a pixel."""
    stacked = torch.stack([image.detach().reshape(-1).float() for image in images])  # [k, D]
    return (stacked.clamp(0, 1) * 255).round().to(torch.uint8).numpy().tobytes()


def _run(widget, handler, seq) -> None:
    """Call ``handler``; report an error in ``widget.status`` (where the learner looks); acknowledge ``seq``."""
    with widget.hold_sync():  # the answer and its acknowledgement go to the browser in one message
        try:
            handler()
        except Exception as err:  # shown in the widget; the callback's caller is the browser, not the learner
            widget.error = f"{type(err).__name__}: {err}"
        else:
            widget.error = ""
        finally:
            widget.frame = seq


class PointerFigure(anywidget.AnyWidget):
    """A figure drawn once, and a pointer on it. ``mode``: ``"xy"`` (a point), ``"x"`` (a position along x, e.g. a
    time ``t``) or ``"none"`` (display only). ``clamp``: per coordinate ``[low, high]``, or empty."""

    _esm = POINTER_FIGURE_ESM
    title = traitlets.Unicode("").tag(sync=True)
    background = traitlets.Bytes(b"").tag(sync=True)  # PNG of the figure, drawn once
    regions = traitlets.List().tag(sync=True)  # figure_regions(...)
    mode = traitlets.Unicode("xy").tag(sync=True)
    clamp = traitlets.List().tag(sync=True)
    pixel_ratio = traitlets.Int(PIXEL_RATIO).tag(sync=True)
    step = traitlets.Float(0.05).tag(sync=True)  # how far an arrow key moves the point, in data units
    # [seq, x(, y)], set by the browser; not echoed back to it (the answer, frame = seq, says it arrived)
    pointer = traitlets.List().tag(sync=True, echo_update=False)
    frame = traitlets.Int(0).tag(sync=True)  # the seq of the last pointer handled
    overlay = traitlets.Dict().tag(sync=True)  # marker [x, y], ellipse {center, radii}, trail [[x, y], ...], vline x
    panels = traitlets.Bytes(b"").tag(sync=True)  # images, uint8, panel_side**2 bytes each
    panel_side = traitlets.Int(28).tag(sync=True)
    panel_scale = traitlets.Int(PANEL_SCALE).tag(sync=True)
    captions = traitlets.List(traitlets.Unicode()).tag(sync=True)  # one per panel
    status = traitlets.Unicode("").tag(sync=True)
    error = traitlets.Unicode("").tag(sync=True)

    def set_figure(self, fig, axes) -> None:
        """Show ``fig`` (then closed) as the background; ``axes`` are the regions that take the pointer."""
        self.background, self.regions = figure_background(fig, axes)

    def show_images(self, images, captions) -> None:
        """Show flattened square images ``[D]`` in [0, 1] with a caption each (the same number of both)."""
        images = list(images)
        if len(images) != len(captions):
            _checks.fail("captions", f"one caption per image ({len(images)})", len(captions))
        with self.hold_sync():
            self.panel_side = image_side(images[0].numel())
            self.panels = image_bytes(*images)
            self.captions = list(captions)

    def on_point(self, handler) -> None:
        """Call ``handler(value)`` with the pointed coordinates (a list of 1 or 2 floats) at every pointer move."""
        def changed(change):
            seq, *value = change["new"]
            _run(self, lambda: handler([float(v) for v in value]), int(seq))
        self.observe(changed, names="pointer")

    def point_at(self, *value: float) -> None:
        """Point at ``value`` from Python, exactly as a click in the browser does (notebooks and tests)."""
        self.pointer = [self.frame + 1, *[float(v) for v in value]]


def panel_pixels(widget: PointerFigure, k: int = 0) -> np.ndarray:
    """The grey levels in [0, 1] of panel ``k`` as the browser draws them, ``[side, side]`` (for tests)."""
    n = widget.panel_side
    data = np.frombuffer(widget.panels, dtype=np.uint8)[k * n * n:(k + 1) * n * n]
    return data.reshape(n, n) / 255.0


class DrawPad(anywidget.AnyWidget):
    """A ``side x side`` pad shown ``scale`` times larger; ``brush`` is the stroke width in pad pixels."""

    _esm = DRAW_PAD_ESM
    side = traitlets.Int(28).tag(sync=True)
    scale = traitlets.Int(8).tag(sync=True)
    brush = traitlets.Float(2.2).tag(sync=True)
    caption = traitlets.Unicode("draw a digit here").tag(sync=True)
    # {"seq": n, "pixels": [side * side ints in 0..255]}, from the browser; not echoed back
    drawing = traitlets.Dict().tag(sync=True, echo_update=False)
    loaded = traitlets.List().tag(sync=True)  # an image put on the pad from Python (0..255)
    frame = traitlets.Int(0).tag(sync=True)
    error = traitlets.Unicode("").tag(sync=True)

    def on_drawing(self, handler) -> None:
        """Call ``handler(x)`` with the drawing as ``x [side * side]`` in [0, 1] whenever it changes."""
        def changed(change):
            new = change["new"]
            pixels = torch.tensor(new.get("pixels", []), dtype=torch.float32) / 255  # [side * side]
            _run(self, lambda: handler(pixels), int(new.get("seq", self.frame + 1)))
        self.observe(changed, names="drawing")

    def load(self, x: torch.Tensor) -> None:
        """Put image ``x [side * side]`` (in [0, 1]) on the pad, as if drawn; the handler runs at once."""
        _checks.tensor("x", x, ndim=1, low=0.0, high=1.0)
        if x.numel() != self.side**2:
            _checks.fail("x", f"{self.side ** 2} pixels (a {self.side} x {self.side} pad)", list(x.shape))
        grey = (x.detach().float() * 255).round().to(torch.int64).tolist()
        self.loaded = grey
        self.drawing = {"seq": self.frame + 1, "pixels": grey}
