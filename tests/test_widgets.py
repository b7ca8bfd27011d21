"""The explorers, driven the way ipywidgets tests itself: build, set a control's value, assert the effect.

Small untrained models on random 8x8 "images" are enough: what is tested is the wiring (the right z is decoded,
the marker moves, the ellipse is q(z|x)), not what a trained model shows.
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
from vae_lesson.views import widgets as explorers  # noqa: E402
from vae_lesson.views.latent_views import latent_activity  # noqa: E402
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
             latent_interpolation(make_vae(3), X, y), posterior_viewer(make_vae(2), X, y)]
    for explorer in built:
        assert isinstance(explorer.container, ipywidgets.VBox)
        assert explorer.output in explorer.container.children
        assert explorer.image.value  # a first picture is drawn at build time
    source = inspect.getsource(explorers)
    assert "display(" not in source and "interact(" not in source


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


def test_moving_a_slider_decodes_the_chosen_z(data):
    X, y = data
    model = make_vae(3)
    sliders = latent_sliders(model, X, y)
    before = sliders.image.value
    sliders.sliders[0].value = 1.75
    z = sliders.current_z()
    assert z[0, sliders.dims[0]] == pytest.approx(1.75)
    assert torch.allclose(sliders.pixels, decode(model, z))
    assert sliders.image.value != before
    assert np.allclose(png_pixels(sliders.image.value), sliders.pixels.reshape(8, 8).numpy(), atol=2 / 255)


def test_reset_goes_to_the_chosen_digits_encoding(data):
    X, y = data
    model = make_vae(3)
    sliders = latent_sliders(model, X, y, limit=0.5)  # ranges widen to hold every encoding
    sliders.sliders[1].value = -0.4
    sliders.digit.value = 17
    assert np.allclose(png_pixels(sliders.original.value), X[17].reshape(8, 8).numpy(), atol=2 / 255)
    sliders.reset.click()
    mu, _ = encodings(model, X)
    assert torch.allclose(sliders.current_z(), mu[17:18])
    assert torch.allclose(sliders.pixels, model.reconstruct(X[17:18])[0])


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

    def broken(z):
        raise RuntimeError("the decoder is broken")

    monkeypatch.setattr(model, "decode", broken)
    sliders.sliders[0].value = 0.5  # must not raise here
    assert "RuntimeError: the decoder is broken" in sliders.output.outputs[0]["text"]
    monkeypatch.undo()
    sliders.sliders[0].value = 0.25
    assert sliders.output.outputs == ()


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


def marker_position(figure):
    marker = next(line for line in figure.axes[0].lines if line.get_gid() == "marker")
    return marker.get_xdata()[0], marker.get_ydata()[0]


def test_latent_plane_marker_follows_the_sliders(data):
    X, y = data
    model = make_vae(2)
    plane = latent_plane(model, X, y, digit=4)
    mu, _ = encodings(model, X)
    assert marker_position(plane.figure) == pytest.approx(mu[4].tolist(), abs=1e-6)
    before = plane.image.value
    plane.z1.value, plane.z2.value = 1.5, -2.0
    assert marker_position(plane.figure) == pytest.approx((1.5, -2.0))
    assert torch.allclose(plane.pixels, decode(model, torch.tensor([1.5, -2.0])))
    shown = plane.figure.axes[1].images[0].get_array()
    assert np.allclose(shown, plane.pixels.reshape(8, 8).numpy())
    assert plane.image.value != before
    plane.digit.value = 9
    plane.jump.click()
    assert plane.point.tolist() == pytest.approx(mu[9].tolist(), abs=1e-6)


def test_interpolation_endpoints_decode_to_the_reconstructions(data):
    X, y = data
    model = make_vae(3)
    walk = latent_interpolation(model, X, y, digits=(2, 11), n_steps=3)
    walk.t.value = 0.0
    assert torch.allclose(walk.linear, model.reconstruct(X[2:3])[0], atol=1e-6)
    assert torch.allclose(walk.spherical, model.reconstruct(X[2:3])[0], atol=1e-6)
    walk.t.value = 1.0
    assert torch.allclose(walk.linear, model.reconstruct(X[11:12])[0], atol=1e-6)
    assert torch.allclose(walk.spherical, model.reconstruct(X[11:12])[0], atol=1e-6)
    walk.digit_a.value = 30
    mu, _ = encodings(model, X)
    assert torch.equal(walk.z_a, mu[30]) and torch.equal(walk.z_b, mu[11])
    assert torch.allclose(walk.linear, model.reconstruct(X[11:12])[0], atol=1e-6)  # still at t = 1


def test_posterior_viewer_ellipse_is_q_of_z_given_x(data):
    X, y = data
    model = make_vae(2)
    viewer = posterior_viewer(model, X, y, digit=6, generator=torch.Generator().manual_seed(0))
    mu, logvar = encodings(model, X)

    def ellipse():
        return next(p for p in viewer.figure.axes[0].patches if p.get_gid() == "posterior")

    for i in (6, 40):
        viewer.digit.value = i
        sigma = torch.exp(0.5 * logvar[i])  # σ = sqrt(exp(logvar))
        assert ellipse().center == pytest.approx(mu[i].tolist(), abs=1e-6)
        assert (ellipse().width, ellipse().height) == pytest.approx((4 * sigma).tolist(), rel=1e-5)
    again = posterior_viewer(model, X, y, generator=torch.Generator().manual_seed(0))
    assert torch.equal(viewer.samples, again.samples) and viewer.samples.shape == (120, 2)


def test_posterior_viewer_picks_the_two_most_active_dimensions(data):
    X, y = data
    model = make_vae(4, seed=3)
    viewer = posterior_viewer(model, X, y)
    mu, logvar = encodings(model, X)
    top = torch.argsort(latent_activity(mu), descending=True)[:2].tolist()
    assert viewer.dims == tuple(sorted(top))
    i, j = viewer.dims
    assert ellipse_width(viewer) == pytest.approx(4 * math.exp(0.5 * logvar[0, i].item()), rel=1e-5)
    assert viewer.figure.axes[0].get_xlabel() == f"$z_{{{i + 1}}}$"
    assert viewer.figure.axes[0].get_ylabel() == f"$z_{{{j + 1}}}$"


def ellipse_width(viewer):
    return next(p for p in viewer.figure.axes[0].patches if p.get_gid() == "posterior").width
