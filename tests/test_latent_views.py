"""Latent-space computations against references written elsewhere (NumPy, torch.distributions, closed forms), and
figures checked on their data: the marker, the ellipse and the images are where and what they claim."""

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.patches import Circle, Ellipse  # noqa: E402
from torch import distributions as D  # noqa: E402

from vae_lesson import VAE  # noqa: E402
from vae_lesson.views.latent_views import (  # noqa: E402
    aggregate_log_density,
    decoded_pixels,
    latent_activity,
    lerp,
    prior_norm_cdf,
    prior_norm_quantile,
    render_aggregate_posterior,
    render_decoded,
    render_interpolation,
    render_latent_plane,
    render_manifold,
    render_posterior,
    slerp,
)
from vae_lesson.views.plotting import tile  # noqa: E402


def teardown_function():
    plt.close("all")


@pytest.fixture
def model():
    torch.manual_seed(0)
    return VAE(16, 3, hidden_dims=(8,)).eval()


def test_activity_is_the_population_variance_of_the_means():
    mu = torch.randn(50, 4, generator=torch.Generator().manual_seed(0)) * torch.tensor([2.0, 1.0, 0.1, 0.0])
    assert np.allclose(latent_activity(mu).numpy(), np.var(mu.numpy(), axis=0), atol=1e-6)
    assert latent_activity(mu)[3] == 0
    with pytest.raises(ValueError, match="mu: expected at least two rows"):
        latent_activity(mu[:1])
    with pytest.raises(ValueError, match="mu: expected a 2-D tensor"):
        latent_activity(mu[0])


def test_lerp_is_the_straight_line():
    z_a, z_b = torch.tensor([1.0, 2.0]), torch.tensor([3.0, -2.0])
    assert torch.equal(lerp(z_a, z_b, 0.25), torch.tensor([1.5, 1.0]))
    path = lerp(z_a, z_b, torch.tensor([0.0, 0.5, 1.0]))
    assert path.shape == (3, 2) and torch.equal(path[0], z_a) and torch.equal(path[2], z_b)


def test_slerp_endpoints_are_exact():
    gen = torch.Generator().manual_seed(1)
    z_a, z_b = torch.randn(16, generator=gen), torch.randn(16, generator=gen)
    path = slerp(z_a, z_b, torch.tensor([0.0, 1.0]))
    assert torch.allclose(path[0], z_a, atol=1e-6) and torch.allclose(path[1], z_b, atol=1e-6)
    assert torch.allclose(slerp(z_a, z_b, 0.0), z_a, atol=1e-6)


def test_slerp_turns_at_a_constant_rate_on_the_unit_circle():
    # closed form: between e1 and e2 the great circle is (cos(t pi/2), sin(t pi/2))
    t = torch.linspace(0, 1, 11)
    path = slerp(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0]), t)
    expected = torch.stack([torch.cos(t * math.pi / 2), torch.sin(t * math.pi / 2)], dim=1)
    assert torch.allclose(path, expected, atol=1e-6)


def test_slerp_keeps_the_norm_of_equal_norm_endpoints_and_lerp_does_not():
    gen = torch.Generator().manual_seed(2)
    z_a, z_b = torch.randn(16, generator=gen), torch.randn(16, generator=gen)
    z_b = z_b / z_b.norm() * z_a.norm()
    t = torch.linspace(0, 1, 21)
    sph, lin = slerp(z_a, z_b, t), lerp(z_a, z_b, t)
    assert torch.allclose(sph.norm(dim=1), z_a.norm().expand(21), rtol=1e-5)
    assert lin[10].norm() < 0.99 * z_a.norm()  # the straight line cuts inside the sphere
    omega = torch.arccos(z_a @ z_b / z_a.norm() ** 2)
    angle = torch.arccos((sph @ z_a / (sph.norm(dim=1) * z_a.norm())).clamp(-1, 1))
    assert torch.allclose(angle, t * omega, atol=1e-3)


def test_slerp_falls_back_to_lerp_for_parallel_endpoints():
    z_a = torch.tensor([1.0, 1.0])
    assert torch.allclose(slerp(z_a, 3 * z_a, 0.5), lerp(z_a, 3 * z_a, 0.5))
    assert torch.allclose(slerp(torch.zeros(2), z_a, 0.5), 0.5 * z_a)


def test_path_argument_errors():
    with pytest.raises(ValueError, match="z_b: expected the shape of z_a"):
        slerp(torch.zeros(2), torch.zeros(3), 0.5)
    with pytest.raises(TypeError, match="t: expected a real number"):
        lerp(torch.zeros(2), torch.ones(2), "half")
    with pytest.raises(ValueError, match="z_a: expected a 1-D tensor"):
        slerp(torch.zeros(1, 2), torch.zeros(1, 2), 0.5)


