"""The explorers, driven the way ipywidgets tests itself: build, act as the learner does, assert the effect.

For the pointer explorers "acting" is what the browser does: it sets the widget's ``pointer`` trait to
``[seq, x, y]`` in data coordinates (``move_to`` does exactly that), or the pad's ``drawing``; the kernel's answer
is in the explorer's state and in the bytes the browser draws. Small untrained models on random 8x8 "images" are
enough: what is tested is the wiring (the right z is decoded, the panel shows it, errors are shown), not what a
trained model shows. The real browser is tested in ``test_browser.py``.
"""

import inspect
import io
import math

import matplotlib

matplotlib.use("Agg")

import ipywidgets  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from vae_lesson import VAE  # noqa: E402
from vae_lesson.views import drawing, pointer  # noqa: E402
from vae_lesson.views import widgets as explorers  # noqa: E402
from vae_lesson.views.drawing import draw_digit  # noqa: E402
from vae_lesson.views.latent_views import center_like_mnist, latent_activity, lerp, slerp  # noqa: E402
from vae_lesson.views.pointer import DrawPad, PointerFigure, figure_regions, panel_pixels  # noqa: E402
from vae_lesson.views.widgets import latent_interpolation, latent_plane, latent_sliders, posterior_viewer  # noqa: E402


def teardown_function():
    plt.close("all")


@pytest.fixture(scope="module")
def data():
    X = torch.rand(120, 64, generator=torch.Generator().manual_seed(0))  # [120, 64] pixels in [0, 1]
    return X, torch.arange(120) % 10


def make_vae(latent_dim, seed=0):
    torch.manual_seed(seed)
    return VAE(64, latent_dim, hidden_dims=(16,)).eval()


def decode(model, z):
    with torch.no_grad():
        return torch.sigmoid(model.decode(z.reshape(1, -1)))[0]


def png_pixels(png: bytes) -> np.ndarray:
    """The grey levels of a PNG shown by an Image widget, shrunk back to one value per image pixel, in [0, 1]."""
    grey = np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=np.float64) / 255
    return grey[::explorers.PIXEL_SCALE, ::explorers.PIXEL_SCALE]


def encodings(model, X):
    with torch.no_grad():
        return model.encode(X)


def test_builders_return_containers_and_never_display(data):
    X, y = data
    built = [latent_sliders(make_vae(3), X, y), latent_plane(make_vae(2), X, y),
             latent_interpolation(make_vae(3), X, y), posterior_viewer(make_vae(2), X, y),
             draw_digit(make_vae(2), X, y)]
    for explorer in built:
        assert isinstance(explorer.container, ipywidgets.VBox)
        assert explorer.output in explorer.container.children
    for explorer in built[1:]:
        assert explorer.canvas.background.startswith(b"\x89PNG")  # the figure, drawn once at build time
        assert explorer.canvas.regions and explorer.canvas.captions
    for module in (explorers, drawing, pointer):
        source = inspect.getsource(module)
        assert "display(" not in source and "interact(" not in source


# --- sliders ---------------------------------------------------------------------------------------------------

def test_sliders_are_ranked_by_activity_and_start_at_an_encoding(data):
    X, y = data
    model = make_vae(4)
    sliders = latent_sliders(model, X, y, digit=5, limit=10.0)
    mu, _ = encodings(model, X)
    activity = latent_activity(mu)
    assert torch.equal(sliders.activity, activity)
    assert sorted(sliders.dims) == [0, 1, 2, 3]
    assert activity[sliders.dims].tolist() == sorted(activity.tolist(), reverse=True)
    assert [s.description for s in sliders.sliders] == [f"z{j + 1}" for j in sliders.dims]
    assert torch.allclose(sliders.current_z(), mu[5:6])
    text = " ".join(child.value for row in sliders.container.children[1].children[0].children
                    for child in row.children if isinstance(child, ipywidgets.HTML))
    assert f"A = {activity[sliders.dims[0]]:.2f}" in text, "the activity is on screen, not in a tooltip"


