"""β-VAE helpers: rate and distortion against torch.distributions, traversals by hand, and the β-switcher widget
driven the way ipywidgets tests itself (set the control's value, check what is shown)."""

import math

import matplotlib
import matplotlib.pyplot as plt
import pytest
import torch
from torch.distributions import Bernoulli, Normal, kl_divergence

from vae_lesson import VAE
from vae_lesson.beta_vae import (
    RateDistortion,
    beta_decodes,
    beta_switcher,
    latent_traversal,
    plot_rate_distortion,
    rate_distortion,
    render_beta_decodes,
)
from vae_lesson.plotting import tile

matplotlib.use("Agg")


def make(seed, input_dim=16, latent_dim=3):
    torch.manual_seed(seed)
    return VAE(input_dim, latent_dim, hidden_dims=(8,)).eval()


@pytest.fixture
def models():
    return {0.5: make(0), 1.0: make(1), 4.0: make(2)}


X = torch.rand(5, 16, generator=torch.Generator().manual_seed(3)).round()  # [5, 16], binary pixels
Z = torch.randn(6, 3, generator=torch.Generator().manual_seed(4))  # [6, 3]


def test_rate_and_distortion_match_torch_distributions():
    model = make(0)
    point = rate_distortion(model, X, n_samples=4000, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        mu, logvar = model.encode(X)
        q = Normal(mu, torch.exp(0.5 * logvar))
        rate = kl_divergence(q, Normal(torch.zeros_like(mu), torch.ones_like(mu))).sum(-1).mean()
        log_px_z = Bernoulli(logits=model.decode(q.sample((4000,)))).log_prob(X).sum(-1)  # [4000, 5]
    assert abs(point.rate - rate.item()) < 1e-4
    se = (log_px_z.std(0) / math.sqrt(4000)).pow(2).mean().sqrt().item()  # of the mean over images
    assert abs(point.distortion + log_px_z.mean().item()) < 6 * se + 1e-3
    assert abs(point.elbo + point.rate + point.distortion) < 1e-4, "-ELBO = R + D"


def test_latent_traversal_decodes_each_coordinate_sweep():
    model = make(0)
    z = Z[0]
    values = [-2.0, 0.0, 3.0]
    pixels = latent_traversal(model, z, dims=[2, 0], values=values)
    assert pixels.shape == (6, 16)
    for row, j in enumerate([2, 0]):
        for col, v in enumerate(values):
            code = z.clone()
            code[j] = v
            expected = torch.sigmoid(model.decode(code[None]))[0]
            assert torch.allclose(pixels[row * 3 + col], expected, atol=1e-6)
    with pytest.raises(ValueError, match="dims"):
        latent_traversal(model, z, dims=[3], values=values)
    with pytest.raises(ValueError, match="z"):
        latent_traversal(model, Z, dims=[0], values=values)


def test_beta_decodes_are_the_chosen_models_decodes(models):
    samples, reconstructions = beta_decodes(models, 4.0, Z, X)
    assert torch.allclose(samples, torch.sigmoid(models[4.0].decode(Z)).detach())
    mu, _ = models[4.0].encode(X)
    assert torch.allclose(reconstructions, torch.sigmoid(models[4.0].decode(mu)).detach())
    assert beta_decodes(models, 1.0, Z)[1] is None
    with pytest.raises(ValueError, match="beta"):
        beta_decodes(models, 2.0, Z)
    with pytest.raises(TypeError, match="models"):
        beta_decodes({}, 1.0, Z)


def test_render_shows_exactly_those_decodes(models):
    fig = render_beta_decodes(models, 0.5, Z, X, ncols=3)
    reconstructions_panel, samples_panel = fig.axes
    samples, reconstructions = beta_decodes(models, 0.5, Z, X)
    assert torch.allclose(torch.as_tensor(samples_panel.images[0].get_array().data), torch.as_tensor(tile(samples, 3)))
    shown = torch.as_tensor(reconstructions_panel.images[0].get_array().data)
    assert torch.allclose(shown, torch.as_tensor(tile(torch.cat([X, reconstructions]), 3)))
    assert "β = 0.5" in samples_panel.get_title()
    plt.close(fig)


def test_switcher_follows_its_control(models):
    switcher = beta_switcher(models, Z, X, ncols=3)
    assert switcher.control.value == 1.0, "starts at the middle beta"
    first_png = switcher.image.value
    assert first_png[:4] == b"\x89PNG"
    for beta in (4.0, 0.5):
        switcher.control.value = beta
        assert torch.allclose(switcher.samples, torch.sigmoid(models[beta].decode(Z)).detach())
        mu, _ = models[beta].encode(X)
        assert torch.allclose(switcher.reconstructions, torch.sigmoid(models[beta].decode(mu)).detach())
        assert switcher.image.value != first_png
        assert not switcher.output.outputs
    assert [value for _, value in switcher.control.options] == [0.5, 1.0, 4.0]
    assert switcher.container.children[1] is switcher.control


def test_switcher_without_test_digits_and_errors(models):
    switcher = beta_switcher(models, Z, beta=4.0)
    assert switcher.reconstructions is None
    assert torch.allclose(switcher.samples, torch.sigmoid(models[4.0].decode(Z)).detach())
    with pytest.raises(ValueError, match="z"):
        beta_switcher(models, Z[0])
    with pytest.raises(TypeError, match="models"):
        beta_switcher([make(0)], Z)


def test_plot_rate_distortion_draws_every_point():
    points = {0.5: RateDistortion(20.0, 90.0, -110.0), 1.0: RateDistortion(12.0, 95.0, -107.0),
              4.0: RateDistortion(3.0, 120.0, -123.0)}
    fig = plot_rate_distortion(points, zero_rate_distortion=200.0, distortion_floor=45.0)
    ax = fig.axes[0]
    xs, ys = ax.lines[3].get_data()  # the three slope segments come first, then the points
    assert list(xs) == [20.0, 12.0, 3.0] and list(ys) == [90.0, 95.0, 120.0]
    assert ax.get_xlabel().startswith("rate") and ax.get_ylabel().startswith("distortion")
    plt.close(fig)
    with pytest.raises(ValueError, match="points"):
        plot_rate_distortion({})
