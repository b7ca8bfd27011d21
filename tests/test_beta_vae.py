"""β-VAE helpers: rate and distortion against torch.distributions, traversals by hand, and the β-switcher widget
driven the way ipywidgets tests itself (set the control's value, check what is shown)."""

import math

import matplotlib
import matplotlib.pyplot as plt
import pytest
import torch
from torch.distributions import Bernoulli, Categorical, Independent, MixtureSameFamily, Normal, kl_divergence

from vae_lesson import VAE
from vae_lesson.variants.beta_vae import (
    RateDistortion,
    beta_decodes,
    beta_switcher,
    latent_traversal,
    plot_rate_distortion,
    rate_decomposition,
    rate_distortion,
    render_beta_decodes,
)
from vae_lesson.views.plotting import tile

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


# ------------------------------------------------------------------------------- R = I(x; z) + KL(q(z) || p(z))


def _codes(n, d=3, seed=0, spread=1.5):
    g = torch.Generator().manual_seed(seed)
    mu = spread * torch.randn(n, d, generator=g, dtype=torch.float64)
    logvar = 0.5 * torch.randn(n, d, generator=g, dtype=torch.float64) - 1.0
    return mu, logvar


def test_rate_decomposition_against_torch_distributions():
    mu, logvar = _codes(40)
    r = rate_decomposition(mu, logvar, n_samples=200, generator=torch.Generator().manual_seed(1))
    q_x = Normal(mu, torch.exp(0.5 * logvar))
    prior = Normal(torch.zeros_like(mu), torch.ones_like(mu))
    assert abs(r.rate - kl_divergence(q_x, prior).sum(-1).mean().item()) < 1e-10
    # an independent Monte Carlo estimate of KL(q(z) || p(z)) with torch's own mixture distribution
    mixture = MixtureSameFamily(Categorical(logits=torch.zeros(40, dtype=torch.float64)), Independent(q_x, 1))
    z = mixture.sample((20000,))  # [20000, 3], torch's generator: independent of the draws above
    terms = mixture.log_prob(z) - Independent(Normal(torch.zeros(3, dtype=torch.float64), 1.0), 1).log_prob(z)
    reference, reference_se = terms.mean().item(), terms.std().item() / math.sqrt(len(terms))
    assert abs(r.marginal_kl - reference) < 4 * math.hypot(r.marginal_kl_se, reference_se)
    assert abs(r.rate_mc - r.rate) < 4 * r.rate_mc_se, "(9.5): I + KL = R"
    assert abs(r.mutual_information + r.marginal_kl - r.rate_mc) < 1e-9
    assert 0 < r.mutual_information < math.log(40) + 4 * r.mutual_information_se


def test_one_image_carries_no_information_and_equal_codes_neither():
    mu, logvar = _codes(1)
    one = rate_decomposition(mu, logvar, n_samples=50, generator=torch.Generator().manual_seed(2))
    assert abs(one.mutual_information) < 1e-12 and one.mutual_information_se < 1e-12
    assert abs(one.marginal_kl - one.rate) < 4 * one.marginal_kl_se
    same = rate_decomposition(mu.expand(7, -1), logvar.expand(7, -1), n_samples=5,
                              generator=torch.Generator().manual_seed(2))
    assert abs(same.mutual_information) < 1e-12  # q(z) = q(z | x_n) for every n


def test_codes_far_apart_carry_log_n_nats():
    # Well-separated codes: the code says which image it came from, I(x; z) = log N.
    mu = 30.0 * torch.eye(5, dtype=torch.float64)
    logvar = torch.full((5, 5), -2.0, dtype=torch.float64)
    r = rate_decomposition(mu, logvar, n_samples=20, generator=torch.Generator().manual_seed(3))
    assert abs(r.mutual_information - math.log(5)) < 1e-6


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(mu=torch.zeros(3, 2), logvar=torch.zeros(3, 1)), ValueError, r"^logvar: "),
        (dict(mu=torch.zeros(0, 2), logvar=torch.zeros(0, 2)), ValueError, r"^mu: expected at least one"),
        (dict(mu=torch.zeros(3, 2), logvar=torch.zeros(3, 2), n_samples=0), ValueError, r"^n_samples: "),
        (dict(mu=torch.zeros(3), logvar=torch.zeros(3)), ValueError, r"^mu: expected a 2-D tensor"),
    ],
)
def test_rate_decomposition_rejects_bad_input(kwargs, error, match):
    with pytest.raises(error, match=match):
        rate_decomposition(**kwargs)
