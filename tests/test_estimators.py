"""Unit tests for vae_lesson.theory.estimators: the reparameterized and score-function gradient estimators.

References no one here wrote: the closed-form gradients of E[f(z)] under N(mu, sigma^2) for a quadratic and a
linear f (d/dmu E[z^2] = 2 mu, d/dlogvar E[z^2] = sigma^2; d/dmu E[a.z] = a, d/dlogvar E[a.z] = 0),
torch.distributions.Normal's log_prob (for the score), and autograd through ``elbo`` (for the encoder version).
Monte Carlo comparisons use a stated tolerance of 5 standard errors of the mean over repeated estimates.
"""

from __future__ import annotations

import math

import pytest
import torch
from support import gen as _gen
from torch.distributions import Normal

from vae_lesson import VAE, Autoencoder, elbo
from vae_lesson.theory.estimators import (
    encoder_gradient,
    gradient_variance,
    reparameterized_gradient,
    score_function_gradient,
)

Z_SQUARED = lambda z: z.pow(2).sum(-1)  # f(z) = sum_j z_j^2, E_q f = sum_j (mu_j^2 + sigma_j^2)


def _params(shape=(3, 2), seed=0):
    g = _gen(seed)
    mu = torch.randn(shape, generator=g, dtype=torch.float64)
    logvar = 0.5 * torch.randn(shape, generator=g, dtype=torch.float64)
    return mu, logvar


def _repeat(estimate, n_repeats):
    """Stack repeated (grad_mu, grad_logvar) estimates: two [n_repeats, ...] tensors."""
    runs = [estimate() for _ in range(n_repeats)]
    return torch.stack([r[0] for r in runs]), torch.stack([r[1] for r in runs])


def _assert_unbiased(samples, truth, n_se=5.0):
    mean = samples.mean(0)
    se = samples.std(0) / math.sqrt(samples.shape[0])
    assert (mean - truth).abs().le(n_se * se + 1e-9).all(), (mean, truth, se)


# ------------------------------------------------------------------------------------------ unbiasedness


@pytest.mark.parametrize("estimator,kwargs", [(reparameterized_gradient, {}), (score_function_gradient, {}),
                                              (score_function_gradient, {"baseline": True})])
def test_quadratic_f_is_unbiased_against_closed_form(estimator, kwargs):
    mu, logvar = _params()
    g = _gen(1)
    grad_mu, grad_logvar = _repeat(lambda: estimator(Z_SQUARED, mu, logvar, 8, generator=g, **kwargs), 400)
    _assert_unbiased(grad_mu, 2 * mu)  # d/dmu E[z^2] = 2 mu
    _assert_unbiased(grad_logvar, logvar.exp())  # d/dlogvar E[z^2] = sigma^2


def test_linear_f_score_function_is_unbiased_and_reparameterized_is_exact_in_mu():
    mu, logvar = _params(shape=(4,), seed=2)
    a = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=torch.float64)
    linear = lambda z: z @ a  # [S]
    g = _gen(3)
    grad_mu, grad_logvar = _repeat(lambda: score_function_gradient(linear, mu, logvar, 16, generator=g), 400)
    _assert_unbiased(grad_mu, a)
    _assert_unbiased(grad_logvar, torch.zeros(4, dtype=torch.float64))
    r_mu, r_logvar = reparameterized_gradient(linear, mu, logvar, 5, generator=g)
    torch.testing.assert_close(r_mu, a)  # the pathwise gradient of a linear f has no noise at all in mu


def test_score_function_is_unbiased_against_reparameterized_on_a_non_polynomial_f():
    # f(z) = sum sin(z): E f = sum sin(mu) exp(-sigma^2/2); both estimators must agree with it and each other.
    mu, logvar = _params(shape=(2,), seed=4)
    f = lambda z: torch.sin(z).sum(-1)
    sigma2 = logvar.exp()
    true_mu = torch.cos(mu) * torch.exp(-sigma2 / 2)
    true_logvar = -0.5 * sigma2 * torch.sin(mu) * torch.exp(-sigma2 / 2)
    g = _gen(5)
    for estimator in (reparameterized_gradient, score_function_gradient):
        grad_mu, grad_logvar = _repeat(lambda: estimator(f, mu, logvar, 10, generator=g), 400)  # noqa: B023
        _assert_unbiased(grad_mu, true_mu)
        _assert_unbiased(grad_logvar, true_logvar)


