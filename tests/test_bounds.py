"""Unit tests for vae_lesson.core.bounds: the ELBO and the importance-weighted (IWAE) bound.

Small VAEs (6 pixels, 1-2 latent dims) in float64 so that exact identities hold to round-off and
Monte Carlo comparisons can use stated tolerances (a number of standard errors). log p(x) of a
1-D-latent VAE is computed independently by quadrature, so the bounds can be checked against the truth.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from support import binary_x as _binary_x
from support import gen as _gen
from support import small_vae as _vae
from torch import nn
from torch.distributions import Bernoulli, Independent, Normal

from vae_lesson import (
    VAE,
    Autoencoder,
    ELBOTerms,
    bernoulli_log_likelihood,
    elbo,
    gaussian_kl,
    iwae_bound,
    iwae_log_weights,
    reconstruction_terms,
)
from vae_lesson.core.bounds import Objective


def _mean_and_se(v: torch.Tensor) -> tuple[float, float]:
    return v.mean().item(), (v.std() / math.sqrt(v.numel())).item()


# ----------------------------------------------------------------------------------------------------- elbo


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), batch=st.integers(1, 9), n_samples=st.sampled_from([1, 2, 7]),
       binary=st.booleans())
def test_elbo_terms_are_consistent(seed, batch, n_samples, binary):
    model = _vae(seed)
    torch.manual_seed(seed + 1)
    x = torch.rand(batch, 6, dtype=torch.float64)
    if binary:
        x = torch.bernoulli(x)
    terms = elbo(model, x, n_samples=n_samples, generator=_gen(seed))
    assert isinstance(terms, ELBOTerms)
    for t in terms:
        assert t.shape == (batch,)
        assert torch.isfinite(t).all()
    assert torch.equal(terms.elbo, terms.reconstruction - terms.kl)
    torch.testing.assert_close(terms.kl, gaussian_kl(*model.encode(x)), rtol=0, atol=0)
    assert (terms.kl >= 0).all()
    assert (terms.reconstruction <= 0).all()  # a Bernoulli log-likelihood of pixels in [0, 1] is <= 0


def test_elbo_is_differentiable():
    model = _vae(3)
    loss = -elbo(model, _binary_x(4), generator=_gen(0)).elbo.mean()
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    # Gradients reach both networks (the encoder through the reparameterized z and the closed-form KL).
    assert any(p.grad.abs().sum() > 0 for p in model.encoder.parameters())
    assert any(p.grad.abs().sum() > 0 for p in model.decoder.parameters())


def test_elbo_reconstruction_is_the_average_over_the_seeded_draws():
    # With the generator's seed we can rebuild the exact z the estimator used: z_s = mu + sigma * eps_s.
    model = _vae(4)
    x = _binary_x(3)
    S = 5
    terms = elbo(model, x, n_samples=S, generator=_gen(9))
    with torch.no_grad():
        mu, logvar = model.encode(x)
        eps = torch.randn(S, *mu.shape, generator=_gen(9), dtype=torch.float64)
        z = mu + torch.exp(0.5 * logvar) * eps
        expected = Independent(Bernoulli(logits=model.decode(z)), 1).log_prob(x).mean(0)
    torch.testing.assert_close(terms.reconstruction.detach(), expected, rtol=1e-12, atol=1e-12)


def test_elbo_reconstruction_matches_an_independent_monte_carlo():
    model = _vae(5)
    x = _binary_x(3, seed=2)
    S = 4000
    with torch.no_grad():
        ours = elbo(model, x, n_samples=S, generator=_gen(0)).reconstruction
        # Reference estimate with torch.distributions and independent randomness (global RNG, another seed).
        mu, logvar = model.encode(x)
        torch.manual_seed(12345)
        z = Normal(mu, torch.exp(0.5 * logvar)).sample((S,))  # [S, batch, latent]
        log_px_z = Independent(Bernoulli(logits=model.decode(z)), 1).log_prob(x)  # [S, batch]
    ref = log_px_z.mean(0)
    se = log_px_z.std(0) / math.sqrt(S)  # SE of one estimate; the difference of two has SE sqrt(2) * se
    # Tolerance: 5 standard errors of the difference of two independent S-sample means.
    assert ((ours - ref).abs() <= 5 * math.sqrt(2) * se).all(), (ours, ref, se)


def test_more_samples_reduce_the_variance_of_the_reconstruction_estimate():
    model = _vae(6)
    x = _binary_x(4, seed=3)
    R = 400  # independent repeats of each estimator, done as one big batch of copies of x
    X = x.repeat(R, 1)
    with torch.no_grad():
        one = elbo(model, X, n_samples=1, generator=_gen(1)).reconstruction.view(R, 4)
        many = elbo(model, X, n_samples=16, generator=_gen(2)).reconstruction.view(R, 4)
    var_one, var_many = one.var(0), many.var(0)
    assert (var_one > 0).all()
    # Theory: the variance drops by a factor 16; with R = 400 repeats, requiring a factor 4 is very safe.
    assert (var_many < var_one / 4).all(), (var_one, var_many)
    # Both estimators are unbiased for the same quantity: their means agree within 5 standard errors.
    se = torch.sqrt(var_one / R + var_many / R)
    assert ((one.mean(0) - many.mean(0)).abs() <= 5 * se).all()


# ----------------------------------------------------------------------------------------------------- IWAE


def test_iwae_log_weights_match_torch_distributions():
    model = _vae(7)
    x = _binary_x(3)
    k = 6
    with torch.no_grad():
        lw = iwae_log_weights(model, x, k, generator=_gen(4))
        mu, logvar = model.encode(x)
        std = torch.exp(0.5 * logvar)
        eps = torch.randn(k, *mu.shape, generator=_gen(4), dtype=torch.float64)
        z = mu + std * eps
        expected = (
            Independent(Bernoulli(logits=model.decode(z)), 1).log_prob(x)
            + Independent(Normal(torch.zeros_like(z), torch.ones_like(z)), 1).log_prob(z)
            - Independent(Normal(mu, std), 1).log_prob(z)
        )
    assert lw.shape == (k, 3)
    torch.testing.assert_close(lw, expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize(("k", "batch"), [(1, 1), (10, 5), (64, 3)])
def test_iwae_bound_single_chunk_is_logsumexp_of_the_log_weights(k, batch):
    model = _vae(8)
    x = _binary_x(batch)
    with torch.no_grad():
        bound = iwae_bound(model, x, k, generator=_gen(5))  # k * batch rows << max_rows: one chunk
        lw = iwae_log_weights(model, x, k, generator=_gen(5))
    assert bound.shape == (batch,)
    torch.testing.assert_close(bound, torch.logsumexp(lw, 0) - math.log(k), rtol=1e-12, atol=1e-12)
    # log-mean-exp >= mean: for the same draws the IWAE estimate is at least the average log weight.
    assert (bound >= lw.mean(0) - 1e-12).all()


def test_iwae_k1_equals_the_elbo_in_expectation():
    model = _vae(9)
    x = _binary_x(1, seed=4)
    n = 20_000
    X = x.repeat(n, 1)
    with torch.no_grad():
        iw = iwae_bound(model, X, 1, generator=_gen(10))
        el = elbo(model, X, generator=_gen(11)).elbo
    m_iw, se_iw = _mean_and_se(iw)
    m_el, se_el = _mean_and_se(el)
    # Tolerance: 5 standard errors of the difference of the two independent averages.
    assert abs(m_iw - m_el) <= 5 * math.hypot(se_iw, se_el), (m_iw, m_el, se_iw, se_el)


def test_iwae_bound_increases_with_k_in_expectation():
    model = _vae(0)
    with torch.no_grad():
        model.encoder[-1].bias[model.latent_dim:] -= 1.5  # a too-narrow q: a clear gap between k's
    x = _binary_x(1)
    R = 4000
    X = x.repeat(R, 1)
    stats = {}
    with torch.no_grad():
        for i, k in enumerate((1, 5, 50)):
            stats[k] = _mean_and_se(iwae_bound(model, X, k, generator=_gen(20 + i)))
    for lo, hi in ((1, 5), (5, 50)):
        (m_lo, se_lo), (m_hi, se_hi) = stats[lo], stats[hi]
        # Burda et al.: E L_k is non-decreasing in k. Here the gaps are ~0.3 nats, so beyond "not lower than
        # 4 standard errors" we can demand a strict rise of more than 4 standard errors of the difference.
        assert m_hi > m_lo + 4 * math.hypot(se_lo, se_hi), stats


def _log_px_by_quadrature(model: VAE, x: torch.Tensor, n: int = 20_001, half_width: float = 12.0) -> torch.Tensor:
    """log p(x) = log int p(x|z) N(z; 0, 1) dz for a 1-D latent, by the trapezoid rule in log space."""
    z = torch.linspace(-half_width, half_width, n, dtype=torch.float64)  # [n]
    with torch.no_grad():
        logits = model.decode(z[:, None])  # [n, D]
    log_px_z = Independent(Bernoulli(logits=logits[:, None, :]), 1).log_prob(x)  # [n, batch]
    log_pz = Normal(0.0, 1.0).log_prob(z)  # [n]
    log_w = torch.full((n,), math.log(2 * half_width / (n - 1)), dtype=torch.float64)
    log_w[[0, -1]] -= math.log(2)
    return torch.logsumexp(log_px_z + log_pz[:, None] + log_w[:, None], dim=0)  # [batch]


def test_bounds_are_below_the_exact_log_likelihood():
    model = _vae(0, latent_dim=1, hidden_dims=(4,))
    x = _binary_x(3, seed=5)
    log_px = _log_px_by_quadrature(model, x)
    # The quadrature itself is converged: a 10x coarser grid already agrees to 1e-5 (the ReLU kinks make the
    # trapezoid error O(h^2), so the 20001-point grid is good to ~1e-7, far below the tolerances used here).
    torch.testing.assert_close(_log_px_by_quadrature(model, x, n=2_001), log_px, rtol=0, atol=1e-5)
    # Sanity of the reference: p(x) summed over all 2^6 binary images is 1.
    all_x = torch.tensor([[(i >> j) & 1 for j in range(6)] for i in range(64)], dtype=torch.float64)
    assert torch.logsumexp(_log_px_by_quadrature(model, all_x), 0).item() == pytest.approx(0.0, abs=1e-9)

    R = 20  # repeats of the k = 5000 estimate (SD ~0.01 nats each), so their mean has SD ~0.0025
    with torch.no_grad():
        iw = iwae_bound(model, x.repeat(R, 1), 5000, generator=_gen(30)).view(R, 3).mean(0)
        el = elbo(model, x, n_samples=20_000, generator=_gen(31))
    # IWAE with k = 5000 is within 0.05 nats below log p(x); 0.01 allowance above for Monte Carlo noise.
    assert (iw <= log_px + 0.01).all(), (iw, log_px)
    assert (iw >= log_px - 0.05).all(), (iw, log_px)
    # The ELBO is a looser bound: gap log p(x) - ELBO = KL(q || posterior) > 0 (here > 0.05 nats).
    assert (el.elbo < log_px - 0.05).all(), (el.elbo, log_px)
    assert (el.elbo < iw).all()


def _constant_weight_model() -> VAE:
    """A VAE whose decoder ignores z and whose encoder outputs q = N(0, I) = p(z): every log weight = log p(x|z)."""
    model = _vae(11)
    with torch.no_grad():
        model.decoder[0].weight.zero_()
        model.encoder[-1].weight.zero_()
        model.encoder[-1].bias.zero_()
    return model


@pytest.mark.parametrize("max_rows", [1, 2, 7, 64, 2**16])
@pytest.mark.parametrize("k", [1, 2, 7, 50, 333])
def test_iwae_bound_chunking_is_exact(k, max_rows):
    model = _constant_weight_model()
    x = _binary_x(5, seed=6)
    with torch.no_grad():
        mu, logvar = model.encode(x)
        assert torch.equal(mu, torch.zeros_like(mu)) and torch.equal(logvar, torch.zeros_like(logvar))
        expected = bernoulli_log_likelihood(model.decode(torch.zeros(5, 2, dtype=torch.float64)), x)  # [5]
        assert expected.unique().numel() > 1  # rows differ, so a permuted or mixed-up batch would be caught
        bound = iwae_bound(model, x, k, generator=_gen(k), max_rows=max_rows)
    assert bound.shape == (5,)
    torch.testing.assert_close(bound, expected, rtol=0, atol=1e-12)


def test_iwae_bound_chunked_agrees_statistically_with_unchunked():
    model = _vae(12)
    x = _binary_x(1, seed=7)
    R = 300
    X = x.repeat(R, 1)
    with torch.no_grad():
        small = iwae_bound(model, X, 20, generator=_gen(40), max_rows=7)
        big = iwae_bound(model, X, 20, generator=_gen(41))
    (m_s, se_s), (m_b, se_b) = _mean_and_se(small), _mean_and_se(big)
    assert abs(m_s - m_b) <= 5 * math.hypot(se_s, se_b), (m_s, m_b, se_s, se_b)


def test_iwae_bound_of_an_empty_batch_is_empty():
    out = iwae_bound(_vae(0), torch.zeros(0, 6, dtype=torch.float64), 3)
    assert out.shape == (0,)


# ------------------------------------------------------------------------------------------- autoencoder


def test_reconstruction_terms_of_an_autoencoder():
    torch.manual_seed(0)
    model = Autoencoder(input_dim=6, latent_dim=2, hidden_dims=(8,)).double()
    x = _binary_x(5)
    out = reconstruction_terms(model, x)
    assert isinstance(out, Objective) and list(out.terms) == ["reconstruction"] and out.beta_term is None
    expected = Independent(Bernoulli(logits=model(x)), 1).log_prob(x)
    torch.testing.assert_close(out.terms["reconstruction"], expected, rtol=1e-12, atol=1e-12)
    assert torch.equal(out.loss, -out.terms["reconstruction"])


# ------------------------------------------------------------------------------------------------- errors

X6 = torch.full((3, 6), 0.5, dtype=torch.float64)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda m: iwae_bound(m, X6, 0), ValueError, r"^k: expected an int >= 1"),
        (lambda m: iwae_bound(m, X6, -3), ValueError, r"^k: "),
        (lambda m: iwae_bound(m, X6, 1.5), TypeError, r"^k: expected an int"),
        (lambda m: iwae_bound(m, X6, True), TypeError, r"^k: "),
        (lambda m: iwae_log_weights(m, X6, 0), ValueError, r"^k: "),
        (lambda m: iwae_bound(m, X6, 5, max_rows=0), ValueError, r"^max_rows: "),
        (lambda m: iwae_bound(m, X6, 5, generator=0), TypeError, r"^generator: "),
        (lambda m: elbo(m, X6, n_samples=0), ValueError, r"^n_samples: expected an int >= 1"),
        (lambda m: elbo(m, X6, n_samples=2.0), TypeError, r"^n_samples: "),
        (lambda m: elbo(m, X6, generator="seed"), TypeError, r"^generator: "),
        (lambda m: elbo("not a model", X6), TypeError, r"^model: "),
        (lambda m: iwae_bound(nn.Linear(6, 4), X6, 5), TypeError, r"^model: "),
        (lambda m: iwae_log_weights(object(), X6, 5), TypeError, r"^model: "),
        (lambda m: reconstruction_terms(None, X6), TypeError, r"^model: "),
        (lambda m: elbo(Autoencoder(6, 2, (8,)).double(), X6), TypeError, r"^model: .*\(mu, logvar\)"),
        (lambda m: elbo(m, torch.full((3, 5), 0.5, dtype=torch.float64)), ValueError, r"^x: .*\[batch, 6\]"),
        (lambda m: iwae_bound(m, torch.full((3, 7), 0.5, dtype=torch.float64), 5), ValueError, r"^x: "),
        (lambda m: elbo(m, torch.full((3, 6), 2.0, dtype=torch.float64)), ValueError, r"^x: expected values <= 1"),
        (lambda m: elbo(m, torch.full((6,), 0.5, dtype=torch.float64)), ValueError, r"^x: expected a 2-D"),
        (lambda m: iwae_bound(m, torch.ones(3, 6, dtype=torch.int64), 5), TypeError, r"^x: "),
    ],
)
def test_bad_input_raises_a_clear_error(call, error, match):
    model = _vae(0)
    with pytest.raises(error, match=match):
        call(model)
