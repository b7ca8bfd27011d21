"""Unit tests for vae_lesson.theory.linear_gaussian: probabilistic PCA, where every quantity is exact.

The closed forms are checked against independent computations: torch.distributions.MultivariateNormal for
the marginal and the KL, Gaussian conditioning of the joint (z, x) for the posterior, Monte Carlo (with
stated tolerances) for the expected log-likelihood and for sample(), and the identity
log p(x) - ELBO(q) = KL(q || p(z | x)).
"""

from __future__ import annotations

import math

import pytest
import torch
from support import gen as _gen
from torch.distributions import Independent, MultivariateNormal, Normal, kl_divergence

from vae_lesson import LinearGaussian, gaussian_kl

DIMS = [(5, 2), (3, 3), (4, 1)]


def _model(D: int, d: int, seed: int = 0, sigma: float = 0.7) -> LinearGaussian:
    g = _gen(seed)
    W = torch.randn(D, d, generator=g, dtype=torch.float64)
    b = torch.randn(D, generator=g, dtype=torch.float64)
    return LinearGaussian(W, b, sigma)


def _data(model: LinearGaussian, batch: int = 8, seed: int = 1) -> torch.Tensor:
    return 2 * torch.randn(batch, model.data_dim, generator=_gen(seed), dtype=torch.float64)


