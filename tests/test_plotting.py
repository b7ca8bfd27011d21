"""Plotting functions return figures that show what they claim (checked on the figure's data, not by eye)."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from vae_lesson import VAE, History  # noqa: E402
from vae_lesson.views.plotting import (  # noqa: E402  # noqa: E402
    latent_grid,
    plot_history,
    plot_latent_scatter,
    show_images,
    show_latent_grid,
    show_panels,
    tile,
)


def teardown_function():
    plt.close("all")


def test_tile_places_images_in_rows():
    images = torch.arange(4).float().repeat_interleave(4).reshape(4, 4) / 3  # four 2x2 constant images
    canvas = tile(images, ncols=2)
    assert canvas.shape == (5, 5)
    assert canvas[0, 0] == 0 and canvas[0, 3] == pytest.approx(1 / 3) and canvas[3, 0] == pytest.approx(2 / 3)


def test_show_images_titles_and_labels():
    fig = show_images(torch.rand(5, 16), ncols=3, labels=[1, 2, 3, 4, 5], title="five")
    assert fig._suptitle.get_text() == "five"
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[:5] == ["1", "2", "3", "4", "5"]
    with pytest.raises(ValueError, match="images: expected flattened square images"):
        show_images(torch.rand(2, 15))


def test_show_panels_tiles_each_panel_under_its_title():
    first, second = torch.rand(3, 16), torch.rand(7, 16)
    fig = show_panels({"first": first, "second": second}, ncols=5, title="two")
    assert fig._suptitle.get_text() == "two" and [ax.get_title() for ax in fig.axes] == ["first", "second"]
    assert np.array_equal(fig.axes[1].images[0].get_array(), tile(second, 5))  # 2 rows of 5, 4x4 pixels
    assert fig.axes[0].get_subplotspec().get_geometry()[:2] == (2, 1)  # stacked
    fig = show_panels({"a": first, "b": second}, ncols=5, side_by_side=True)
    assert fig.axes[0].get_subplotspec().get_geometry()[:2] == (1, 2)  # one row of panels
    with pytest.raises(TypeError, match="panels: expected a non-empty dict"):
        show_panels({})
    with pytest.raises(ValueError, match=r"panels\['bad'\]: expected a 2-D tensor"):
        show_panels({"bad": torch.rand(16)})


def test_latent_grid_orientation():
    z = latent_grid(-1.0, 1.0, 3)
    assert z.shape == (9, 2)
    assert z[0].tolist() == [-1.0, 1.0]  # top-left: smallest z1, largest z2
    assert z[2].tolist() == [1.0, 1.0]
    assert z[-1].tolist() == [1.0, -1.0]


def test_show_latent_grid_decodes_the_plane():
    model = VAE(16, 2, hidden_dims=(8,))
    fig = show_latent_grid(model, -2, 2, n=3, title="grid")
    ax = fig.axes[0]
    shown = ax.images[0].get_array()
    expected = tile(torch.sigmoid(model.decode(latent_grid(-2, 2, 3))), 3)
    assert np.allclose(shown, expected)
    assert ax.get_xlabel() == "$z_1$" and ax.get_title() == "grid"
    with pytest.raises(ValueError, match="latent_dim = 2"):
        show_latent_grid(VAE(16, 3))


def test_latent_scatter_colours_by_label():
    z = torch.randn(30, 2)
    labels = np.arange(30) % 3
    fig = plot_latent_scatter(z, labels, title="codes")
    ax = fig.axes[0]
    assert len(ax.collections) == 3 and ax.get_legend() is not None
    assert sum(len(c.get_offsets()) for c in ax.collections) == 30
    with pytest.raises(ValueError, match=r"z: expected shape \[n, 2\]"):
        plot_latent_scatter(torch.randn(5, 3))


def test_plot_history_signs():
    history = History(reconstruction=[-100.0, -90.0], kl=[5.0, 6.0], elbo=[-105.0, -96.0])
    fig = plot_history(history)
    lines = [ax.lines[0].get_ydata().tolist() for ax in fig.axes]
    assert lines == [[100.0, 90.0], [5.0, 6.0], [105.0, 96.0]]
    assert all(ax.get_ylabel() == "nats per example" for ax in fig.axes)


def test_figure_png_closes_the_figure():
    import matplotlib.pyplot as plt

    from vae_lesson.views.plotting import figure_png

    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    before = len(plt.get_fignums())
    png = figure_png(fig)
    assert png.startswith(b"\x89PNG") and len(plt.get_fignums()) == before - 1


def test_errors_shown_in_the_output():
    import ipywidgets as widgets

    from vae_lesson.views.plotting import errors_shown_in

    output, calls = widgets.Output(), []

    def update():
        calls.append(1)
        if len(calls) == 2:
            raise ValueError("t: expected 1..10, got 11")

    run = errors_shown_in(output, update)
    run()  # built: no error
    run({"new": 11})  # a change event: the error is shown, not raised
    assert "ValueError: t: expected 1..10, got 11" in output.outputs[0]["text"]
    calls.pop()
    run({"new": 11})  # the same error again: shown once, not piled up
    assert len(output.outputs) == 1 and output.outputs[0]["text"].count("ValueError") == 1
    run({"new": 3})  # success clears it
    assert output.outputs == ()
    calls.clear()
    calls.append(0)
    with pytest.raises(ValueError, match="expected 1..10"):
        run()  # called directly (no event): raised at once