def test_moving_a_slider_decodes_the_chosen_z_and_shows_its_value(data):
    X, y = data
    model = make_vae(3)
    sliders = latent_sliders(model, X, y)
    before = sliders.image.value
    sliders.sliders[0].value = -1.39
    z = sliders.current_z()
    assert z[0, sliders.dims[0]] == pytest.approx(-1.39)
    assert torch.allclose(sliders.pixels, decode(model, z))
    assert sliders.image.value != before
    assert np.allclose(png_pixels(sliders.image.value), sliders.pixels.reshape(8, 8).numpy(), atol=2 / 255)
    assert "\u22121.39" in sliders.readouts[0].value  # the whole number, with a true minus sign


def test_choosing_a_digit_moves_the_sliders_and_the_decode(data):
    X, y = data
    model = make_vae(3)
    sliders = latent_sliders(model, X, y, limit=0.5)  # ranges widen to hold every encoding
    sliders.sliders[1].value = -0.4
    before = sliders.image.value
    sliders.digit.value = 17
    mu, _ = encodings(model, X)
    assert np.allclose(png_pixels(sliders.original.value), X[17].reshape(8, 8).numpy(), atol=2 / 255)
    assert torch.allclose(sliders.current_z(), mu[17:18])
    assert torch.allclose(sliders.pixels, model.reconstruct(X[17:18])[0])
    assert sliders.image.value != before, "the decoded image follows the test digit's number"
    sliders.sliders[0].value = 0.3
    sliders.reset.click()
    assert torch.allclose(sliders.current_z(), mu[17:18])


def test_max_sliders_keeps_the_other_dimensions_at_the_encoding(data):
    X, y = data
    model = make_vae(4)
    sliders = latent_sliders(model, X, y, digit=3, max_sliders=2)
    mu, _ = encodings(model, X)
    assert len(sliders.sliders) == 2
    sliders.sliders[0].value = 0.5
    hidden = [j for j in range(4) if j not in sliders.dims]
    assert torch.allclose(sliders.current_z()[0, hidden], mu[3, hidden])


def test_errors_in_callbacks_appear_in_the_output(data, monkeypatch):
    X, y = data
    model = make_vae(3)
    sliders = latent_sliders(model, X, y)
    plane_model = make_vae(2)
    plane = latent_plane(plane_model, X, y)

    def broken(z):
        raise RuntimeError("the decoder is broken")

    monkeypatch.setattr(model, "decode", broken)
    monkeypatch.setattr(plane_model, "decode", broken)
    sliders.sliders[0].value = 0.5  # must not raise here
    plane.move_to(0.5, 0.5)
    for explorer in (sliders, plane):
        assert "RuntimeError: the decoder is broken" in explorer.output.outputs[0]["text"]
    assert plane.canvas.frame == 1, "the browser still gets its answer (no request left hanging)"
    monkeypatch.undo()
    sliders.sliders[0].value = 0.25
    plane.move_to(0.25, 0.25)
    assert sliders.output.outputs == () and plane.output.outputs == ()
    assert torch.allclose(plane.pixels, decode(plane_model, torch.tensor([0.25, 0.25])))


# --- pointer explorers -----------------------------------------------------------------------------------------

def test_a_click_on_the_plane_decodes_the_pointed_z(data):
    X, y = data
    model = make_vae(2)
    plane = latent_plane(model, X, y, digit=4)
    mu, _ = encodings(model, X)
    assert plane.point.tolist() == pytest.approx(mu[4].tolist(), abs=1e-6)
    assert plane.canvas.overlay["marker"] == pytest.approx(mu[4].tolist(), abs=1e-6)
    plane.canvas.pointer = [7, 1.5, -2.0]  # what the browser sends: [seq, z1, z2]
    assert plane.canvas.frame == 7, "the answer acknowledges the browser's request"
    assert plane.point.tolist() == pytest.approx([1.5, -2.0])
    assert torch.allclose(plane.pixels, decode(model, torch.tensor([1.5, -2.0])))
    assert np.allclose(panel_pixels(plane.canvas), plane.pixels.reshape(8, 8).numpy(), atol=0.5 / 255)
    assert plane.canvas.overlay == {"marker": pytest.approx([1.5, -2.0])}
    assert "\u22122.00" in plane.canvas.captions[0]
    decodes = plane.decodes
    for k in range(10):  # a drag: every move decodes once
        plane.move_to(0.1 * k, 0.0)
    assert plane.decodes == decodes + 10
    plane.digit.value = 9
    assert plane.point.tolist() == pytest.approx(mu[9].tolist(), abs=1e-6)


