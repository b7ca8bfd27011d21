"""Unit tests for vae_lesson.theory.toy (toy latent variable models) and vae_lesson.theory.quadrature.

References no one here wrote: torch.distributions for the densities, the closed forms of a linear-Gaussian
model (LinearGaussian, itself tested against MultivariateNormal) for the marginal, the posterior and the ELBO,
and brute-force Monte Carlo with a stated tolerance (5 standard errors) for the non-linear toys.
"""

from __future__ import annotations

import math

import pytest
import torch
from support import gen as _gen
from torch.distributions import Independent, MultivariateNormal, Normal

from vae_lesson import LinearGaussian
from vae_lesson.theory.quadrature import (
    elbo_quadrature,
    importance_sampling_log_marginal,
    log_marginal_quadrature,
    naive_mc_log_marginal,
    naive_mc_relative_std,
    posterior_on_grid,
    quadrature_grid,
    relative_error,
)
from vae_lesson.theory.toy import ToyModel, fold_model, spiral_model


def _linear(D: int, d: int, seed: int = 0, sigma: float = 0.5) -> LinearGaussian:
    g = _gen(seed)
    return LinearGaussian(torch.randn(D, d, generator=g, dtype=torch.float64),
                          torch.randn(D, generator=g, dtype=torch.float64), sigma)


def _orthogonal_linear(D: int, d: int, seed: int = 0, sigma: float = 0.5) -> LinearGaussian:
    """W with orthogonal columns: the exact posterior has a diagonal covariance."""
    g = _gen(seed)
    Q, _ = torch.linalg.qr(torch.randn(D, D, generator=g, dtype=torch.float64))
    W = Q[:, :d] * torch.linspace(0.8, 1.6, d, dtype=torch.float64)
    return LinearGaussian(W, torch.randn(D, generator=g, dtype=torch.float64), sigma)


# ------------------------------------------------------------------------------------------------ the model


@pytest.mark.parametrize("model", [spiral_model(), fold_model(0.3)], ids=["spiral", "fold"])
def test_densities_match_torch_distributions(model):
    x, _ = model.sample(4, generator=_gen(1))
    z = torch.randn(7, 4, model.latent_dim, generator=_gen(2), dtype=torch.float64)  # [k, batch, d]
    expected_prior = Independent(Normal(torch.zeros(model.latent_dim, dtype=torch.float64), 1.0), 1).log_prob(z)
    expected_lik = Independent(Normal(model.decode(z), model.sigma), 1).log_prob(x)  # [k, batch]
    torch.testing.assert_close(model.log_prior(z), expected_prior, rtol=0, atol=1e-12)
    torch.testing.assert_close(model.log_likelihood(x, z), expected_lik, rtol=0, atol=1e-12)
    torch.testing.assert_close(model.log_joint(x, z), expected_prior + expected_lik, rtol=0, atol=1e-12)
    # A grid [G, 1, d] broadcasts against the batch: [G, batch].
    assert model.log_joint(x, z[:, :1, :]).shape == (7, 4)
    assert model.log_likelihood(x, z[0]).shape == (4,)


