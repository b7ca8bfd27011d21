"""Unit tests for vae_lesson.theory.elbo_study, checked against torch.distributions and closed forms.

The reference objective: for a Gaussian "posterior" N(m, S) and an unnormalised log joint
log p(x, z) = log N(z; m, S) + c, the ELBO of any q is c - KL(q || N(m, S)) (torch.distributions computes the
KL), so gradient ascent must stop at the mean-field optimum with a gap equal to its KL.
"""

from __future__ import annotations

import math

import pytest
import torch
from support import gen as _gen
from torch.distributions import MultivariateNormal, Normal, kl_divergence

from vae_lesson import LinearGaussian
from vae_lesson.theory.elbo_study import (
    ascend_elbo,
    best_gaussian_q,
    ellipse,
    gauss_hermite_elbo,
    mean_field_optimum,
    monte_carlo_elbo,
    monte_carlo_kl,
)
from vae_lesson.theory.toy import ToyModel

LOG_EVIDENCE = -3.25  # c = log p(x) in the reference problem, nats


def _target(rho: float, batch: int = 3):
    """Posterior means [batch, 2] and a covariance [2, 2] with correlation rho, float64."""
    mean = torch.randn(batch, 2, generator=_gen(0), dtype=torch.float64)
    sd = torch.tensor([1.0, 1.2], dtype=torch.float64)
    corr = torch.tensor([[1.0, rho], [rho, 1.0]], dtype=torch.float64)
    return mean, corr * torch.outer(sd, sd)


def _reference_elbo(mean, cov):
    p = MultivariateNormal(mean, cov.expand(mean.shape[0], 2, 2))

    def elbo_fn(q_mu, q_logvar):
        q = MultivariateNormal(q_mu, scale_tril=torch.diag_embed((0.5 * q_logvar).exp()), validate_args=False)
        return LOG_EVIDENCE - kl_divergence(q, p)  # [batch]
    return elbo_fn


@pytest.mark.parametrize("rho", [0.0, -0.8])
def test_ascent_reaches_the_mean_field_optimum_and_its_gap(rho):
    mean, cov = _target(rho)
    start = torch.zeros(3, 2, dtype=torch.float64)
    result = ascend_elbo(_reference_elbo(mean, cov), start, start, num_steps=200, lr=0.3)
    assert result.elbo.shape == (201, 3) and result.path_mu.shape == result.path_logvar.shape == (201, 3, 2)
    torch.testing.assert_close(result.elbo[5], _reference_elbo(mean, cov)(result.path_mu[5], result.path_logvar[5]))
    assert torch.equal(result.path_mu[-1], result.q_mu) and torch.equal(result.path_mu[0], start)
    assert torch.equal(start, torch.zeros(3, 2, dtype=torch.float64))  # inputs untouched
    gap = LOG_EVIDENCE - result.elbo  # [steps + 1, batch]
    assert (gap[1:] <= gap[:-1] + 1e-12).all(), "the gap never grows under small-step gradient ascent"
    q_mu, q_logvar, kl = mean_field_optimum(mean, cov)
    torch.testing.assert_close(result.q_mu, q_mu, rtol=0, atol=1e-7)
    torch.testing.assert_close(result.q_logvar, q_logvar, rtol=0, atol=1e-7)
    torch.testing.assert_close(gap[-1], kl, rtol=0, atol=1e-10)
    torch.testing.assert_close(kl, torch.full((3,), -0.5 * math.log(1 - rho**2), dtype=torch.float64),
                               rtol=0, atol=1e-12)
    # mean field never over-estimates a marginal variance
    assert (q_logvar.exp() <= torch.diagonal(cov) + 1e-12).all()