def _random_q(model: LinearGaussian, batch: int, seed: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    g = _gen(seed)
    q_mu = torch.randn(batch, model.latent_dim, generator=g, dtype=torch.float64)
    q_logvar = torch.randn(batch, model.latent_dim, generator=g, dtype=torch.float64) - 1.0
    return q_mu, q_logvar


def _joint_conditioning(model: LinearGaussian, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """p(z | x) from the joint N([0, b], [[I, W^T], [W, W W^T + s2 I]]), conditioned with linalg.solve."""
    W, b, s2 = model.W, model.b, model.sigma**2
    D, d = W.shape
    joint = torch.zeros(d + D, d + D, dtype=torch.float64)
    joint[:d, :d] = torch.eye(d, dtype=torch.float64)
    joint[:d, d:] = W.T
    joint[d:, :d] = W
    joint[d:, d:] = W @ W.T + s2 * torch.eye(D, dtype=torch.float64)
    S_zz, S_zx, S_xx = joint[:d, :d], joint[:d, d:], joint[d:, d:]
    mean = (S_zx @ torch.linalg.solve(S_xx, (x - b).T)).T  # [batch, d]
    cov = S_zz - S_zx @ torch.linalg.solve(S_xx, S_zx.T)  # [d, d]
    return mean, cov


# ------------------------------------------------------------------------------------------------ marginal


@pytest.mark.parametrize(("D", "d"), DIMS)
def test_log_marginal_matches_multivariate_normal(D, d):
    model = _model(D, d)
    x = _data(model)
    expected = MultivariateNormal(model.b, model.W @ model.W.T + model.sigma**2 * torch.eye(D, dtype=torch.float64))
    lp = model.log_marginal(x)
    assert lp.shape == (8,) and lp.dtype == torch.float64
    torch.testing.assert_close(lp, expected.log_prob(x), rtol=1e-10, atol=1e-10)
    # float32 data are promoted to float64 (same values up to the float32 rounding of x).
    torch.testing.assert_close(model.log_marginal(x.float()), expected.log_prob(x.float().double()),
                               rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(model.marginal_covariance(), expected.covariance_matrix, rtol=0, atol=1e-14)


# ----------------------------------------------------------------------------------------------- posterior


@pytest.mark.parametrize(("D", "d"), DIMS)
def test_posterior_matches_gaussian_conditioning(D, d):
    model = _model(D, d, seed=3)
    x = _data(model, seed=4)
    mean, cov = model.posterior(x)
    ref_mean, ref_cov = _joint_conditioning(model, x)
    assert mean.shape == (8, d) and cov.shape == (d, d)
    torch.testing.assert_close(mean, ref_mean, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(cov, ref_cov, rtol=1e-10, atol=1e-10)
    assert torch.equal(cov, cov.T)


# ------------------------------------------------------------------------------------------ ELBO and KL


@pytest.mark.parametrize(("D", "d"), DIMS)
def test_log_marginal_minus_elbo_is_kl_to_posterior(D, d):
    model = _model(D, d, seed=5)
    x = _data(model, seed=6)
    q_mu, q_logvar = _random_q(model, 8, seed=7)
    gap = model.log_marginal(x) - model.elbo(x, q_mu, q_logvar)
    kl = model.kl_to_posterior(x, q_mu, q_logvar)
    assert kl.shape == (8,)
    torch.testing.assert_close(gap, kl, rtol=0, atol=1e-9)
    assert (kl > 0).all()  # random q is not the posterior

    # KL against torch.distributions between the diagonal q and the exact posterior.
    mean, cov = model.posterior(x)
    q = MultivariateNormal(q_mu, torch.diag_embed(q_logvar.exp()))
    p = MultivariateNormal(mean, cov.expand(8, d, d))
    torch.testing.assert_close(kl, kl_divergence(q, p), rtol=1e-9, atol=1e-9)


def test_elbo_decomposes_into_reconstruction_minus_kl():
    model = _model(5, 2, seed=8)
    x = _data(model, seed=9)
    q_mu, q_logvar = _random_q(model, 8, seed=10)
    expected = model.expected_log_likelihood(x, q_mu, q_logvar) - gaussian_kl(q_mu, q_logvar)
    torch.testing.assert_close(model.elbo(x, q_mu, q_logvar), expected, rtol=0, atol=1e-12)
    # float32 q is accepted and gives the float64 result of the same values.
    torch.testing.assert_close(model.elbo(x, q_mu.float(), q_logvar.float()),
                               model.elbo(x, q_mu.float().double(), q_logvar.float().double()), rtol=0, atol=1e-12)


@pytest.mark.parametrize(("D", "d"), [(5, 2), (3, 3), (6, 4)])
def test_elbo_at_the_posterior_is_tight_when_the_posterior_is_diagonal(D, d):
    g = _gen(11)
    Q, _ = torch.linalg.qr(torch.randn(D, D, generator=g, dtype=torch.float64))
    scales = torch.tensor([2.0, 1.3, 0.6, 0.25][:d], dtype=torch.float64)
    W = Q[:, :d] * scales  # orthogonal columns: W^T W diagonal, so the posterior covariance is diagonal
    model = LinearGaussian(W, torch.randn(D, generator=g, dtype=torch.float64), 0.5)
    x = _data(model, seed=12)
    mean, cov = model.posterior(x)
    assert (cov - torch.diag(torch.diagonal(cov))).abs().max() < 1e-12
    q_logvar = torch.diagonal(cov).log().expand(8, d)
    torch.testing.assert_close(model.elbo(x, mean, q_logvar), model.log_marginal(x), rtol=0, atol=1e-9)
    torch.testing.assert_close(model.kl_to_posterior(x, mean, q_logvar), torch.zeros(8, dtype=torch.float64),
                               rtol=0, atol=1e-9)


def test_elbo_is_strictly_below_log_marginal_for_a_correlated_posterior():
    g = _gen(13)
    col = torch.randn(5, generator=g, dtype=torch.float64)
    W = torch.stack([col, col + 0.5 * torch.randn(5, generator=g, dtype=torch.float64)], dim=1)  # correlated columns
    model = LinearGaussian(W, torch.zeros(5, dtype=torch.float64), 0.6)
    x = _data(model, seed=14)
    mean, cov = model.posterior(x)
    precision = torch.linalg.inv(cov)
    assert abs(cov[0, 1].item()) > 0.05  # the posterior really is correlated
    log_px = model.log_marginal(x)
    # Naive choice: posterior mean and the posterior's marginal variances.
    q_logvar = torch.diagonal(cov).log().expand(8, 2)
    assert (model.elbo(x, mean, q_logvar) < log_px - 1e-3).all()
    # Best diagonal q (mean field: variances 1 / diag(precision)). Its gap is known in closed form:
    # KL = 0.5 * (sum_j log Lambda_jj - log det Lambda) > 0 by Hadamard's inequality.
    best_logvar = (-torch.diagonal(precision).log()).expand(8, 2)
    gap = log_px - model.elbo(x, mean, best_logvar)
    expected_gap = 0.5 * (torch.diagonal(precision).log().sum() - torch.linalg.slogdet(precision)[1])
    assert expected_gap.item() > 1e-3
    torch.testing.assert_close(gap, expected_gap.expand(8), rtol=0, atol=1e-9)
    # and it is the best: perturbing the variances or the mean only lowers the ELBO.
    for delta in (-0.1, 0.1):
        assert (model.elbo(x, mean, best_logvar + delta) < model.elbo(x, mean, best_logvar)).all()
        assert (model.elbo(x, mean + delta, best_logvar) < model.elbo(x, mean, best_logvar)).all()


def test_expected_log_likelihood_matches_monte_carlo():
    model = _model(5, 2, seed=15)
    x = _data(model, batch=3, seed=16)
    q_mu, q_logvar = _random_q(model, 3, seed=17)
    S = 100_000
    eps = torch.randn(S, 3, 2, generator=_gen(18), dtype=torch.float64)
    z = q_mu + torch.exp(0.5 * q_logvar) * eps  # [S, batch, d]
    log_px_z = Independent(Normal(z @ model.W.T + model.b, model.sigma), 1).log_prob(x)  # [S, batch]
    mc, se = log_px_z.mean(0), log_px_z.std(0) / math.sqrt(S)
    exact = model.expected_log_likelihood(x, q_mu, q_logvar)
    # Tolerance: 5 standard errors of the Monte Carlo mean.
    assert ((mc - exact).abs() <= 5 * se).all(), (mc, exact, se)


# ------------------------------------------------------------------------------------------------- sample


def test_sample_has_the_marginal_covariance():
    model = _model(4, 2, seed=19)
    n = 200_000
    x, z = model.sample(n, generator=_gen(20))
    assert x.shape == (n, 4) and z.shape == (n, 2)
    cov = model.marginal_covariance()
    # Tolerance: 5 standard errors per entry; for Gaussian data SE(cov_ij) = sqrt((S_ii S_jj + S_ij^2) / n).
    se_cov = torch.sqrt((torch.outer(torch.diagonal(cov), torch.diagonal(cov)) + cov**2) / n)
    emp = torch.cov(x.T)
    assert ((emp - cov).abs() <= 5 * se_cov).all(), (emp, cov)
    assert ((x.mean(0) - model.b).abs() <= 5 * torch.sqrt(torch.diagonal(cov) / n)).all()
    # The latents are standard normal, and x | z has mean W z + b and noise sigma.
    assert ((torch.cov(z.T) - torch.eye(2, dtype=torch.float64)).abs() <= 5 * math.sqrt(2 / n)).all()
    resid = x - z @ model.W.T - model.b
    assert ((resid.std(0) - model.sigma).abs() <= 5 * model.sigma / math.sqrt(2 * n)).all()
    # Reproducible with a seeded generator.
    x2, z2 = model.sample(5, generator=_gen(20))
    assert torch.equal(x2, model.sample(5, generator=_gen(20))[0]) and z2.shape == (5, 2)


# ------------------------------------------------------------------------------------------------- errors

W52 = torch.ones(5, 2, dtype=torch.float64)
B5 = torch.zeros(5, dtype=torch.float64)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda m: LinearGaussian(W52, B5, 0.0), ValueError, r"^sigma: expected a number > 0"),
        (lambda m: LinearGaussian(W52, B5, -1.0), ValueError, r"^sigma: "),
        (lambda m: LinearGaussian(W52, B5, float("nan")), ValueError, r"^sigma: "),
        (lambda m: LinearGaussian(W52, B5, "1"), TypeError, r"^sigma: "),
        (lambda m: LinearGaussian(W52, torch.zeros(4, dtype=torch.float64), 1.0), ValueError, r"^b: .*\[5\]"),
        (lambda m: LinearGaussian(W52, torch.zeros(5, 1, dtype=torch.float64), 1.0), ValueError, r"^b: "),
        (lambda m: LinearGaussian(torch.ones(5, dtype=torch.float64), B5, 1.0), ValueError, r"^W: "),
        (lambda m: LinearGaussian(W52.long(), B5, 1.0), TypeError, r"^W: "),
        (lambda m: m.log_marginal(torch.zeros(3, 4, dtype=torch.float64)), ValueError, r"^x: .*\[batch, 5\]"),
        (lambda m: m.posterior(torch.zeros(3, 6, dtype=torch.float64)), ValueError, r"^x: "),
        (lambda m: m.log_marginal(torch.zeros(5, dtype=torch.float64)), ValueError, r"^x: expected a 2-D"),
        (lambda m: m.log_marginal(torch.full((1, 5), float("nan"))), ValueError, r"^x: .*finite"),
        (lambda m: m.elbo(torch.zeros(3, 4, dtype=torch.float64), torch.zeros(3, 2), torch.zeros(3, 2)),
         ValueError, r"^x: "),
        (lambda m: m.elbo(torch.zeros(3, 5), torch.zeros(3, 3), torch.zeros(3, 3)), ValueError, r"^q_mu: .*\[3, 2\]"),
        (lambda m: m.elbo(torch.zeros(3, 5), torch.zeros(4, 2), torch.zeros(4, 2)), ValueError, r"^q_mu: "),
        (lambda m: m.kl_to_posterior(torch.zeros(3, 5), torch.zeros(2), torch.zeros(2)), ValueError, r"^q_mu: "),
        (lambda m: m.expected_log_likelihood(torch.zeros(3, 5), torch.zeros(3, 2), torch.zeros(3, 1)),
         ValueError, r"^q_logvar: "),
        (lambda m: m.kl_to_posterior(torch.zeros(3, 5), torch.zeros(3, 2), torch.full((3, 2), float("inf"))),
         ValueError, r"^q_logvar: "),
        (lambda m: m.sample(0), ValueError, r"^n: "),
        (lambda m: m.sample(10, generator=1), TypeError, r"^generator: "),
    ],
)
def test_bad_input_raises_a_clear_error(call, error, match):
    model = _model(5, 2)
    with pytest.raises(error, match=match):
        call(model)