def test_decoders_are_the_documented_curves():
    z = torch.tensor([[0.0], [math.pi / 4], [-math.pi / 2]], dtype=torch.float64)
    r = torch.exp(0.3 * z[:, 0])
    expected = torch.stack([r * torch.cos(2 * z[:, 0]), r * torch.sin(2 * z[:, 0])], dim=-1)
    torch.testing.assert_close(spiral_model().decode(z), expected)
    torch.testing.assert_close(spiral_model().decode(z)[0], torch.tensor([1.0, 0.0], dtype=torch.float64))
    z2 = torch.tensor([[1.0, 2.0], [1.0, -2.0], [-2.0, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(fold_model().decode(z2), torch.tensor([[1.0, 3.5], [1.0, 3.5], [-2.0, -2.0]],
                                                                     dtype=torch.float64))


def test_sample_follows_the_generative_story():
    model = spiral_model(0.2)
    n = 100_000
    x, z = model.sample(n, generator=_gen(3))
    assert x.shape == (n, 2) and z.shape == (n, 1) and x.dtype == torch.float64
    # Tolerance: 5 standard errors (SE of a mean 1/sqrt(n), of a standard deviation ~ s/sqrt(2n)).
    assert abs(z.mean().item()) < 5 / math.sqrt(n) and abs(z.std().item() - 1) < 5 / math.sqrt(2 * n)
    noise = x - model.decode(z)
    assert (noise.std(0) - 0.2).abs().max().item() < 5 * 0.2 / math.sqrt(2 * n)
    assert torch.equal(model.sample(5, generator=_gen(4))[0], model.sample(5, generator=_gen(4))[0])


def test_from_linear_gaussian_is_the_same_model():
    linear = _linear(3, 2)
    toy = ToyModel.from_linear_gaussian(linear)
    z = torch.randn(5, 2, generator=_gen(5), dtype=torch.float64)
    torch.testing.assert_close(toy.decode(z), z @ linear.W.T + linear.b)
    assert (toy.latent_dim, toy.data_dim, toy.sigma) == (2, 3, 0.5)


# --------------------------------------------------------------------------------------------- quadrature


def test_grid_is_a_midpoint_grid():
    z, log_volume = quadrature_grid(2, 4, limit=2.0)
    assert z.shape == (16, 2) and math.isclose(log_volume, 2 * math.log(1.0))
    torch.testing.assert_close(z[:4, 1], torch.tensor([-1.5, -0.5, 0.5, 1.5], dtype=torch.float64))
    torch.testing.assert_close(z[::4, 0], torch.tensor([-1.5, -0.5, 0.5, 1.5], dtype=torch.float64))
    # The prior integrates to 1 on the default grid, up to its mass outside [-6, 6]^2 (4 * Phi(-6) = 4e-9).
    z, log_volume = quadrature_grid(2, 401)
    log_mass = torch.logsumexp(fold_model().log_prior(z), 0) + log_volume  # log of the integral of N(z; 0, I_2)
    assert abs(log_mass.item()) < 1e-8


@pytest.mark.parametrize(("D", "d"), [(2, 1), (3, 2)])
def test_quadrature_matches_the_closed_form_marginal(D, d):
    linear = _linear(D, d, seed=6)
    x, _ = linear.sample(6, generator=_gen(7))
    x = torch.cat([x, x[:1] + 3.0])  # and one point far from the data
    lp = log_marginal_quadrature(ToyModel.from_linear_gaussian(linear), x)
    assert lp.shape == (7,)
    torch.testing.assert_close(lp, linear.log_marginal(x), rtol=0, atol=1e-8)


@pytest.mark.parametrize(("D", "d"), [(2, 1), (3, 2)])
def test_posterior_on_grid_is_normalized_and_matches_the_closed_form(D, d):
    linear = _linear(D, d, seed=8)
    x, _ = linear.sample(3, generator=_gen(9))
    z, density = posterior_on_grid(ToyModel.from_linear_gaussian(linear), x)
    volume = quadrature_grid(d, round(z.shape[0] ** (1 / d)))[1]
    torch.testing.assert_close(density.sum(-1) * math.exp(volume), torch.ones(3, dtype=torch.float64))
    mean, cov = linear.posterior(x)
    weights = density * math.exp(volume)  # [batch, G]
    grid_mean = weights @ z  # [batch, d]
    torch.testing.assert_close(grid_mean, mean, rtol=0, atol=1e-8)
    for b in range(3):
        centred = z - grid_mean[b]
        torch.testing.assert_close(centred.T @ (weights[b, :, None] * centred), cov, rtol=0, atol=1e-8)
        exact = MultivariateNormal(mean[b], cov).log_prob(z).exp()  # [G]
        assert (density[b] - exact).abs().max() < 1e-8 * exact.max()


@pytest.mark.parametrize("model", [spiral_model(), fold_model()], ids=["spiral", "fold"])
def test_quadrature_matches_brute_force_monte_carlo(model):
    x, _ = model.sample(4, generator=_gen(10))
    exact = log_marginal_quadrature(model, x).exp()  # [batch]
    # Brute force, written out: p(x) = E_{p(z)} p(x|z), 400 000 prior draws shared by the batch.
    z = torch.randn(400_000, 1, model.latent_dim, generator=_gen(11), dtype=torch.float64)
    lik = Independent(Normal(model.decode(z), model.sigma), 1).log_prob(x).exp()  # [S, batch]
    mc, se = lik.mean(0), lik.std(0) / math.sqrt(lik.shape[0])
    assert ((mc - exact).abs() <= 5 * se).all(), (mc, exact, se)
    assert (se < 0.05 * exact).all()  # the check has teeth: 5 SE is under 25 % of p(x)


@pytest.mark.parametrize("model", [spiral_model(), fold_model()], ids=["spiral", "fold"])
def test_default_grid_has_converged(model):
    x, _ = model.sample(5, generator=_gen(12))
    fine = {1: 6001, 2: 801}[model.latent_dim]
    torch.testing.assert_close(log_marginal_quadrature(model, x),
                               log_marginal_quadrature(model, x, n_points=fine, limit=7.0), rtol=0, atol=1e-7)


@pytest.mark.parametrize(("D", "d"), [(2, 1), (3, 2)])
def test_elbo_quadrature_matches_the_closed_form_elbo(D, d):
    linear = _linear(D, d, seed=13)
    toy = ToyModel.from_linear_gaussian(linear)
    x, _ = linear.sample(4, generator=_gen(14))
    q_mu = 0.5 * torch.randn(4, d, generator=_gen(15), dtype=torch.float64)
    q_logvar = -1.0 + 0.5 * torch.randn(4, d, generator=_gen(16), dtype=torch.float64)
    elbo = elbo_quadrature(toy, x, q_mu, q_logvar)
    torch.testing.assert_close(elbo, linear.elbo(x, q_mu, q_logvar), rtol=0, atol=1e-8)
    torch.testing.assert_close(log_marginal_quadrature(toy, x) - elbo, linear.kl_to_posterior(x, q_mu, q_logvar),
                               rtol=0, atol=1e-8)


# ------------------------------------------------------------------------------------------- Monte Carlo


@pytest.mark.parametrize(("D", "d"), [(2, 1), (4, 3)])
def test_importance_sampling_with_the_exact_posterior_has_zero_variance(D, d):
    linear = _orthogonal_linear(D, d, seed=17)
    x, _ = linear.sample(5, generator=_gen(18))
    mean, cov = linear.posterior(x)
    assert (cov - torch.diag(torch.diagonal(cov))).abs().max() < 1e-12  # diagonal, so q can be exact
    logvar = torch.diagonal(cov).log().expand(5, d)
    toy = ToyModel.from_linear_gaussian(linear)
    for n_samples in (1, 10):
        estimate = importance_sampling_log_marginal(toy, x, mean, logvar, n_samples, generator=_gen(19))
        torch.testing.assert_close(estimate, linear.log_marginal(x), rtol=0, atol=1e-9)


def test_naive_mc_is_unbiased_and_its_spread_matches_the_closed_form():
    linear = _linear(2, 1, seed=20, sigma=0.3)
    toy = ToyModel.from_linear_gaussian(linear)
    x, _ = linear.sample(3, generator=_gen(21))
    repeats, n_samples = 4000, 10
    estimates = naive_mc_log_marginal(toy, x.repeat(repeats, 1), n_samples, generator=_gen(22))
    ratio = torch.exp(estimates.reshape(repeats, 3) - linear.log_marginal(x))  # p_hat / p, [R, batch]
    theory = naive_mc_relative_std(linear, x, n_samples)  # [batch]
    # Unbiased for p(x): the mean ratio is 1 within 5 standard errors.
    assert ((ratio.mean(0) - 1).abs() <= 5 * theory / math.sqrt(repeats)).all()
    # The RMS relative error over the repeats estimates the exact relative standard deviation (to 10 %).
    empirical = relative_error(estimates.reshape(repeats, 3), linear.log_marginal(x))
    assert ((empirical / theory - 1).abs() < 0.1).all(), (empirical, theory)


def test_importance_sampling_with_a_wide_proposal_is_unbiased():
    model = spiral_model()
    x, z = model.sample(3, generator=_gen(23))
    exact = log_marginal_quadrature(model, x)
    repeats = 400
    x_rep = x.repeat(repeats, 1)
    mu, logvar = z.repeat(repeats, 1), torch.full((3 * repeats, 1), math.log(0.3**2), dtype=torch.float64)
    estimates = importance_sampling_log_marginal(model, x_rep, mu, logvar, 100, generator=_gen(24))
    ratio = torch.exp(estimates.reshape(repeats, 3) - exact)  # [R, batch]
    se = ratio.std(0) / math.sqrt(repeats)
    assert ((ratio.mean(0) - 1).abs() <= 5 * se).all() and (se < 0.05).all()
    naive = naive_mc_log_marginal(model, x_rep, 100, generator=_gen(25)).reshape(repeats, 3)
    # A proposal near the posterior beats the prior at the same number of samples.
    assert (relative_error(estimates.reshape(repeats, 3), exact) < relative_error(naive, exact)).all()


def test_relative_error_of_known_estimates():
    log_exact = torch.tensor([0.0, -50.0], dtype=torch.float64)
    perfect = log_exact.expand(3, 2)
    torch.testing.assert_close(relative_error(perfect, log_exact), torch.zeros(2, dtype=torch.float64))
    missed = torch.full((3, 2), -1000.0, dtype=torch.float64)  # estimates ~0: 100 % error
    torch.testing.assert_close(relative_error(missed, log_exact), torch.ones(2, dtype=torch.float64))
    half_double = torch.log(torch.tensor([[0.5, 0.5], [2.0, 2.0]], dtype=torch.float64)) + log_exact
    torch.testing.assert_close(relative_error(half_double, log_exact),
                               torch.full((2,), math.sqrt((0.25 + 1) / 2), dtype=torch.float64))


# ------------------------------------------------------------------------------------------------- errors

X2 = torch.zeros(3, 2, dtype=torch.float64)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: ToyModel("f", 1, 2, 0.1), TypeError, r"^decoder: "),
        (lambda: ToyModel(lambda z: z, 0, 2, 0.1), ValueError, r"^latent_dim: "),
        (lambda: ToyModel(lambda z: z, 1, 2, 0.0), ValueError, r"^sigma: expected a number > 0"),
        (lambda: ToyModel(lambda z: z, 1, 2, 0.1).decode(torch.zeros(3, 1)), ValueError, r"^decoder: .*\[3, 2\]"),
        (lambda: ToyModel.from_linear_gaussian("W"), TypeError, r"^linear: "),
        (lambda: spiral_model(-1.0), ValueError, r"^sigma: "),
        (lambda: spiral_model().log_prior(torch.zeros(3, 2)), ValueError, r"^z: .*\[\.\.\., 1\]"),
        (lambda: spiral_model().log_likelihood(torch.zeros(3, 3), torch.zeros(3, 1)), ValueError,
         r"^x: .*\[batch, 2\]"),
        (lambda: spiral_model().log_likelihood(X2, torch.zeros(4, 1)), ValueError, r"^z: .*broadcast"),
        (lambda: spiral_model().log_likelihood(X2, torch.zeros(3, 1, dtype=torch.long)), TypeError, r"^z: "),
        (lambda: spiral_model().sample(0), ValueError, r"^n: "),
        (lambda: spiral_model().sample(3, generator=0), TypeError, r"^generator: "),
        (lambda: quadrature_grid(2, 1), ValueError, r"^n_points: "),
        (lambda: quadrature_grid(3, 1000), ValueError, r"^n_points: .*N\^d"),
        (lambda: quadrature_grid(1, 10, limit=0), ValueError, r"^limit: "),
        (lambda: log_marginal_quadrature(LinearGaussian(torch.eye(2), torch.zeros(2), 1.0), X2), TypeError,
         r"^model: "),
        (lambda: log_marginal_quadrature(ToyModel(lambda z: z[..., :2], 5, 2, 1.0), X2), ValueError,
         r"^model: .*latent_dim <= 3"),
        (lambda: log_marginal_quadrature(spiral_model(), torch.full((1, 2), float("nan"))), ValueError,
         r"^x: .*finite"),
        (lambda: posterior_on_grid(spiral_model(), torch.zeros(2)), ValueError, r"^x: "),
        (lambda: elbo_quadrature(spiral_model(), X2, torch.zeros(3, 2), torch.zeros(3, 2)), ValueError,
         r"^q_mu: .*\[3, 1\]"),
        (lambda: elbo_quadrature(spiral_model(), X2, torch.zeros(3, 1), torch.full((3, 1), -20.0)), ValueError,
         r"^q_logvar: .*mass on the grid"),
        (lambda: elbo_quadrature(spiral_model(), X2, torch.full((3, 1), 8.0), torch.zeros(3, 1)), ValueError,
         r"^q_logvar: .*mass on the grid"),
        (lambda: naive_mc_log_marginal(spiral_model(), X2, 0), ValueError, r"^n_samples: "),
        (lambda: naive_mc_log_marginal(spiral_model(), X2, 1.5), TypeError, r"^n_samples: "),
        (lambda: naive_mc_log_marginal(spiral_model(), X2, 10, generator="g"), TypeError, r"^generator: "),
        (lambda: importance_sampling_log_marginal(spiral_model(), X2, torch.zeros(3, 1), torch.zeros(3, 2), 5),
         ValueError, r"^proposal_logvar: "),
        (lambda: importance_sampling_log_marginal(spiral_model(), X2, torch.zeros(2, 1), torch.zeros(2, 1), 5),
         ValueError, r"^proposal_mu: .*\[3, 1\]"),
        (lambda: relative_error(torch.zeros(4, 3), torch.zeros(2)), ValueError, r"^log_estimates: .*\[R, 2\]"),
        (lambda: relative_error(torch.zeros(4), torch.zeros(4)), ValueError, r"^log_estimates: "),
        (lambda: naive_mc_relative_std(spiral_model(), X2, 10), TypeError, r"^linear: "),
        (lambda: naive_mc_relative_std(LinearGaussian(torch.eye(2), torch.zeros(2), 1.0), X2, 0), ValueError,
         r"^n_samples: "),
    ],
)
def test_bad_input_raises_a_clear_error(call, error, match):
    with pytest.raises(error, match=match):
        call()
