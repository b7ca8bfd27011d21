"""Unit tests for vae_lesson.core.distributions: the four formulas every VAE is made of.

Each formula is checked against an independent reference (torch.distributions or a hand-written scalar
formula), on several shapes and dtypes; the reparameterization trick is checked statistically (with a
stated tolerance), through its gradients, and for reproducibility; bad arguments must raise errors that
name the offending argument.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from support import gen as _gen
from torch.distributions import Bernoulli, Independent, Normal, kl_divergence

from vae_lesson import bernoulli_log_likelihood, gaussian_kl, gaussian_log_likelihood, reparameterize

SHAPES = [(1, 1), (4, 3), (16, 10), (3, 64)]
# (rtol, atol) per dtype: float64 agrees to round-off, float32 to a few ulps of the summed value.
TOL = {torch.float64: (1e-10, 1e-10), torch.float32: (1e-5, 1e-4)}


def _log_sigmoid(v: float) -> float:
    """log(sigmoid(v)) in plain Python, stable for any finite v (independent of torch)."""
    return -math.log1p(math.exp(-v)) if v >= 0 else v - math.log1p(math.exp(v))


# --------------------------------------------------------------------------------------------- gaussian_kl


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("shape", SHAPES)
def test_gaussian_kl_matches_torch_distributions(shape, dtype):
    g = _gen(sum(shape))
    mu = (2 * torch.randn(shape, generator=g, dtype=torch.float64)).to(dtype)
    logvar = (1.5 * torch.randn(shape, generator=g, dtype=torch.float64)).to(dtype)
    kl = gaussian_kl(mu, logvar)
    q = Independent(Normal(mu.double(), torch.exp(0.5 * logvar.double())), 1)
    p = Independent(Normal(torch.zeros_like(mu.double()), torch.ones_like(mu.double())), 1)
    expected = kl_divergence(q, p)
    assert kl.shape == (shape[0],)
    assert kl.dtype == dtype
    rtol, atol = TOL[dtype]
    torch.testing.assert_close(kl.double(), expected, rtol=rtol, atol=atol)


def test_gaussian_kl_hand_computed_value():
    # One latent dim, mu = 1, sigma^2 = e: KL = 0.5 * (1 + e - 1 - 1) = 0.5 * (e - 1).
    mu = torch.tensor([[1.0], [0.0]], dtype=torch.float64)
    logvar = torch.tensor([[1.0], [0.0]], dtype=torch.float64)
    torch.testing.assert_close(gaussian_kl(mu, logvar), torch.tensor([0.5 * (math.e - 1), 0.0], dtype=torch.float64))


@st.composite
def _mu_logvar(draw):
    batch = draw(st.integers(1, 4))
    dim = draw(st.integers(1, 6))
    mu = draw(hnp.arrays(np.float64, (batch, dim), elements=st.floats(-10, 10)))
    logvar = draw(hnp.arrays(np.float64, (batch, dim), elements=st.floats(-8, 8)))
    return torch.from_numpy(mu), torch.from_numpy(logvar)


@settings(max_examples=50, deadline=None)
@given(_mu_logvar())
def test_gaussian_kl_is_nonnegative_and_matches_reference(mu_logvar):
    mu, logvar = mu_logvar
    kl = gaussian_kl(mu, logvar)
    assert kl.shape == (mu.shape[0],)
    assert torch.isfinite(kl).all()
    # KL >= 0 mathematically; exp(l) - 1 - l can round to about -1e-16 per entry for |l| ~ 1e-9, hence -1e-12.
    assert (kl >= -1e-12).all(), kl
    q = Independent(Normal(mu, torch.exp(0.5 * logvar)), 1)
    p = Independent(Normal(torch.zeros_like(mu), torch.ones_like(mu)), 1)
    torch.testing.assert_close(kl, kl_divergence(q, p), rtol=1e-9, atol=1e-9)


@settings(max_examples=50, deadline=None)
@given(batch=st.integers(1, 4), dim=st.integers(1, 6))
def test_gaussian_kl_is_zero_at_the_prior(batch, dim):
    zeros = torch.zeros(batch, dim, dtype=torch.float64)
    assert torch.equal(gaussian_kl(zeros, zeros), torch.zeros(batch, dtype=torch.float64))


@settings(max_examples=50, deadline=None)
@given(
    dim=st.integers(1, 6),
    data=st.data(),
    which=st.sampled_from(["mu", "logvar"]),
    # |delta| >= 1e-3 so the KL (~delta^2 / 4 at least) is far above float64 round-off.
    magnitude=st.floats(1e-3, 8.0),
    sign=st.sampled_from([-1.0, 1.0]),
)
def test_gaussian_kl_is_positive_away_from_the_prior(dim, data, which, magnitude, sign):
    index = data.draw(st.integers(0, dim - 1))
    delta = sign * magnitude
    mu = torch.zeros(1, dim, dtype=torch.float64)
    logvar = torch.zeros(1, dim, dtype=torch.float64)
    (mu if which == "mu" else logvar)[0, index] = delta
    kl = gaussian_kl(mu, logvar).item()
    # The single perturbed entry contributes 0.5 * delta^2 (mu) or 0.5 * (e^delta - 1 - delta) (logvar).
    expected = 0.5 * delta**2 if which == "mu" else 0.5 * (math.expm1(delta) - delta)
    assert kl > 0
    assert kl == pytest.approx(expected, rel=1e-9)


# -------------------------------------------------------------------------------- bernoulli_log_likelihood


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("shape", SHAPES)
def test_bernoulli_log_likelihood_matches_torch_distributions(shape, dtype):
    g = _gen(100 + sum(shape))
    logits = (3 * torch.randn(shape, generator=g, dtype=torch.float64)).to(dtype)
    x = torch.bernoulli(torch.full(shape, 0.5, dtype=torch.float64), generator=g).to(dtype)
    ll = bernoulli_log_likelihood(logits, x)
    expected = Independent(Bernoulli(logits=logits.double()), 1).log_prob(x.double())
    assert ll.shape == (shape[0],)
    assert ll.dtype == dtype
    rtol, atol = TOL[dtype]
    torch.testing.assert_close(ll.double(), expected, rtol=rtol, atol=atol)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("big", [50.0, 200.0])
def test_bernoulli_log_likelihood_is_exact_for_large_logits(big, dtype):
    # Rows: one pixel each, every combination of sign(logit) and x.
    logits = torch.tensor([[big], [big], [-big], [-big]], dtype=dtype)
    x = torch.tensor([[1.0], [0.0], [1.0], [0.0]], dtype=dtype)
    ll = bernoulli_log_likelihood(logits, x)
    # The naive formula is -inf here: 1 - sigmoid(50) rounds to 0 (and sigmoid(-200) underflows in float32).
    naive = x * torch.log(torch.sigmoid(logits)) + (1 - x) * torch.log(1 - torch.sigmoid(logits))
    assert not torch.isfinite(naive.sum(-1)).all()
    assert torch.isfinite(ll).all()
    # Analytic: log p = log sigmoid(l) if x = 1 else log sigmoid(-l); ~0 when "right", ~-|l| when "wrong".
    expected = [_log_sigmoid(big), _log_sigmoid(-big), _log_sigmoid(-big), _log_sigmoid(big)]
    torch.testing.assert_close(ll.double(), torch.tensor(expected, dtype=torch.float64), rtol=1e-6, atol=1e-6)
    assert ll[0].item() == pytest.approx(0.0, abs=1e-6)
    assert ll[1].item() == pytest.approx(-big, rel=1e-6)
    # And summed over pixels in one row.
    row = bernoulli_log_likelihood(logits.T, x.T)
    assert row.item() == pytest.approx(sum(expected), rel=1e-6)


def test_bernoulli_log_likelihood_grey_pixels_are_cross_entropy():
    g = _gen(7)
    logits = 4 * torch.randn(5, 9, generator=g, dtype=torch.float64)
    x = torch.rand(5, 9, generator=g, dtype=torch.float64)
    expected = [
        sum(xv * _log_sigmoid(lv) + (1 - xv) * _log_sigmoid(-lv) for xv, lv in zip(xr, lr))
        for xr, lr in zip(x.tolist(), logits.tolist())
    ]
    torch.testing.assert_close(bernoulli_log_likelihood(logits, x), torch.tensor(expected, dtype=torch.float64))


def test_bernoulli_log_likelihood_broadcasts_k_decodes():
    g = _gen(11)
    k, batch, D = 3, 4, 5
    logits = 2 * torch.randn(k, batch, D, generator=g, dtype=torch.float64)
    x = torch.bernoulli(torch.full((batch, D), 0.5, dtype=torch.float64), generator=g)
    ll = bernoulli_log_likelihood(logits, x)
    assert ll.shape == (k, batch)
    for i in range(k):
        torch.testing.assert_close(ll[i], bernoulli_log_likelihood(logits[i], x), rtol=0, atol=0)
    torch.testing.assert_close(ll, Independent(Bernoulli(logits=logits), 1).log_prob(x.expand(k, batch, D)))


# -------------------------------------------------------------------------------- gaussian_log_likelihood


def _normal_reference(x, mean, logvar):
    logvar = torch.as_tensor(logvar, dtype=x.dtype)
    std = torch.exp(0.5 * logvar)
    mean, std = torch.broadcast_tensors(mean, std)
    mean, std = mean.expand_as(x), std.expand_as(x)
    return Independent(Normal(mean, std), 1).log_prob(x)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("logvar_kind", ["tensor", "scalar_tensor", "row_tensor", "float"])
def test_gaussian_log_likelihood_matches_torch_distributions(logvar_kind, dtype):
    g = _gen(21)
    x = torch.randn(6, 4, generator=g, dtype=torch.float64).to(dtype)
    mean = torch.randn(6, 4, generator=g, dtype=torch.float64).to(dtype)
    logvar = {
        "tensor": torch.randn(6, 4, generator=g, dtype=torch.float64).to(dtype),
        "scalar_tensor": torch.tensor(-0.7, dtype=dtype),
        "row_tensor": torch.randn(4, generator=g, dtype=torch.float64).to(dtype),
        "float": 0.3,
    }[logvar_kind]
    ll = gaussian_log_likelihood(x, mean, logvar)
    assert ll.shape == (6,)
    rtol, atol = TOL[dtype]
    torch.testing.assert_close(ll.double(), _normal_reference(x.double(), mean.double(),
                                                              logvar if isinstance(logvar, float) else logvar.double()),
                               rtol=rtol, atol=atol)


def test_gaussian_log_likelihood_hand_computed_value():
    # Standard normal at 0 in 2 dims: -log(2 pi). With logvar = log 4 and x - mean = 2: -0.5*(log 2pi + log 4 + 1).
    x = torch.zeros(1, 2, dtype=torch.float64)
    assert gaussian_log_likelihood(x, x, 0.0).item() == pytest.approx(-math.log(2 * math.pi), rel=1e-12)
    x1 = torch.tensor([[2.0]], dtype=torch.float64)
    got = gaussian_log_likelihood(x1, torch.zeros(1, 1, dtype=torch.float64), math.log(4.0)).item()
    assert got == pytest.approx(-0.5 * (math.log(2 * math.pi) + math.log(4.0) + 1.0), rel=1e-12)


def test_gaussian_log_likelihood_broadcasts_leading_dims():
    g = _gen(22)
    z = torch.randn(5, 3, 2, generator=g, dtype=torch.float64)  # [k, batch, d]
    mu = torch.randn(3, 2, generator=g, dtype=torch.float64)  # [batch, d]
    logvar = torch.randn(3, 2, generator=g, dtype=torch.float64)
    ll = gaussian_log_likelihood(z, mu, logvar)
    assert ll.shape == (5, 3)
    torch.testing.assert_close(ll, _normal_reference(z, mu, logvar))


# -------------------------------------------------------------------------------------------- reparameterize


def test_reparameterize_sample_moments():
    n = 200_000
    mu0 = torch.tensor([1.5, -2.0, 0.0], dtype=torch.float64)
    logvar0 = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    mu = mu0.expand(n, 3)
    logvar = logvar0.expand(n, 3)
    z = reparameterize(mu, logvar, generator=_gen(0))
    assert z.shape == (n, 3)
    var = logvar0.exp()
    # Tolerance: 5 standard errors. SE(mean) = sigma / sqrt(n); SE(sample variance) ~= sigma^2 sqrt(2 / n).
    se_mean = var.sqrt() / math.sqrt(n)
    se_var = var * math.sqrt(2 / n)
    assert ((z.mean(0) - mu0).abs() <= 5 * se_mean).all(), (z.mean(0), mu0, se_mean)
    assert ((z.var(0) - var).abs() <= 5 * se_var).all(), (z.var(0), var, se_var)
    # Independent dimensions: off-diagonal correlations within 5 / sqrt(n).
    corr = torch.corrcoef(z.T)
    off = corr - torch.diag(torch.diagonal(corr))
    assert off.abs().max() <= 5 / math.sqrt(n)


def test_reparameterize_gradients_reach_mu_and_logvar():
    g_mu = torch.randn(4, 3, generator=_gen(1), dtype=torch.float64)
    g_lv = torch.randn(4, 3, generator=_gen(2), dtype=torch.float64)
    mu = g_mu.clone().requires_grad_(True)
    logvar = g_lv.clone().requires_grad_(True)
    z = reparameterize(mu, logvar, generator=_gen(3))
    z.sum().backward()
    # The same seed gives back the eps used inside: z = mu + exp(logvar / 2) * eps.
    eps = torch.randn(4, 3, generator=_gen(3), dtype=torch.float64)
    torch.testing.assert_close(z.detach(), g_mu + torch.exp(0.5 * g_lv) * eps, rtol=0, atol=1e-14)
    torch.testing.assert_close(mu.grad, torch.ones_like(g_mu), rtol=0, atol=0)
    torch.testing.assert_close(logvar.grad, 0.5 * torch.exp(0.5 * g_lv) * eps, rtol=1e-12, atol=1e-14)


def test_reparameterize_is_reproducible_with_a_generator():
    mu = torch.zeros(10, 2)
    logvar = torch.zeros(10, 2)
    a = reparameterize(mu, logvar, generator=_gen(5))
    b = reparameterize(mu, logvar, generator=_gen(5))
    c = reparameterize(mu, logvar, generator=_gen(6))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    # Shape and dtype follow mu, including extra leading dimensions.
    z = reparameterize(torch.zeros(7, 3, 2, dtype=torch.float64), torch.zeros(7, 3, 2, dtype=torch.float64))
    assert z.shape == (7, 3, 2) and z.dtype == torch.float64


def test_reparameterize_zero_variance_limit_returns_mu():
    mu = torch.randn(5, 2, generator=_gen(8), dtype=torch.float64)
    z = reparameterize(mu, torch.full_like(mu, -200.0), generator=_gen(9))
    torch.testing.assert_close(z, mu, rtol=0, atol=1e-40)


# ---------------------------------------------------------------------------------------------- bad input

GOOD = torch.zeros(2, 3)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: gaussian_kl([[0.0, 0.0, 0.0]], GOOD), TypeError, r"^mu: expected a torch\.Tensor, got list"),
        (lambda: gaussian_kl(GOOD, torch.zeros(2, 3, dtype=torch.int64)), TypeError, r"^logvar: .*floating-point"),
        (lambda: gaussian_kl(torch.zeros(3), torch.zeros(3)), ValueError, r"^mu: expected a 2-D tensor"),
        (lambda: gaussian_kl(GOOD, torch.zeros(2, 4)), ValueError, r"^logvar: expected the shape of mu"),
        (lambda: gaussian_kl(torch.tensor([[0.0, float("nan"), 0.0]]), torch.zeros(1, 3)), ValueError,
         r"^mu: expected finite values"),
        (lambda: gaussian_kl(GOOD, torch.tensor([[0.0, float("inf"), 0.0]] * 2)), ValueError, r"^logvar: .*finite"),
        (lambda: bernoulli_log_likelihood(GOOD, torch.full((2, 3), 1.5)), ValueError,
         re.escape("x: expected values <= 1.0, got a maximum of 1.5")),
        (lambda: bernoulli_log_likelihood(GOOD, torch.full((2, 3), -0.25)), ValueError,
         re.escape("x: expected values >= 0.0, got a minimum of -0.25")),
        (lambda: bernoulli_log_likelihood(GOOD, torch.ones(2, 3, dtype=torch.uint8)), TypeError, r"^x: "),
        (lambda: bernoulli_log_likelihood(GOOD, torch.tensor([[0.0, float("nan"), 1.0]] * 2)), ValueError, r"^x: "),
        (lambda: bernoulli_log_likelihood(torch.zeros(2, 4), GOOD), ValueError, r"^logits: .*\[2, 3\]"),
        (lambda: bernoulli_log_likelihood(torch.zeros(3, 3, 2, 3), GOOD), ValueError, r"^logits: expected a 2-D or"),
        (lambda: bernoulli_log_likelihood(torch.full((2, 3), float("nan")), GOOD), ValueError, r"^logits: .*finite"),
        (lambda: bernoulli_log_likelihood("logits", GOOD), TypeError, r"^logits: expected a torch\.Tensor"),
        (lambda: gaussian_log_likelihood(GOOD, torch.zeros(2, 4), 0.0), ValueError, r"^mean: .*broadcasts"),
        (lambda: gaussian_log_likelihood(GOOD, GOOD, torch.zeros(5)), ValueError, r"^logvar: .*broadcasts"),
        (lambda: gaussian_log_likelihood(GOOD, GOOD, float("nan")), ValueError, r"^logvar: expected a finite number"),
        (lambda: gaussian_log_likelihood(GOOD, GOOD, "0.0"), TypeError, r"^logvar: expected a real number"),
        (lambda: gaussian_log_likelihood(torch.tensor(1.0), torch.tensor(1.0), 0.0), ValueError, r"^x: "),
        (lambda: gaussian_log_likelihood(GOOD.long(), GOOD, 0.0), TypeError, r"^x: "),
        (lambda: reparameterize(GOOD, torch.zeros(3, 2)), ValueError, r"^logvar: expected the shape of mu"),
        (lambda: reparameterize(GOOD.int(), GOOD), TypeError, r"^mu: "),
        (lambda: reparameterize(GOOD, GOOD, generator=42), TypeError, r"^generator: "),
        (lambda: reparameterize(GOOD, torch.full((2, 3), float("nan"))), ValueError, r"^logvar: .*finite"),
    ],
)
def test_bad_input_raises_a_clear_error(call, error, match):
    with pytest.raises(error, match=match):
        call()