def test_mean_field_optimum_is_a_minimum_of_the_kl():
    mean, cov = _target(0.7, batch=1)
    q_mu, q_logvar, kl = mean_field_optimum(mean, cov)
    p = MultivariateNormal(mean, cov.expand(1, 2, 2))
    at = lambda m, v: kl_divergence(MultivariateNormal(m, torch.diag_embed(v.exp())), p)
    torch.testing.assert_close(at(q_mu, q_logvar), kl, rtol=0, atol=1e-12)
    for shift in (torch.tensor([[0.05, 0.0]]), torch.tensor([[0.0, -0.05]])):
        shift = shift.double()
        assert (at(q_mu + shift, q_logvar) > kl).all() and (at(q_mu, q_logvar + shift) > kl).all()


def test_ascent_with_zero_steps_and_errors():
    fn = lambda m, v: -(m**2).sum(-1) - (v**2).sum(-1)
    start = torch.ones(2, 3)
    assert ascend_elbo(fn, start, start, num_steps=0).elbo.shape == (1, 2)
    with pytest.raises(TypeError, match="elbo_fn"):
        ascend_elbo("not callable", start, start)
    with pytest.raises(ValueError, match="q_logvar"):
        ascend_elbo(fn, start, torch.ones(2, 2))
    with pytest.raises(ValueError, match="lr"):
        ascend_elbo(fn, start, start, lr=0.0)
    with pytest.raises(ValueError, match="elbo_fn"):
        ascend_elbo(lambda m, v: m.sum(), start, start)
    with pytest.raises(FloatingPointError, match="step"):
        ascend_elbo(lambda m, v: (m**2 + v).sum(-1).exp(), start, start, num_steps=50, lr=10.0)


def test_monte_carlo_kl_agrees_with_torch_distributions():
    q_mu = torch.tensor([[0.0, 0.0], [1.5, -0.5], [0.3, 2.0]], dtype=torch.float64)
    q_logvar = torch.tensor([[0.0, 0.0], [-1.0, 0.5], [1.2, -2.0]], dtype=torch.float64)
    estimate, stderr = monte_carlo_kl(q_mu, q_logvar, num_samples=50_000, generator=_gen(1))
    exact = kl_divergence(Normal(q_mu, (0.5 * q_logvar).exp()), Normal(0.0, 1.0)).sum(-1)
    assert estimate.shape == stderr.shape == (3,)
    assert abs(estimate[0].item()) < 1e-12  # q = p: log q - log p is 0 for every sample
    assert ((estimate - exact).abs() <= 5 * stderr + 1e-12).all(), (estimate, exact, stderr)
    again, _ = monte_carlo_kl(q_mu, q_logvar, num_samples=50_000, generator=_gen(1))
    assert torch.equal(estimate, again)


def test_monte_carlo_elbo_agrees_with_the_reference_elbo():
    mean, cov = _target(0.5)
    log_joint = lambda z: MultivariateNormal(mean, cov).log_prob(z) + LOG_EVIDENCE  # [S, batch]
    q_mu = mean + 0.3
    q_logvar = torch.full_like(mean, -0.4)
    estimate, stderr = monte_carlo_elbo(log_joint, q_mu, q_logvar, num_samples=50_000, generator=_gen(2))
    exact = _reference_elbo(mean, cov)(q_mu, q_logvar)
    assert ((estimate - exact).abs() <= 5 * stderr).all(), (estimate, exact, stderr)
    assert (stderr > 0).all() and (stderr < 0.01).all()
    with pytest.raises(TypeError, match="log_joint"):
        monte_carlo_elbo(None, q_mu, q_logvar)
    with pytest.raises(ValueError, match="num_samples"):
        monte_carlo_elbo(log_joint, q_mu, q_logvar, num_samples=1)
    with pytest.raises(TypeError, match="generator"):
        monte_carlo_kl(q_mu, q_logvar, generator=0)


def test_ellipse_points_sit_at_the_stated_mahalanobis_distance():
    mean = torch.tensor([1.0, -2.0], dtype=torch.float64)
    cov = torch.tensor([[2.0, 0.9], [0.9, 0.7]], dtype=torch.float64)
    pts = ellipse(mean, cov, n_std=2.0, num_points=50)
    assert pts.shape == (50, 2)
    diff = pts - mean
    maha = ((diff @ torch.linalg.inv(cov)) * diff).sum(-1)
    torch.testing.assert_close(maha, torch.full((50,), 4.0, dtype=torch.float64), rtol=0, atol=1e-10)
    torch.testing.assert_close(pts[0], pts[-1], rtol=0, atol=1e-12)  # closed curve
    with pytest.raises(ValueError, match="cov"):
        ellipse(mean, torch.eye(3, dtype=torch.float64))
    with pytest.raises(ValueError, match="cov"):
        mean_field_optimum(torch.zeros(1, 2), torch.eye(3))