def test_aggregate_density_matches_a_torch_mixture():
    gen = torch.Generator().manual_seed(3)
    mu, logvar = torch.randn(7, 2, generator=gen), 0.5 * torch.randn(7, 2, generator=gen)
    z = 2 * torch.randn(30, 2, generator=gen)
    mixture = D.MixtureSameFamily(D.Categorical(torch.ones(7)),
                                  D.Independent(D.Normal(mu, (0.5 * logvar).exp()), 1))
    assert torch.allclose(aggregate_log_density(z, mu, logvar), mixture.log_prob(z), atol=1e-5)
    assert torch.allclose(aggregate_log_density(z, mu, logvar, chunk=4), mixture.log_prob(z), atol=1e-5)
    with pytest.raises(ValueError, match="z: expected shape \\[m, 2\\]"):
        aggregate_log_density(torch.zeros(3, 3), mu, logvar)
    with pytest.raises(ValueError, match="logvar: expected the shape of mu"):
        aggregate_log_density(z, mu, logvar[:3])


def test_render_decoded_shows_the_decode(model):
    z = torch.tensor([0.5, -1.0, 2.0])
    fig = render_decoded(model, z)
    expected = torch.sigmoid(model.decode(z[None]))[0].reshape(4, 4).detach().numpy()
    assert np.allclose(fig.axes[0].images[0].get_array(), expected)
    assert torch.equal(decoded_pixels(model, z), decoded_pixels(model, z[None]))
    with pytest.raises(ValueError, match="z: expected a single latent vector"):
        render_decoded(model, torch.zeros(2, 3))


def test_render_latent_plane_marks_the_point():
    codes, labels = torch.randn(40, 2), np.arange(40) % 4
    decoded = torch.rand(16)
    fig = render_latent_plane(codes, labels, (1.25, -0.5), decoded=decoded, limit=4.0)
    ax, ax_img = fig.axes[:2]
    marker = next(line for line in ax.lines if line.get_gid() == "marker")
    assert marker.get_xdata().tolist() == [1.25] and marker.get_ydata().tolist() == [-0.5]
    assert ax.get_xlim() == (-4.0, 4.0) and ax.get_ylim() == (-4.0, 4.0)
    assert np.allclose(ax_img.images[0].get_array(), decoded.reshape(4, 4).numpy())
    assert "decoded at z = (1.25, -0.50)" == ax_img.get_title()
    with pytest.raises(ValueError, match="point: expected 2 coordinates"):
        render_latent_plane(codes, labels, (1.0, 2.0, 3.0))


def test_render_interpolation_decodes_both_paths(model):
    z_a, z_b = torch.tensor([2.0, 0.0, 0.0]), torch.tensor([0.0, 2.0, 1.0])
    fig = render_interpolation(model, z_a, z_b, 0.3, n_steps=5)
    strip_lin, now_lin, strip_sph, now_sph, norms = fig.axes
    ts = torch.linspace(0, 1, 5)
    assert np.allclose(strip_lin.images[0].get_array(), tile(decoded_pixels(model, lerp(z_a, z_b, ts)), 5))
    assert np.allclose(strip_sph.images[0].get_array(), tile(decoded_pixels(model, slerp(z_a, z_b, ts)), 5))
    assert np.allclose(now_lin.images[0].get_array(), decoded_pixels(model, lerp(z_a, z_b, 0.3)).reshape(4, 4))
    assert np.allclose(now_sph.images[0].get_array(), decoded_pixels(model, slerp(z_a, z_b, 0.3)).reshape(4, 4))
    linear_norm = norms.lines[0]
    assert np.isclose(linear_norm.get_ydata()[50], lerp(z_a, z_b, 0.5).norm().item(), atol=1e-6)
    with pytest.raises(ValueError, match="n_steps: expected an int >= 2"):
        render_interpolation(model, z_a, z_b, 0.3, n_steps=1)


def test_render_posterior_draws_the_two_sigma_ellipse():
    mu, logvar = torch.tensor([0.5, -1.0]), torch.tensor([-1.0, -3.0])
    fig = render_posterior(mu, logvar, torch.randn(30, 2), image=torch.rand(16))
    ax = fig.axes[0]
    ellipse = next(p for p in ax.patches if p.get_gid() == "posterior")
    assert type(ellipse) is Ellipse
    assert ellipse.center == pytest.approx((0.5, -1.0))
    assert ellipse.width == pytest.approx(4 * math.exp(-0.5)) and ellipse.height == pytest.approx(4 * math.exp(-1.5))
    radii = sorted(p.get_radius() for p in ax.patches if type(p) is Circle)
    assert radii == [1, 2]  # the prior's 1-sigma and 2-sigma circles
    with pytest.raises(ValueError, match="logvar: expected 2 coordinates"):
        render_posterior(mu, torch.zeros(3), torch.randn(30, 2))


def test_render_aggregate_posterior_shows_the_mixture_density():
    gen = torch.Generator().manual_seed(4)
    mu, logvar = torch.randn(20, 2, generator=gen), torch.full((20, 2), -1.0)
    fig = render_aggregate_posterior(mu, logvar, limit=2.0, n_grid=5)
    shown = fig.axes[0].images[0].get_array()
    mixture = D.MixtureSameFamily(D.Categorical(torch.ones(20)),
                                  D.Independent(D.Normal(mu, math.exp(-0.5) * torch.ones(20, 2)), 1))
    top_left, centre = torch.tensor([[-2.0, 2.0]]), torch.tensor([[0.0, 0.0]])
    assert np.isclose(shown[0, 0], mixture.log_prob(top_left).exp().item(), rtol=1e-4)
    assert np.isclose(shown[2, 2], mixture.log_prob(centre).exp().item(), rtol=1e-4)
    with pytest.raises(ValueError, match="limit: expected a number > 0"):
        render_aggregate_posterior(mu, logvar, limit=0.0)