def test_the_plane_is_drawn_once(data, monkeypatch):
    X, y = data
    plane = latent_plane(make_vae(2), X, y)
    background = plane.canvas.background
    calls = []
    monkeypatch.setattr(plt, "figure", lambda *a, **k: calls.append(1))
    monkeypatch.setattr(plt, "subplots", lambda *a, **k: calls.append(1))
    for k in range(5):
        plane.move_to(k / 5, -k / 5)
    assert calls == [] and plane.canvas.background is background, "a move only decodes"


def test_figure_regions_map_pixels_to_data():
    fig, ax = plt.subplots(figsize=(4, 3), dpi=50)
    ax.set(xlim=(-2, 2), ylim=(-1, 3))
    png, regions = pointer.figure_background(fig, [ax])
    width, height = Image.open(io.BytesIO(png)).size
    assert (width, height) == (4 * pointer.FIGURE_DPI, 3 * pointer.FIGURE_DPI)
    (region,) = regions
    assert region["xlim"] == [-2, 2] and region["ylim"] == [-1, 3]
    assert 0 <= region["x0"] < region["x1"] <= width and 0 <= region["y0"] < region["y1"] <= height
    fig, ax = plt.subplots(figsize=(4, 3))
    fig.canvas.draw()
    box = ax.get_window_extent()
    scale = pointer.FIGURE_DPI / fig.dpi
    assert figure_regions(fig, [ax])[0]["y0"] == pytest.approx(3 * pointer.FIGURE_DPI - box.y1 * scale)


def test_interpolation_follows_t_on_the_strips(data):
    X, y = data
    model = make_vae(3)
    walk = latent_interpolation(model, X, y, digits=(2, 11), n_steps=3)
    mu, _ = encodings(model, X)
    strip, _, norm = walk.canvas.regions
    assert norm["xlim"] == pytest.approx([0, 1], abs=0.05)  # the norm plot's x axis is t
    assert strip["xlim"][0] < 0 < 1 < strip["xlim"][1]  # the strip's image columns, as values of t
    walk.move_to(0.0)
    assert torch.allclose(walk.linear, model.reconstruct(X[2:3])[0], atol=1e-6)
    assert torch.allclose(walk.spherical, model.reconstruct(X[2:3])[0], atol=1e-6)
    walk.move_to(1.7)  # beyond the end: t stays in [0, 1]
    assert walk.t.value == 1.0
    assert torch.allclose(walk.linear, model.reconstruct(X[11:12])[0], atol=1e-6)
    walk.move_to(0.3141)
    assert walk.t.value == pytest.approx(0.314)
    assert torch.allclose(walk.linear, decode(model, lerp(mu[2], mu[11], 0.314)))
    assert torch.allclose(walk.spherical, decode(model, slerp(mu[2], mu[11], 0.314)))
    assert np.allclose(panel_pixels(walk.canvas, 1), walk.spherical.reshape(8, 8).numpy(), atol=0.5 / 255)
    assert walk.canvas.overlay == {"vline": pytest.approx(0.314)}
    walk.t.value = 0.5  # the slider moves the line as well
    assert walk.canvas.overlay == {"vline": 0.5}
    background = walk.canvas.background
    walk.digit_a.value = 30
    assert torch.equal(walk.z_a, mu[30]) and torch.equal(walk.z_b, mu[11])
    assert walk.canvas.background != background, "a new pair redraws the strips"


