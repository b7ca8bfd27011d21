"""Unit tests for vae_lesson.analysis.collapse: KL per latent dimension, active units, and the free-bits objective.

References written independently of the package: torch.distributions' KL, NumPy's variance, and the
free-bits formula of Kingma et al. (2016) written out directly; plus exact cases (units whose encoder
weights are zero have activity exactly 0).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from support import gen as _gen
from torch.distributions import Normal, kl_divergence

from vae_lesson import VAE, elbo, evaluate, fit, gaussian_kl
from vae_lesson.analysis.collapse import ActiveUnits, active_units, free_bits_objective, kl_per_dimension, kl_terms
from vae_lesson.core.training import objective_loss


def _vae(seed: int = 0, latent_dim: int = 4) -> VAE:
    torch.manual_seed(seed)
    return VAE(input_dim=6, latent_dim=latent_dim, hidden_dims=(8,)).double()


def _data(n: int = 50, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, 6, generator=_gen(seed), dtype=torch.float64)


# -------------------------------------------------------------------------------------------- KL per dimension


def test_kl_terms_match_torch_distributions_and_sum_to_gaussian_kl():
    g = _gen(0)
    mu = torch.randn(5, 3, generator=g, dtype=torch.float64)
    logvar = torch.randn(5, 3, generator=g, dtype=torch.float64)
    terms = kl_terms(mu, logvar)
    reference = kl_divergence(Normal(mu, torch.exp(0.5 * logvar)), Normal(0.0, 1.0))  # [5, 3]
    torch.testing.assert_close(terms, reference, rtol=0, atol=1e-12)
    torch.testing.assert_close(terms.sum(-1), gaussian_kl(mu, logvar), rtol=0, atol=1e-12)


@pytest.mark.parametrize("batch_size", [1, 7, 1000])
def test_kl_per_dimension_sums_to_the_mean_kl(batch_size):
    model, X = _vae(1), _data()
    per_dim = kl_per_dimension(model, X, batch_size=batch_size)
    assert per_dim.shape == (4,) and (per_dim >= 0).all()
    with torch.no_grad():
        mean_kl = gaussian_kl(*model.encode(X)).mean()
    torch.testing.assert_close(per_dim.sum(), mean_kl, rtol=0, atol=1e-12)
    assert per_dim.sum().item() == pytest.approx(evaluate(model, X)["kl"], abs=1e-9)


def test_a_unit_that_equals_the_prior_has_zero_kl():
    model = _vae(2)
    with torch.no_grad():  # unit 2: mu = 0 and logvar = 0 for every x, i.e. q(z_2|x) = p(z_2)
        model.encoder[-1].weight[[2, 4 + 2]] = 0.0
        model.encoder[-1].bias[[2, 4 + 2]] = 0.0
    per_dim = kl_per_dimension(model, _data())
    assert per_dim[2].item() == 0.0
    assert (per_dim[[0, 1, 3]] > 0).all()


# ----------------------------------------------------------------------------------------------- active units


def test_active_units_count_exactly_the_units_the_encoder_uses():
    model = _vae(3, latent_dim=5)
    with torch.no_grad():
        model.encoder[-1].weight[:5] *= 10.0  # make the used units clearly active
        model.encoder[-1].weight[[1, 3]] = 0.0  # units 1 and 3: mu does not depend on x ...
        model.encoder[-1].bias[[1, 3]] = 0.7  # ... even with a non-zero (constant) mean
    X = _data(200)
    result = active_units(model, X)
    assert isinstance(result, ActiveUnits)
    assert result.count == 3
    assert result.activity[[1, 3]].abs().max().item() < 1e-20
    assert (result.activity[[0, 2, 4]] > 0.01).all()
    with torch.no_grad():
        mu = model.encode(X)[0].numpy()
    np.testing.assert_allclose(result.activity.numpy(), np.var(mu, axis=0), rtol=1e-10, atol=1e-15)


def test_the_threshold_decides_the_count():
    model, X = _vae(4), _data()
    activity = active_units(model, X).activity
    for threshold in [0.0, *activity.tolist()]:
        assert active_units(model, X, threshold=threshold).count == int((activity > threshold).sum())
    assert active_units(model, X, threshold=activity.max().item()).count == 0


# -------------------------------------------------------------------------------------------------- free bits


def test_free_bits_zero_is_the_elbo():
    model, x = _vae(5), _data(9)
    mine = free_bits_objective(0.0)(model, x, generator=_gen(3))
    theirs = elbo(model, x, generator=_gen(3))
    for name in ("reconstruction", "kl", "elbo"):
        torch.testing.assert_close(mine.terms[name], getattr(theirs, name), rtol=0, atol=1e-12)
    torch.testing.assert_close(mine.terms["free_bits_kl"], theirs.kl, rtol=0, atol=1e-12)
    torch.testing.assert_close(objective_loss(mine, 2.0), objective_loss(theirs, 2.0), rtol=0, atol=1e-12)


@pytest.mark.parametrize("lambda_", [0.005, 0.03, 0.06, 5.0])
def test_free_bits_batch_kl_is_the_clamped_sum_with_the_right_gradient(lambda_):
    model, x = _vae(6), _data(16)
    out = free_bits_objective(lambda_)(model, x, generator=_gen(4))
    reference_elbo = elbo(model, x, generator=_gen(4))
    for name in ("reconstruction", "kl", "elbo"):  # the true ELBO's terms, by their own names
        torch.testing.assert_close(out.terms[name], getattr(reference_elbo, name), rtol=0, atol=1e-12)
    clamped = out.terms["free_bits_kl"]
    assert out.beta_term is clamped and torch.equal(out.loss, -out.terms["reconstruction"])
    torch.testing.assert_close(out.terms["free_bits_objective"], out.terms["reconstruction"] - clamped,
                               rtol=0, atol=1e-12)
    # Kingma et al. (2016): sum_j max(lambda, batch-mean KL_j), written out with torch.distributions.
    mu, logvar = model.encode(x)
    per_dim = kl_divergence(Normal(mu, torch.exp(0.5 * logvar)), Normal(0.0, 1.0)).mean(0)  # [latent_dim]
    reference = torch.clamp(per_dim, min=lambda_).sum()
    torch.testing.assert_close(clamped.mean(), reference, rtol=0, atol=1e-12)
    assert (clamped.mean() >= reference_elbo.kl.mean() - 1e-12).item()  # the clamped KL is never smaller
    # Same gradient as the reference; units below lambda get none from the KL.
    params = list(model.encoder.parameters())
    mine = torch.autograd.grad(clamped.mean(), params)
    theirs = torch.autograd.grad(reference, params, allow_unused=True)
    for a, b in zip(mine, theirs):
        torch.testing.assert_close(a, torch.zeros_like(a) if b is None else b, rtol=1e-10, atol=1e-12)
    # Non-vacuous: at 0.03 and 0.06 some units are below and some above lambda.
    if lambda_ in (0.03, 0.06):
        assert (per_dim < lambda_).any() and (per_dim > lambda_).any(), per_dim


def test_fit_accepts_free_bits_and_its_history_names_the_clamped_kl():
    torch.manual_seed(7)
    model, X = VAE(input_dim=6, latent_dim=3, hidden_dims=(8,)), _data(64).float()
    lambda_ = 10.0  # far above any unit's KL: the KL term is the constant 3 * lambda and has no gradient
    history = fit(model, X, num_epochs=2, batch_size=16, objective=free_bits_objective(lambda_),
                  X_val=X, generator=_gen(0))
    assert history.free_bits_kl == pytest.approx([3 * lambda_] * 2)
    assert history.val_free_bits_kl == pytest.approx([3 * lambda_] * 2)
    true_kl = evaluate(model, X)["kl"]
    assert 0 < true_kl < 3 * lambda_
    assert history.val_kl[-1] == pytest.approx(true_kl, rel=1e-6)  # history.kl is the true KL, as everywhere
    assert history.beta == [1.0, 1.0]  # free bits has a KL term for beta to weight


# ------------------------------------------------------------------------------------------------------ errors

X6 = torch.full((3, 6), 0.5, dtype=torch.float64)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda m: free_bits_objective(-0.1), ValueError, r"^lambda_: expected a number >= 0"),
        (lambda m: free_bits_objective("1"), TypeError, r"^lambda_: expected a real number"),
        (lambda m: free_bits_objective(1.0)("model", X6), TypeError, r"^model: "),
        (lambda m: free_bits_objective(1.0)(m, X6, generator=3), TypeError, r"^generator: "),
        (lambda m: active_units(m, X6, threshold=-1), ValueError, r"^threshold: "),
        (lambda m: active_units(m, X6[:0]), ValueError, r"^X: expected at least one example"),
        (lambda m: active_units(m, X6, batch_size=0), ValueError, r"^batch_size: "),
        (lambda m: kl_per_dimension(m, X6[0]), ValueError, r"^X: expected a 2-D tensor"),
        (lambda m: kl_per_dimension(m, X6 - 1), ValueError, r"^X: expected values >= 0"),
        (lambda m: kl_per_dimension(m, torch.zeros(3, 5, dtype=torch.float64)), ValueError,
         r"^X: expected shape \[n, 6\]"),
        (lambda m: kl_per_dimension(object(), X6), TypeError, r"^model: "),
        (lambda m: kl_terms(torch.zeros(2, 3), torch.zeros(2, 2)), ValueError, r"^logvar: expected the shape of mu"),
    ],
)
def test_bad_arguments_raise_clear_errors(call, error, match):
    with pytest.raises(error, match=match):
        call(_vae(0))