def test_prior_norm_cdf_is_the_chi_distribution():
    from scipy import stats

    for d in (1, 2, 16, 512):
        radii = torch.tensor([0.1, 1.0, math.sqrt(d / 2), math.sqrt(d), math.sqrt(d) + 2], dtype=torch.float64)
        assert torch.allclose(prior_norm_cdf(radii, d), torch.from_numpy(stats.chi.cdf(radii.numpy(), d)),
                              rtol=1e-9, atol=1e-300)
    assert abs(float(prior_norm_cdf(2.0, 2)) - (1 - math.exp(-2))) < 1e-12  # chi^2_2: 1 - exp(-r^2 / 2)
    z = torch.randn(100_000, 16, generator=torch.Generator().manual_seed(0))
    assert abs((z.norm(dim=1) < 3.5).double().mean().item() - float(prior_norm_cdf(3.5, 16))) < 0.006  # 4 sd


def test_prior_norm_quantile_inverts_the_cdf():
    from scipy import stats

    for d in (1, 16, 512):
        for p in (0.05, 0.5, 0.95):
            r = prior_norm_quantile(p, d)
            assert abs(r - stats.chi.ppf(p, d)) < 1e-8
            assert abs(float(prior_norm_cdf(r, d)) - p) < 1e-10


def test_prior_norm_bad_input():
    with pytest.raises(ValueError, match="norm: expected values >= 0"):
        prior_norm_cdf(torch.tensor([-1.0, 1.0]), 2)
    with pytest.raises(ValueError, match="latent_dim"):
        prior_norm_cdf(1.0, 0)
    with pytest.raises(ValueError, match="p: expected a probability strictly between 0 and 1"):
        prior_norm_quantile(1.0, 16)
    with pytest.raises(TypeError):
        prior_norm_cdf("one", 2)


def test_render_interpolation_shades_the_prior_norm_band(model):
    fig = render_interpolation(model, torch.tensor([2.0, 0.0, 0.0]), torch.tensor([0.0, 2.0, 1.0]), 0.5)
    band = fig.axes[-1].patches[0]
    y_low, y_high = band.get_y(), band.get_y() + band.get_height()
    assert abs(y_low - prior_norm_quantile(0.05, 3)) < 1e-9 and abs(y_high - prior_norm_quantile(0.95, 3)) < 1e-9


def test_render_manifold_decodes_a_grid_of_prior_quantiles():
    torch.manual_seed(0)
    model = VAE(64, 2, hidden_dims=(8,)).eval()
    fig = render_manifold(model, n=5, coverage=0.8)
    shown = fig.axes[0].images[0].get_array()
    quantiles = torch.distributions.Normal(0.0, 1.0).icdf(torch.tensor([0.1, 0.3, 0.5, 0.7, 0.9]))  # [5]
    z = torch.stack([quantiles[3], quantiles[4]])  # row 0 is the top (largest z2): column 3, row 0
    expected = decoded_pixels(model, z)[0].reshape(8, 8).numpy()
    assert np.allclose(shown[0:8, 3 * 9:3 * 9 + 8], expected, atol=1e-6)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == [f"{v:.2f}" for v in quantiles.tolist()]
    with pytest.raises(ValueError, match="coverage: expected a fraction"):
        render_manifold(model, coverage=1.0)
    with pytest.raises(ValueError, match="model: expected a model with latent_dim = 2"):
        render_manifold(VAE(64, 3, hidden_dims=(8,)))


def test_backgrounds_leave_out_what_the_browser_draws(model):
    codes, labels = torch.randn(30, 2), torch.arange(30) % 10
    fig = render_latent_plane(codes, labels, limit=3.0)
    assert len(fig.axes) == 1 and not [line for line in fig.axes[0].lines if line.get_gid() == "marker"]
    fig = render_latent_plane(codes, labels, (0.5, 0.5), posterior=((0.5, 0.5), (-2.0, 0.0)))
    ellipse = next(p for p in fig.axes[0].patches if p.get_gid() == "posterior")
    assert (ellipse.width, ellipse.height) == pytest.approx((4 * math.exp(-1.0), 4.0))
    fig = render_posterior(None, None, codes)
    assert not [p for p in fig.axes[0].patches if p.get_gid() == "posterior"]
    z_a, z_b = torch.randn(3), torch.randn(3)
    fig = render_interpolation(model, z_a, z_b, None, n_steps=4)
    assert len(fig.axes) == 3, "two strips and the norm plot, no decodes at t"
    assert all(not ax.lines or ax is fig.axes[2] for ax in fig.axes)