def test_posterior_viewer_picks_the_nearest_encoding(data):
    X, y = data
    model = make_vae(2)
    viewer = posterior_viewer(model, X, y, digit=6, generator=torch.Generator().manual_seed(0))
    mu, logvar = encodings(model, X)

    def ellipse():
        return next(p for p in viewer.figure.axes[0].patches if p.get_gid() == "posterior")

    for i in (6, 40):
        viewer.move_to(*(mu[i] + 1e-4).tolist())
        assert viewer.digit.value == i
        sigma = torch.exp(0.5 * logvar[i])  # σ = sqrt(exp(logvar))
        assert ellipse().center == pytest.approx(mu[i].tolist(), abs=1e-6)
        assert (ellipse().width, ellipse().height) == pytest.approx((4 * sigma).tolist(), rel=1e-5)
        assert viewer.canvas.overlay["ellipse"]["radii"] == pytest.approx((2 * sigma).tolist(), rel=1e-5)
        assert np.allclose(panel_pixels(viewer.canvas), X[i].reshape(8, 8).numpy(), atol=0.5 / 255)
    viewer.digit.value = 3
    assert viewer.canvas.overlay["ellipse"]["center"] == pytest.approx(mu[3].tolist(), abs=1e-6)
    again = posterior_viewer(model, X, y, generator=torch.Generator().manual_seed(0))
    assert torch.equal(viewer.samples, again.samples) and viewer.samples.shape == (120, 2)
    assert plt.get_fignums() == [], "reading viewer.figure shows no figure"


def test_posterior_viewer_picks_the_two_most_active_dimensions(data):
    X, y = data
    model = make_vae(4, seed=3)
    viewer = posterior_viewer(model, X, y)
    mu, logvar = encodings(model, X)
    top = torch.argsort(latent_activity(mu), descending=True)[:2].tolist()
    assert viewer.dims == tuple(sorted(top))
    i, j = viewer.dims
    ellipse = next(p for p in viewer.figure.axes[0].patches if p.get_gid() == "posterior")
    assert ellipse.width == pytest.approx(4 * math.exp(0.5 * logvar[0, i].item()), rel=1e-5)
    assert viewer.figure.axes[0].get_xlabel() == f"$z_{{{i + 1}}}$"
    assert viewer.figure.axes[0].get_ylabel() == f"$z_{{{j + 1}}}$"


# --- drawing ---------------------------------------------------------------------------------------------------

def test_drawing_encodes_what_the_encoder_sees(data):
    X, y = data
    model = make_vae(2)
    drawer = draw_digit(model, X, y)
    assert drawer.canvas.overlay == {} and drawer.trail == []  # an empty pad: nothing encoded
    stroke = torch.zeros(8, 8)
    stroke[1:4, 5] = 1.0  # a short bar, top right
    for k, grey in enumerate(range(60, 256, 60), start=1):  # the browser sends the pad while you draw
        drawer.pad.drawing = {"seq": k, "pixels": (stroke.reshape(-1) * grey).round().int().tolist()}
        x = center_like_mnist(stroke.reshape(-1) * (round(grey) / 255))
        mu, logvar = encodings(model, x[None])
        assert drawer.pad.frame == k
        assert torch.allclose(drawer.x, x, atol=1e-6)
        assert torch.allclose(drawer.mu, mu[0]) and torch.allclose(drawer.logvar, logvar[0])
        assert torch.allclose(drawer.pixels, decode(model, mu[0]))
        assert drawer.canvas.overlay["ellipse"]["center"] == pytest.approx(mu[0].tolist(), abs=1e-6)
        assert drawer.canvas.overlay["ellipse"]["radii"] == pytest.approx((2 * torch.exp(0.5 * logvar[0])).tolist())
    assert len(drawer.trail) == 4, "the trail of the means since the pad was cleared"
    assert np.allclose(panel_pixels(drawer.canvas, 0), drawer.x.reshape(8, 8).numpy(), atol=0.5 / 255)
    drawer.center.value = False  # the same drawing, as drawn
    assert torch.allclose(drawer.x, stroke.reshape(-1) * (round(240) / 255), atol=1e-6)
    drawer.pad.drawing = {"seq": 9, "pixels": [0] * 64}  # "clear the pad"
    assert drawer.trail == [] and drawer.canvas.overlay == {}
    drawer.digit.value = 5
    drawer.put.click()
    assert torch.allclose(drawer.x, X[5], atol=0.5 / 255)
    assert drawer.pad.loaded == (X[5] * 255).round().int().tolist()