# ------------------------------------------------------------------- a 1-D latent: Gauss-Hermite and the best q
def _linear_1d():
    """A linear-Gaussian model with a 1-D latent (D = 3): its ELBO and posterior are closed forms."""
    W = torch.tensor([[1.5], [-0.5], [0.8]], dtype=torch.float64)
    b = torch.tensor([0.1, 0.2, -0.3], dtype=torch.float64)
    linear = LinearGaussian(W, b, 0.7)
    x = linear.sample(4, generator=_gen(3))[0]  # [4, 3]
    toy = ToyModel.from_linear_gaussian(linear)
    return linear, x, (lambda z: toy.log_joint(x, z))


def test_gauss_hermite_elbo_equals_the_closed_form_elbo():
    linear, x, log_joint = _linear_1d()
    q_mu = torch.tensor([[0.3], [-1.0], [2.0], [0.0]], dtype=torch.float64)
    q_logvar = torch.tensor([[0.0], [-2.0], [0.5], [-4.0]], dtype=torch.float64)
    # log p(x, z) is quadratic in z: Gauss-Hermite with 2 nodes is already exact
    for n_nodes in (2, 8, 60):
        torch.testing.assert_close(gauss_hermite_elbo(log_joint, q_mu, q_logvar, n_nodes=n_nodes),
                                   linear.elbo(x, q_mu, q_logvar), rtol=0, atol=1e-10)


def test_best_gaussian_q_finds_the_exact_posterior():
    linear, x, log_joint = _linear_1d()
    start = torch.zeros(4, 1, dtype=torch.float64)
    q_mu, q_logvar, elbo = best_gaussian_q(log_joint, start, start, num_steps=600, lr=0.05, n_nodes=4)
    post_mean, post_cov = linear.posterior(x)  # [4, 1], [1, 1]
    torch.testing.assert_close(q_mu, post_mean, rtol=0, atol=1e-4)
    torch.testing.assert_close(q_logvar.exp(), post_cov.diagonal().expand(4, 1), rtol=0, atol=1e-4)
    torch.testing.assert_close(elbo, linear.log_marginal(x), rtol=0, atol=1e-6)  # the gap closes


@pytest.mark.parametrize("call, error, message", [
    (lambda lj: gauss_hermite_elbo(3, torch.zeros(2, 1), torch.zeros(2, 1)), TypeError,
     "log_joint: expected a callable"),
    (lambda lj: gauss_hermite_elbo(lj, torch.zeros(2, 2), torch.zeros(2, 2)), ValueError,
     "q_mu: expected shape [batch, 1]"),
    (lambda lj: gauss_hermite_elbo(lj, torch.zeros(2, 1), torch.zeros(3, 1)), ValueError, "q_logvar"),
    (lambda lj: gauss_hermite_elbo(lj, torch.zeros(2, 1), torch.zeros(2, 1), n_nodes=1), ValueError, "n_nodes"),
    (lambda lj: gauss_hermite_elbo(lambda z: z.sum(-1)[:1], torch.zeros(2, 1), torch.zeros(2, 1)), ValueError,
     "log_joint: expected to return shape"),
    (lambda lj: best_gaussian_q(lj, torch.zeros(2, 1), torch.zeros(2, 1), lr=0), ValueError, "lr"),
])
def test_one_dimensional_helpers_reject_bad_input(call, error, message):
    log_joint = lambda z: -0.5 * z.pow(2).sum(-1)  # [K, batch]
    with pytest.raises(error, match=message.replace("[", r"\[").replace("]", r"\]")):
        call(log_joint)