# ------------------------------------------------------------------------------ exact, with pre-drawn noise


def test_given_noise_reparameterized_matches_hand_formula():
    mu, logvar = _params()
    eps = torch.randn(6, 3, 2, generator=_gen(6), dtype=torch.float64)
    sigma = torch.exp(0.5 * logvar)
    z = mu + sigma * eps
    grad_mu, grad_logvar = reparameterized_gradient(Z_SQUARED, mu, logvar, 6, eps=eps)
    torch.testing.assert_close(grad_mu, (2 * z).mean(0))
    torch.testing.assert_close(grad_logvar, (2 * z * 0.5 * sigma * eps).mean(0))


def test_given_noise_score_function_matches_torch_distributions():
    mu, logvar = _params()
    eps = torch.randn(6, 3, 2, generator=_gen(7), dtype=torch.float64)
    m, lv = mu.clone().requires_grad_(), logvar.clone().requires_grad_()
    z = (mu + torch.exp(0.5 * logvar) * eps).detach()
    log_q = Normal(m, torch.exp(0.5 * lv)).log_prob(z).sum(-1)  # [6, 3]
    ref_mu, ref_logvar = torch.autograd.grad((Z_SQUARED(z) * log_q).mean(0).sum(), (m, lv))
    grad_mu, grad_logvar = score_function_gradient(Z_SQUARED, mu, logvar, 6, eps=eps)
    torch.testing.assert_close(grad_mu, ref_mu)
    torch.testing.assert_close(grad_logvar, ref_logvar)
    # and against the closed-form Gaussian score (z - mu)/sigma^2, ((z - mu)^2/sigma^2 - 1)/2
    sigma2 = logvar.exp()
    f = Z_SQUARED(z)[..., None]
    torch.testing.assert_close(grad_mu, (f * (z - mu) / sigma2).mean(0))
    torch.testing.assert_close(grad_logvar, (f * 0.5 * ((z - mu) ** 2 / sigma2 - 1)).mean(0))


def test_generator_makes_estimates_reproducible():
    mu, logvar = _params()
    a = score_function_gradient(Z_SQUARED, mu, logvar, 4, generator=_gen(8))
    b = score_function_gradient(Z_SQUARED, mu, logvar, 4, generator=_gen(8))
    assert all(torch.equal(x, y) for x, y in zip(a, b))


# ----------------------------------------------------------------------------------------------- variance


def test_reparameterized_has_smaller_variance_on_the_quadratic():
    mu, logvar = _params(shape=(2,), seed=9)
    g = _gen(10)
    rep = gradient_variance(lambda: reparameterized_gradient(Z_SQUARED, mu, logvar, 4, generator=g), 300)
    score = gradient_variance(lambda: score_function_gradient(Z_SQUARED, mu, logvar, 4, generator=g), 300)
    assert score.variance > 3 * rep.variance


def test_reparameterized_variance_matches_closed_form():
    # d/dmu_j of z_j^2 is 2 z_j, Var = 4 sigma_j^2 per sample, so the S-sample mean has variance 4 sigma^2 / S.
    mu = torch.tensor([0.3], dtype=torch.float64)
    logvar = torch.tensor([math.log(2.0)], dtype=torch.float64)
    g = _gen(11)
    spread = gradient_variance(lambda: reparameterized_gradient(Z_SQUARED, mu, logvar, 5, generator=g)[0], 4000)
    expected = 4 * 2.0 / 5
    assert abs(spread.variance - expected) < 5 * expected * math.sqrt(2 / 3999)  # 5 SE of a sample variance


def test_baseline_reduces_variance_of_an_offset_objective():
    mu, logvar = _params(shape=(2,), seed=12)
    offset = lambda z: Z_SQUARED(z) + 100.0  # the constant does not change the gradient, only the noise
    g = _gen(13)
    plain = gradient_variance(lambda: score_function_gradient(offset, mu, logvar, 8, generator=g), 300)
    based = gradient_variance(lambda: score_function_gradient(offset, mu, logvar, 8, generator=g, baseline=True),
                              300)
    assert based.variance < plain.variance / 50


def test_gradient_variance_recovers_a_known_variance():
    g = _gen(14)
    spread = gradient_variance(lambda: (2.0 * torch.randn(3, generator=g), torch.randn(1, generator=g)), 3000)
    assert spread.mean.shape == (4,)
    assert abs(spread.variance - 13.0) < 5 * math.sqrt(2 * (3 * 16 + 1) / 2999)  # 3 * 2^2 + 1


