"""Unit tests for vae_lesson.analysis.evaluation: the IWAE-vs-k curve, the ELBO of any q, and the per-example q.

References written independently of the package: torch.distributions for densities and KLs, quadrature
for log p(x) and for the exact ELBO of a 1-D latent, and scipy's Nelder-Mead for the best Gaussian q.
Small float64 VAEs (6 pixels) so that exact identities hold to round-off.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.optimize import minimize
from support import binary_x as _binary_x
from support import gen as _gen
from support import small_vae as _vae
from torch.distributions import Bernoulli, Independent, Normal, kl_divergence

from vae_lesson import VAE, elbo, iwae_log_weights
from vae_lesson.analysis.evaluation import (
    effective_sample_size,
    elbo_with_q,
    importance_log_weights,
    iwae_curve,
    optimise_local_posterior,
)

U = torch.linspace(-8.0, 8.0, 801, dtype=torch.float64)  # standard-normal quadrature nodes (error < 1e-5 nats)


def _log_px_z(model: VAE, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """log p(x_n | z) for z of shape [m, batch, 1] -> [m, batch], by torch.distributions."""
    with torch.no_grad():
        return Independent(Bernoulli(logits=model.decode(z)), 1).log_prob(x)


def _trapezoid_log_weights(grid: torch.Tensor) -> torch.Tensor:
    h = (grid[1] - grid[0]).item()
    w = torch.full_like(grid, math.log(h))
    w[[0, -1]] -= math.log(2)
    return w


def _exact_elbo_1d(model: VAE, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """ELBO of q = N(mu, exp(logvar)) for a 1-D latent by quadrature in u, z = mu + sigma u: [batch]."""
    z = mu.T + torch.exp(0.5 * logvar).T * U[:, None]  # [nodes, batch]
    weights = Normal(0.0, 1.0).log_prob(U).exp() * (U[1] - U[0])  # [nodes]
    expected_log_lik = (weights[:, None] * _log_px_z(model, z[..., None], x)).sum(0)  # [batch]
    q = Normal(mu[:, 0], torch.exp(0.5 * logvar[:, 0]))
    return expected_log_lik - kl_divergence(q, Normal(0.0, 1.0))


def _log_px_1d(model: VAE, x: torch.Tensor) -> torch.Tensor:
    """log p(x) = log int p(x|z) N(z; 0, 1) dz by the trapezoid rule in log space: [batch]."""
    z = torch.linspace(-12.0, 12.0, 20001, dtype=torch.float64)
    log_joint = _log_px_z(model, z[:, None, None].expand(-1, x.shape[0], 1), x) + Normal(0.0, 1.0).log_prob(z)[:, None]
    return torch.logsumexp(log_joint + _trapezoid_log_weights(z)[:, None], dim=0)


# ------------------------------------------------------------------------------------------------ iwae_curve


def test_iwae_curve_is_the_logsumexp_of_prefixes_of_one_draw():
    model, x, ks = _vae(0), _binary_x(4), [1, 2, 5, 30]
    curve = iwae_curve(model, x, ks, generator=_gen(3), max_rows=10**6)  # one chunk: one call to iwae_log_weights
    with torch.no_grad():
        log_w = iwae_log_weights(model, x, max(ks), generator=_gen(3))  # [30, 4]
    assert curve.shape == (len(ks), 4)
    for i, k in enumerate(ks):
        expected = torch.logsumexp(log_w[:k], 0) - math.log(k)
        torch.testing.assert_close(curve[i], expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("max_rows", [1, 3, 7, 1000])
def test_iwae_curve_is_exact_when_every_weight_is_p_of_x(max_rows):
    # Decoder ignores z and q = p(z): every weight equals p(x), so every bound is log p(x), for any chunking.
    model = _vae(11)
    with torch.no_grad():
        model.decoder[0].weight.zero_()
        model.encoder[-1].weight.zero_()
        model.encoder[-1].bias.zero_()
    x = _binary_x(5, seed=6)
    log_px = Independent(Bernoulli(logits=model.decode(torch.zeros(5, 2, dtype=torch.float64))), 1).log_prob(x)
    assert log_px.unique().numel() > 1  # rows differ: a mixed-up batch would be caught
    curve = iwae_curve(model, x, [4, 1, 9], generator=_gen(0), max_rows=max_rows)
    torch.testing.assert_close(curve, log_px.detach().expand(3, 5), rtol=0, atol=1e-12)


def test_iwae_curve_rises_towards_the_quadrature_log_likelihood():
    model = _vae(0, latent_dim=1, hidden_dims=(4,))
    x = _binary_x(3, seed=5)
    log_px = _log_px_1d(model, x)
    exact_elbo = _exact_elbo_1d(model, x, *[t.detach() for t in model.encode(x)])
    R = 40  # repeats of each image: the means below have standard errors of ~0.01 nats or less
    curve = iwae_curve(model, x.repeat(R, 1), [1, 10, 1000], generator=_gen(1)).view(3, R, 3)
    mean, se = curve.mean(1), curve.std(1) / math.sqrt(R)
    assert (mean[0] - exact_elbo).abs().max() < 5 * se[0].max() + 1e-3  # k = 1 is the ELBO in expectation
    assert (mean[1] > mean[0]).all() and (mean[2] > mean[1]).all()
    assert (mean[2] <= log_px + 5 * se[2] + 1e-3).all()
    assert (log_px - mean[2]).max() < 0.02, (log_px, mean[2])


# ------------------------------------------------------------------------------------------------ elbo_with_q


@pytest.mark.parametrize("n_samples", [1, 3])
def test_elbo_with_the_encoders_q_is_the_packages_elbo(n_samples):
    model, x = _vae(2), _binary_x(5)
    mu, logvar = model.encode(x)
    mine = elbo_with_q(model, x, mu, logvar, n_samples=n_samples, generator=_gen(4))
    theirs = elbo(model, x, n_samples=n_samples, generator=_gen(4))
    for a, b in zip(mine, theirs):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


def test_elbo_with_q_and_given_noise_matches_torch_distributions():
    model, x = _vae(3), _binary_x(4)
    g = _gen(5)
    mu = torch.randn(4, 2, generator=g, dtype=torch.float64)
    logvar = torch.randn(4, 2, generator=g, dtype=torch.float64)
    eps = torch.randn(7, 4, 2, generator=g, dtype=torch.float64)
    terms = elbo_with_q(model, x, mu, logvar, eps=eps)
    q = Normal(mu, torch.exp(0.5 * logvar))
    z = q.loc + q.scale * eps  # [7, 4, 2]
    with torch.no_grad():
        reconstruction = Independent(Bernoulli(logits=model.decode(z)), 1).log_prob(x).mean(0)
    kl = kl_divergence(q, Normal(0.0, 1.0)).sum(-1)
    torch.testing.assert_close(terms.reconstruction, reconstruction, rtol=0, atol=1e-12)
    torch.testing.assert_close(terms.kl, kl, rtol=0, atol=1e-12)
    torch.testing.assert_close(terms.elbo, reconstruction - kl, rtol=0, atol=1e-12)


# ------------------------------------------------------------------------------------ optimise_local_posterior


def _best_gaussian_by_scipy(model: VAE, x_row: torch.Tensor) -> float:
    def negative_elbo(params):
        mu = torch.tensor([[params[0]]], dtype=torch.float64)
        logvar = torch.tensor([[params[1]]], dtype=torch.float64)
        return -_exact_elbo_1d(model, x_row[None], mu, logvar).item()

    starts = [(-1.0, -1.0), (1.0, -1.0)]  # two starts: a 1-D posterior may be skewed or bimodal
    results = [minimize(negative_elbo, np.array(s), method="Nelder-Mead",
                        options={"xatol": 1e-6, "fatol": 1e-9, "maxiter": 2000}) for s in starts]
    return -min(r.fun for r in results)


def test_local_q_closes_the_amortization_gap_of_a_1d_latent():
    model = _vae(0, latent_dim=1, hidden_dims=(4,))
    x = _binary_x(3, seed=5)
    with torch.no_grad():
        amortized = _exact_elbo_1d(model, x, *model.encode(x))
    mu, logvar = optimise_local_posterior(model, x, num_steps=500, lr=0.02, n_samples=32, generator=_gen(0))
    local = _exact_elbo_1d(model, x, mu, logvar)
    best = torch.tensor([_best_gaussian_by_scipy(model, row) for row in x], dtype=torch.float64)
    assert (local >= amortized).all(), (local, amortized)
    assert (best - local).max() < 0.01, (best, local)  # reaches the best Gaussian to within 0.01 nats
    assert (local <= _log_px_1d(model, x) + 1e-9).all()  # and no Gaussian beats log p(x)
    assert (amortized < best - 0.05).any()  # the test is not vacuous: the untrained encoder was not optimal


def test_when_the_decoder_ignores_z_the_best_q_is_the_prior():
    # Then the ELBO is log p(x) - KL(q || p(z)), maximised by q = N(0, I) exactly.
    model = _vae(4)
    with torch.no_grad():
        model.decoder[0].weight.zero_()
    x = _binary_x(5)
    mu, logvar = optimise_local_posterior(model, x, num_steps=300, lr=0.05, generator=_gen(1))
    torch.testing.assert_close(mu, torch.zeros_like(mu), rtol=0, atol=2e-3)
    torch.testing.assert_close(logvar, torch.zeros_like(logvar), rtol=0, atol=2e-3)


def test_fixed_noise_makes_it_deterministic_and_it_never_lowers_that_objective():
    model, x = _vae(5), _binary_x(6)
    eps = torch.randn(8, 6, 2, generator=_gen(2), dtype=torch.float64)
    params = [p.detach().clone() for p in model.parameters()]
    mu_a, lv_a = optimise_local_posterior(model, x, num_steps=100, lr=0.01, eps=eps)
    mu_b, lv_b = optimise_local_posterior(model, x, num_steps=100, lr=0.01, eps=eps)
    assert torch.equal(mu_a, mu_b) and torch.equal(lv_a, lv_b)
    with torch.no_grad():
        before = elbo_with_q(model, x, *model.encode(x), eps=eps).elbo
        after = elbo_with_q(model, x, mu_a, lv_a, eps=eps).elbo
    assert (after >= before).all(), (before, after)
    assert (after - before).min() > 0.01
    # The decoder (and encoder) stayed frozen, and no gradient was accumulated in them.
    for p, p0 in zip(model.parameters(), params):
        assert torch.equal(p, p0) and p.grad is None


def test_zero_steps_return_the_encoder_output():
    model, x = _vae(6), _binary_x(3)
    mu, logvar = optimise_local_posterior(model, x, num_steps=0)
    mu0, logvar0 = model.encode(x)
    assert torch.equal(mu, mu0) and torch.equal(logvar, logvar0)
    assert not mu.requires_grad and not logvar.requires_grad


def test_a_diverging_optimisation_stops_with_a_clear_error():
    model, x = _vae(7), _binary_x(3)
    with pytest.raises(FloatingPointError, match=r"try lr="):
        optimise_local_posterior(model, x, num_steps=50, lr=1e4, generator=_gen(0))


# ---------------------------------------------------------------------- importance weights with any proposal


@pytest.mark.parametrize("max_rows", [2, 1000])
def test_importance_log_weights_are_iwae_curves_draws(max_rows):
    model, x, ks = _vae(1), _binary_x(5), [1, 3, 40]
    log_w = importance_log_weights(model, x, 40, generator=_gen(2), max_rows=max_rows)  # [40, 5]
    curve = iwae_curve(model, x, ks, generator=_gen(2), max_rows=max_rows)
    assert log_w.shape == (40, 5)
    for i, k in enumerate(ks):
        torch.testing.assert_close(curve[i], torch.logsumexp(log_w[:k], 0) - math.log(k), rtol=0, atol=1e-12)
    mu, logvar = model.encode(x)  # the encoder's q given explicitly: the very same draws
    same = importance_log_weights(model, x, 40, generator=_gen(2), mu=mu.detach(), logvar=logvar.detach(),
                                  max_rows=max_rows)
    torch.testing.assert_close(same, log_w, rtol=0, atol=1e-12)


def test_a_given_proposal_gives_weights_of_p_x_z_over_that_q():
    # 1-D latent: the weights' mean is p(x) by quadrature for a proposal that is not the encoder's, and each
    # weight is p(x|z) p(z) / q(z) by torch.distributions at the z it was drawn at.
    model = _vae(0, latent_dim=1, hidden_dims=(4,))
    x = _binary_x(3, seed=5)
    mu = torch.tensor([[0.5], [-0.3], [1.0]], dtype=torch.float64)
    logvar = torch.tensor([[0.2], [0.0], [-0.5]], dtype=torch.float64)
    log_w = importance_log_weights(model, x, 200_000, generator=_gen(3), mu=mu, logvar=logvar)
    estimate = torch.logsumexp(log_w, 0) - math.log(log_w.shape[0])
    torch.testing.assert_close(estimate, _log_px_1d(model, x), rtol=0, atol=0.01)
    z = mu.T + torch.exp(0.5 * logvar).T * torch.randn(4, 3, generator=_gen(3), dtype=torch.float64)  # [4, 3]
    q, prior = Normal(mu.T, torch.exp(0.5 * logvar).T), Normal(0.0, 1.0)
    expected = _log_px_z(model, z[..., None], x) + prior.log_prob(z) - q.log_prob(z)  # [4, 3]
    first = importance_log_weights(model, x, 4, generator=_gen(3), mu=mu, logvar=logvar)
    torch.testing.assert_close(first, expected, rtol=0, atol=1e-10)


def test_iwae_curve_with_a_better_proposal_is_tighter():
    # The locally optimised q as the proposal: a tighter bound than the encoder's at the same k.
    model, x = _vae(3, latent_dim=1, hidden_dims=(4,)), _binary_x(3, seed=5)
    mu, logvar = optimise_local_posterior(model, x, num_steps=300, lr=0.05, n_samples=8, generator=_gen(0))
    amortized = iwae_curve(model, x.repeat(200, 1), [5], generator=_gen(1))
    local = iwae_curve(model, x.repeat(200, 1), [5], generator=_gen(1), mu=mu.repeat(200, 1),
                       logvar=logvar.repeat(200, 1))
    assert local.mean() > amortized.mean()
    assert (local.view(200, 3).mean(0) <= _log_px_1d(model, x) + 1e-2).all()


def test_effective_sample_size_against_its_definition():
    w = torch.rand(50, 4, generator=_gen(0), dtype=torch.float64) ** 4  # [50, 4], uneven weights
    expected = w.sum(0) ** 2 / w.pow(2).sum(0)
    torch.testing.assert_close(effective_sample_size(w.log() - 300.0), expected, rtol=1e-10, atol=0)
    equal = effective_sample_size(torch.zeros(7, 2, dtype=torch.float64))
    torch.testing.assert_close(equal, torch.full((2,), 7.0, dtype=torch.float64))
    one = effective_sample_size(torch.tensor([[0.0], [-1e4], [-1e4]], dtype=torch.float64))
    torch.testing.assert_close(one, torch.ones(1, dtype=torch.float64))


def test_the_local_optimisation_can_start_from_a_given_q():
    model, x = _vae(6), _binary_x(3)
    mu0, logvar0 = torch.full((3, 2), 0.3, dtype=torch.float64), torch.full((3, 2), -0.2, dtype=torch.float64)
    mu, logvar = optimise_local_posterior(model, x, num_steps=0, mu=mu0, logvar=logvar0)
    assert torch.equal(mu, mu0) and torch.equal(logvar, logvar0)
    eps = torch.randn(4, 3, 2, generator=_gen(1), dtype=torch.float64)
    mu1, logvar1 = optimise_local_posterior(model, x, num_steps=30, eps=eps, mu=mu0, logvar=logvar0)
    before = elbo_with_q(model, x, mu0, logvar0, eps=eps).elbo
    after = elbo_with_q(model, x, mu1, logvar1, eps=eps).elbo
    assert (after > before).all()


# ------------------------------------------------------------------------------------------------- errors

X6 = torch.full((3, 6), 0.5, dtype=torch.float64)
Q = torch.zeros(3, 2, dtype=torch.float64)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda m: iwae_curve(m, X6, []), ValueError, r"^ks: expected at least one"),
        (lambda m: iwae_curve(m, X6, [1, 0]), ValueError, r"^ks\[1\]: expected an int >= 1"),
        (lambda m: iwae_curve(m, X6, [2.5]), TypeError, r"^ks\[0\]: "),
        (lambda m: iwae_curve(m, X6, 10), TypeError, r"^ks: expected a sequence"),
        (lambda m: iwae_curve(m, X6, [1], max_rows=0), ValueError, r"^max_rows: "),
        (lambda m: iwae_curve(m, torch.rand(3, 5, dtype=torch.float64), [1]), ValueError, r"^X: expected shape"),
        (lambda m: iwae_curve(m, X6 + 1, [1]), ValueError, r"^X: expected values <= 1"),
        (lambda m: iwae_curve("model", X6, [1]), TypeError, r"^model: "),
        (lambda m: elbo_with_q(m, X6, Q, Q[:, :1]), ValueError, r"^logvar: expected the shape of mu"),
        (lambda m: elbo_with_q(m, X6, Q[:2], Q[:2]), ValueError, r"^mu: expected one row per example"),
        (lambda m: elbo_with_q(m, X6, Q, Q, eps=torch.zeros(4, 2, 2, dtype=torch.float64)), ValueError, r"^eps: "),
        (lambda m: elbo_with_q(m, X6, Q, Q, n_samples=0), ValueError, r"^n_samples: "),
        (lambda m: optimise_local_posterior(m, X6, num_steps=-1), ValueError, r"^num_steps: "),
        (lambda m: optimise_local_posterior(m, X6, lr=0), ValueError, r"^lr: expected a number > 0"),
        (lambda m: optimise_local_posterior(m, X6, generator=1), TypeError, r"^generator: "),
        (lambda m: optimise_local_posterior(m, X6, eps=torch.zeros(2, 3, 3, dtype=torch.float64)), ValueError,
         r"^eps: expected shape \[n_samples, 3, 2\]"),
        (lambda m: iwae_curve(m, X6, [1], mu=Q), TypeError, r"^mu, logvar: expected both tensors"),
        (lambda m: importance_log_weights(m, X6, 2, mu=Q[:2], logvar=Q[:2]), ValueError,
         r"^mu: expected one row per example"),
        (lambda m: importance_log_weights(m, X6, 0), ValueError, r"^k: "),
        (lambda m: optimise_local_posterior(m, X6, mu=Q, logvar=Q[:, :1]), ValueError, r"^logvar: "),
        (lambda m: effective_sample_size(torch.zeros(3)), ValueError, r"^log_w: expected a 2-D tensor"),
        (lambda m: effective_sample_size(torch.zeros(0, 3)), ValueError, r"^log_w: expected at least one"),
    ],
)
def test_bad_arguments_raise_clear_errors(call, error, match):
    with pytest.raises(error, match=match):
        call(_vae(0))