def test_center_like_mnist_scales_and_centres():
    image = torch.zeros(28, 28)
    image[2:8, 20:23] = 1.0  # a small bar in the top right corner
    x = center_like_mnist(image.reshape(-1)).reshape(28, 28)
    rows, cols = torch.nonzero(x > 0.05, as_tuple=True)
    assert rows.max() - rows.min() + 1 == pytest.approx(20, abs=1)  # the taller side fills the 20-pixel box
    mass = x.sum()
    centre = ((x.sum(1) * torch.arange(28)).sum() / mass, (x.sum(0) * torch.arange(28)).sum() / mass)
    assert centre[0] == pytest.approx(13.5, abs=0.6) and centre[1] == pytest.approx(13.5, abs=0.6)
    shifted = torch.roll(image, shifts=(10, -12), dims=(0, 1))
    assert torch.allclose(center_like_mnist(shifted.reshape(-1)), x.reshape(-1)), "where you draw does not matter"
    assert torch.equal(center_like_mnist(torch.zeros(784)), torch.zeros(784))


def test_draw_pad_load_checks_its_image():
    pad = DrawPad(side=8)
    with pytest.raises(ValueError, match="x: expected 64 pixels"):
        pad.load(torch.zeros(49))
    with pytest.raises(ValueError, match="x: expected .*<= 1.0"):
        pad.load(torch.full((64,), 2.0))


def test_pointer_figure_shows_images_with_captions():
    canvas = PointerFigure()
    with pytest.raises(ValueError, match="captions: expected one caption per image"):
        canvas.show_images([torch.zeros(4)], ["a", "b"])
    canvas.show_images([torch.zeros(4), torch.ones(4)], ["a", "b"])
    assert canvas.panel_side == 2 and canvas.panels == bytes([0] * 4 + [255] * 4)


# --- bad input -------------------------------------------------------------------------------------------------

def test_argument_errors(data):
    X, y = data
    with pytest.raises(ValueError, match="digit: expected an index of a test image, 0 to 119"):
        latent_sliders(make_vae(3), X, y, digit=120)
    with pytest.raises(TypeError, match="X: expected a torch.Tensor"):
        latent_sliders(make_vae(3), X.numpy(), y)
    with pytest.raises(ValueError, match="y: expected one label per image of X"):
        latent_sliders(make_vae(3), X, y[:10])
    with pytest.raises(TypeError, match="model: expected a vae_lesson.VAE"):
        latent_sliders(object(), X, y)
    with pytest.raises(ValueError, match="model: expected a model with latent_dim = 2"):
        latent_plane(make_vae(3), X, y)
    with pytest.raises(TypeError, match="digits: expected two indices"):
        latent_interpolation(make_vae(3), X, y, digits=4)
    with pytest.raises(ValueError, match="digits\\[1\\]: expected an index"):
        latent_interpolation(make_vae(3), X, y, digits=(0, 500))
    with pytest.raises(TypeError, match="dims: expected two different latent dimensions"):
        posterior_viewer(make_vae(3), X, y, dims=(1, 1))
    with pytest.raises(ValueError, match="dims\\[1\\]: expected an index"):
        posterior_viewer(make_vae(3), X, y, dims=(0, 3))
    with pytest.raises(TypeError, match="y: expected integer labels for draw_digit"):
        draw_digit(make_vae(2), X, ["cat"] * 120)
    with pytest.raises(TypeError, match="center: expected True or False"):
        draw_digit(make_vae(2), X, y, center="yes")
    with pytest.raises(ValueError, match="model: expected a model with latent_dim >= 2"):
        draw_digit(make_vae(1), X, y)