# ------------------------------------------------------------------------------------------- VAE encoder


def _tiny_vae():
    torch.manual_seed(0)
    return VAE(input_dim=6, latent_dim=2, hidden_dims=(5,)).double()


def _x():
    return torch.bernoulli(torch.full((4, 6), 0.5, dtype=torch.float64), generator=_gen(15))


def test_encoder_reparameterized_equals_autograd_through_elbo():
    model, x = _tiny_vae(), _x()
    got = encoder_gradient(model, x, 3, "reparameterized", generator=_gen(16))
    recon = elbo(model, x, n_samples=3, generator=_gen(16)).reconstruction.mean()
    ref = torch.cat([g.reshape(-1) for g in torch.autograd.grad(recon, list(model.encoder.parameters()))])
    assert got.shape == (sum(p.numel() for p in model.encoder.parameters()),)
    torch.testing.assert_close(got, ref)


def test_encoder_score_function_is_unbiased_against_reparameterized():
    model, x = _tiny_vae(), _x()
    g = _gen(17)
    reference = torch.stack([encoder_gradient(model, x, 50, "reparameterized", generator=g) for _ in range(40)])
    score = torch.stack([encoder_gradient(model, x, 50, "score_function", generator=g, baseline=True)
                         for _ in range(400)])
    diff = score.mean(0) - reference.mean(0)
    se = (score.var(0) / 400 + reference.var(0) / 40).sqrt()
    assert diff.abs().le(5 * se + 1e-9).all()


# ------------------------------------------------------------------------------------------ argument errors


@pytest.mark.parametrize("call,error,match", [
    (lambda mu, lv: reparameterized_gradient("f", mu, lv), TypeError, "f: expected a callable"),
    (lambda mu, lv: reparameterized_gradient(Z_SQUARED, mu, lv[:, :1]), ValueError, "logvar: expected the shape"),
    (lambda mu, lv: reparameterized_gradient(Z_SQUARED, mu, lv, 0), ValueError, "n_samples: expected an int >= 1"),
    (lambda mu, lv: reparameterized_gradient(Z_SQUARED, mu, lv, 2.0), TypeError, "n_samples: expected an int"),
    (lambda mu, lv: reparameterized_gradient(Z_SQUARED, mu, lv, generator=1), TypeError, "generator"),
    (lambda mu, lv: reparameterized_gradient(Z_SQUARED, mu, lv, 2, eps=torch.zeros(3, 3, 2)), ValueError, "eps"),
    (lambda mu, lv: reparameterized_gradient(lambda z: z, mu, lv), ValueError, "f: expected f.z. of shape"),
    (lambda mu, lv: reparameterized_gradient(lambda z: (z > 0).double().sum(-1), mu, lv), ValueError,
     "f: expected a function differentiable"),
    (lambda mu, lv: score_function_gradient(Z_SQUARED, mu, lv, 1, baseline=True), ValueError,
     "n_samples: expected an int >= 2"),
    (lambda mu, lv: score_function_gradient(Z_SQUARED, mu, lv, 2, baseline="yes"), TypeError, "baseline"),
    (lambda mu, lv: score_function_gradient(Z_SQUARED, mu.long(), lv), TypeError, "mu: expected a floating"),
])
def test_bad_arguments_name_the_argument(call, error, match):
    mu, logvar = _params()
    with pytest.raises(error, match=match):
        call(mu, logvar)


def test_encoder_gradient_and_gradient_variance_arguments():
    model, x = _tiny_vae(), _x()
    with pytest.raises(ValueError, match="estimator: expected one of"):
        encoder_gradient(model, x, 1, "pathwise")
    with pytest.raises(TypeError, match="model: expected encode.x. to return"):
        encoder_gradient(Autoencoder(6, 2, hidden_dims=(5,)).double(), x, 1)
    with pytest.raises(ValueError, match="n_samples: expected an int >= 2"):
        encoder_gradient(model, x, 1, "score_function", baseline=True)
    with pytest.raises(ValueError, match="n_repeats: expected an int >= 2"):
        gradient_variance(lambda: torch.zeros(1), 1)
    with pytest.raises(TypeError, match="estimate: expected a callable"):
        gradient_variance(torch.zeros(1), 5)
