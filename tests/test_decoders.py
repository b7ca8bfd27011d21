"""vae_lesson.variants.decoders against references no one here wrote: quadrature (scipy), torch.distributions,
closed forms, and the package's own Bernoulli ELBO and IWAE bound."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, stats

from vae_lesson import VAE, elbo, fit, gaussian_kl, iwae_bound, seed_everything
from vae_lesson.variants.decoders import (
    DecoderVAE,
    continuous_bernoulli_log_likelihood,
    continuous_bernoulli_log_normalizer,
    continuous_bernoulli_mean,
    decoder_elbo,
    decoder_iwae,
    decoder_objective,
    discretized_gaussian_log_likelihood,
    mean_and_se,
)

pytestmark = pytest.mark.unit
F64 = torch.float64


def quad_log_normalizer(eta: float) -> float:
    """-log of the integral of lambda^x (1 - lambda)^(1 - x) over [0, 1], by adaptive quadrature."""
    log_lam, log_1m = -math.log1p(math.exp(-eta)), -math.log1p(math.exp(eta))  # log lambda, log(1 - lambda)
    value, _ = integrate.quad(lambda x: math.exp(x * log_lam + (1 - x) * log_1m), 0, 1, epsabs=1e-15, epsrel=1e-13)
    return -math.log(value)


@pytest.mark.parametrize("eta", [-20.0, -5.0, -1.0, -0.3, -0.0999, -0.05, -1e-3, 0.0, 1e-6, 0.01, 0.0999, 0.1,
                                 0.2, 2.0, 8.0, 20.0])
def test_log_normalizer_matches_quadrature(eta):
    got = continuous_bernoulli_log_normalizer(torch.tensor(eta, dtype=F64)).item()
    assert got == pytest.approx(quad_log_normalizer(eta), abs=1e-9)


def test_log_normalizer_is_log_2_at_one_half_and_stable_in_float32_near_it():
    assert continuous_bernoulli_log_normalizer(torch.zeros(3)).tolist() == pytest.approx([math.log(2)] * 3)
    eta = torch.linspace(-0.3, 0.3, 2001)  # lambda within 0.075 of 1/2, where the closed form cancels
    got32 = continuous_bernoulli_log_normalizer(eta)
    ref = continuous_bernoulli_log_normalizer(eta.double())
    assert got32.dtype == torch.float32 and (got32.double() - ref).abs().max() < 1e-6
    # smooth across the switch to the series: no step at |eta| = 0.1
    d = torch.diff(continuous_bernoulli_log_normalizer(torch.linspace(0.09, 0.11, 401, dtype=F64)))
    assert (d > 0).all() and (d.max() / d.min()) < 1.3


def test_log_likelihood_and_mean_match_torch_continuous_bernoulli():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(50, 30, generator=gen, dtype=F64) * 4
    logits[0, :5] = torch.tensor([0.0, 1e-4, -1e-3, 0.05, -0.2], dtype=F64)  # near lambda = 1/2
    x = torch.rand(50, 30, generator=gen, dtype=F64)
    ref = torch.distributions.ContinuousBernoulli(logits=logits)
    got = continuous_bernoulli_log_likelihood(logits, x)  # [50]
    assert torch.allclose(got, ref.log_prob(x).sum(-1), atol=1e-5)
    assert torch.allclose(continuous_bernoulli_mean(logits), ref.mean, atol=1e-5)


def test_continuous_bernoulli_density_integrates_to_one():
    for eta in (-3.0, 0.0, 0.4, 6.0):
        value, _ = integrate.quad(lambda x, eta=eta: math.exp(continuous_bernoulli_log_likelihood(
            torch.tensor([[eta]], dtype=F64), torch.tensor([[x]], dtype=F64)).item()), 0, 1)
        assert value == pytest.approx(1.0, abs=1e-9)
    # and the mean is the density's first moment
    eta = 2.5
    m, _ = integrate.quad(lambda x: x * math.exp(continuous_bernoulli_log_likelihood(
        torch.tensor([[eta]], dtype=F64), torch.tensor([[x]], dtype=F64)).item()), 0, 1)
    assert continuous_bernoulli_mean(torch.tensor(eta, dtype=F64)).item() == pytest.approx(m, abs=1e-9)


@settings(max_examples=60, deadline=None)
@given(st.floats(-60, 60, allow_nan=False))
def test_log_normalizer_is_even_finite_and_at_least_log_2(eta):
    t = torch.tensor([eta, -eta], dtype=F64)
    out = continuous_bernoulli_log_normalizer(t)
    assert torch.isfinite(out).all() and out[0].item() == pytest.approx(out[1].item(), abs=1e-12)
    assert out[0].item() >= math.log(2) - 1e-15
    assert out[0].item() == pytest.approx(math.log(2) + math.log(abs(eta) / 2 / math.tanh(abs(eta) / 2))
                                          if abs(eta) > 1e-6 else math.log(2), abs=1e-9)


LEVELS = torch.arange(256, dtype=F64)[:, None] / 255  # [256, 1]: every value of one 8-bit pixel


@settings(max_examples=60, deadline=None)
@given(st.floats(-0.5, 1.5), st.floats(-18, 6))
def test_discretized_gaussian_sums_to_one_over_the_256_levels(mean, logvar):
    log_p = discretized_gaussian_log_likelihood(LEVELS, torch.full((256, 1), mean, dtype=F64),
                                                torch.full((256, 1), logvar, dtype=F64))
    assert torch.isfinite(log_p).all() and (log_p <= 1e-12).all()
    assert torch.logsumexp(log_p, 0).item() == pytest.approx(0.0, abs=1e-9)


def test_discretized_gaussian_is_the_normal_cdf_over_each_bin():
    normal = torch.distributions.Normal(torch.tensor(0.4, dtype=F64), torch.tensor(0.07, dtype=F64))
    k = torch.tensor([0, 1, 60, 102, 200, 254, 255], dtype=F64)
    edges_lo = torch.where(k == 0, torch.tensor(-math.inf, dtype=F64), (k - 0.5) / 255)
    edges_hi = torch.where(k == 255, torch.tensor(math.inf, dtype=F64), (k + 0.5) / 255)
    ref = torch.log(normal.cdf(edges_hi) - normal.cdf(edges_lo))
    ref[-2:] = torch.from_numpy(stats.norm.logsf(edges_lo[-2:].numpy(), 0.4, 0.07))  # far right tail: 1 - cdf = 0
    ref[-2] = ref[-2] + torch.log(-torch.expm1(torch.from_numpy(  # bin 254: sf(lo) - sf(hi)
        stats.norm.logsf(edges_hi[-2:-1].numpy(), 0.4, 0.07) - stats.norm.logsf(edges_lo[-2:-1].numpy(), 0.4, 0.07))))
    got = discretized_gaussian_log_likelihood((k / 255)[:, None], torch.full((7, 1), 0.4, dtype=F64),
                                              torch.full((7, 1), 2 * math.log(0.07), dtype=F64))
    assert torch.allclose(got, ref, rtol=1e-9)
    # far tails stay finite where the plain cdf difference underflows to log 0
    tail = discretized_gaussian_log_likelihood(torch.ones(1, 1), torch.zeros(1, 1), torch.full((1, 1), -10.0))
    assert torch.isfinite(tail).all() and tail.item() < -1e4


def test_discretized_gaussian_is_density_times_bin_width_for_a_wide_sigma():
    x = LEVELS[100:110].T  # [1, 10]
    mean, logvar = torch.full_like(x, 0.45), torch.full_like(x, 2 * math.log(0.2))
    density = torch.distributions.Normal(mean, 0.2).log_prob(x).sum(-1)
    assert discretized_gaussian_log_likelihood(x, mean, logvar).item() == pytest.approx(
        (density - 10 * math.log(255)).item(), abs=1e-3)


@pytest.fixture
def x_batch():
    from vae_lesson import load_digits

    return load_digits("train")[0][:16]  # [16, 64] in [0, 1]


def test_gaussian_decoder_log_likelihood_matches_torch_normal(x_batch):
    torch.manual_seed(0)
    for sigma in (0.3, "shared", "per_pixel"):
        model = DecoderVAE(64, 3, (16,), "gaussian", sigma, init_sigma=0.2)
        if sigma == "per_pixel":
            with torch.no_grad():
                model.raw_log_sigma2.copy_(torch.linspace(-4, 0, 64) / 20)
        logits = torch.randn(16, 64)
        std = torch.exp(0.5 * model.logvar_x())
        ref = torch.distributions.Normal(torch.sigmoid(logits), std).log_prob(x_batch).sum(-1)
        assert torch.allclose(model.log_likelihood(logits, x_batch), ref, atol=1e-4)


def test_bernoulli_decoder_gives_the_packages_elbo_and_iwae(x_batch):
    torch.manual_seed(1)
    model = DecoderVAE(64, 3, (16,))
    vae = VAE(64, 3, (16,))
    vae.load_state_dict(model.state_dict())
    ours = decoder_elbo(model, x_batch, generator=torch.Generator().manual_seed(5))
    ref = elbo(vae, x_batch, generator=torch.Generator().manual_seed(5))
    for a, b in zip(ours, ref):
        assert torch.allclose(a, b, atol=1e-5)
    with torch.no_grad():
        assert torch.allclose(decoder_iwae(model, x_batch, 7, generator=torch.Generator().manual_seed(2)),
                              iwae_bound(vae, x_batch, 7, generator=torch.Generator().manual_seed(2)), atol=1e-4)


def test_elbo_terms_are_honest_and_iwae_bounds_above_the_elbo(x_batch):
    torch.manual_seed(2)
    model = DecoderVAE(64, 3, (16,), "continuous_bernoulli")
    terms = decoder_elbo(model, x_batch, generator=torch.Generator().manual_seed(0), n_samples=4000)
    mu, logvar = model.encode(x_batch)
    assert torch.allclose(terms.kl, gaussian_kl(mu, logvar)) and torch.allclose(terms.elbo,
                                                                                terms.reconstruction - terms.kl)
    iwae = decoder_iwae(model, x_batch, 64, generator=torch.Generator().manual_seed(1))
    # E[L_64] >= ELBO; the 4000-draw ELBO has s.e. well below 0.1 nats for this small model
    assert (iwae - terms.elbo).mean() > 0
    one = torch.stack([decoder_iwae(model, x_batch, 1, generator=torch.Generator().manual_seed(s))
                       for s in range(400)]).mean(0)  # E[L_1] = ELBO
    assert torch.allclose(one, terms.elbo.detach(), atol=0.3)


def test_scoring_under_another_likelihood_of_the_same_parameters(x_batch):
    x = (x_batch * 255).round().clamp(1, 254) / 255  # 8-bit values inside the end bins (which are open)
    torch.manual_seed(3)
    model = DecoderVAE(64, 3, (16,), "gaussian", 0.2)
    density = decoder_elbo(model, x, generator=torch.Generator().manual_seed(0)).reconstruction
    discrete = decoder_elbo(model, x, generator=torch.Generator().manual_seed(0),
                            likelihood="discretized_gaussian").reconstruction
    # sigma = 0.2 spans ~50 levels: the probability of the bin is density x width 1/255 up to ~1e-3 per pixel
    assert torch.allclose(discrete, density - 64 * math.log(255), atol=0.2)


def test_summed_squared_error_plus_beta_kl_is_a_gaussian_decoder_with_sigma2_beta_over_2(x_batch):
    beta = 0.02
    torch.manual_seed(4)
    model = DecoderVAE(64, 3, (16,), "gaussian", math.sqrt(beta / 2))
    terms = decoder_elbo(model, x_batch, generator=torch.Generator().manual_seed(0))
    grads_elbo = torch.autograd.grad(-terms.elbo.sum() * beta, list(model.parameters()))  # 2 sigma^2 = beta
    mu, logvar = model.encode(x_batch)
    z = mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=torch.Generator().manual_seed(0))
    sse = (x_batch - torch.sigmoid(model.decode(z))).pow(2).sum(-1)  # [16]
    grads_sse = torch.autograd.grad((sse + beta * gaussian_kl(mu, logvar)).sum(), list(model.parameters()))
    for a, b in zip(grads_elbo, grads_sse):
        assert torch.allclose(a, b, atol=1e-6, rtol=1e-4)


def test_learned_sigma_trains_and_respects_its_floor():
    from vae_lesson import load_digits

    X = load_digits("train")[0][:256]
    generator = seed_everything(0)
    model = DecoderVAE(64, 4, (32,), "gaussian", "shared", init_sigma=0.5)
    history = fit(model, X, num_epochs=15, generator=generator, objective=decoder_objective(), progress=False,
                  lr=1e-2, batch_size=32)
    assert history.elbo[-1] > history.elbo[0] + 5
    sigma = math.exp(0.5 * model.logvar_x().item())
    assert sigma < 0.3  # moved from its start of 0.5 towards the reconstruction error
    per_pixel = DecoderVAE(64, 4, (32,), "gaussian", "per_pixel", min_sigma=0.01)
    with torch.no_grad():
        per_pixel.raw_log_sigma2.fill_(-40.0)
    assert per_pixel.logvar_x().shape == (64,) and torch.allclose(per_pixel.logvar_x(),
                                                                  torch.full((64,), 2 * math.log(0.01)))


def test_mean_and_se():
    values = torch.tensor([1.0, 2.0, 3.0, 6.0])
    mean, se = mean_and_se(values)
    assert mean == 3.0 and se == pytest.approx(values.std().item() / 2)


@pytest.mark.parametrize("call, error, words", [
    (lambda: DecoderVAE(4, 2, (3,), "poisson"), ValueError, "likelihood"),
    (lambda: DecoderVAE(4, 2, (3,), "gaussian"), ValueError, "sigma"),
    (lambda: DecoderVAE(4, 2, (3,), "bernoulli", 0.1), ValueError, "sigma"),
    (lambda: DecoderVAE(4, 2, (3,), "gaussian", "learned"), ValueError, "sigma"),
    (lambda: DecoderVAE(4, 2, (3,), "gaussian", -1.0), ValueError, "sigma"),
    (lambda: DecoderVAE(4, 2, (3,), "gaussian", 0.1, min_sigma=0), ValueError, "min_sigma"),
    (lambda: DecoderVAE(4, 2, (3,)).logvar_x(), ValueError, "model"),
    (lambda: decoder_elbo(VAE(4, 2, (3,)), torch.rand(2, 4)), TypeError, "model"),
    (lambda: decoder_iwae(DecoderVAE(4, 2, (3,)), torch.rand(2, 4), 0), ValueError, "k"),
    (lambda: decoder_objective("mse"), ValueError, "likelihood"),
    (lambda: continuous_bernoulli_log_normalizer([0.1]), TypeError, "logits"),
    (lambda: continuous_bernoulli_log_likelihood(torch.zeros(2, 4), torch.full((2, 4), 1.5)), ValueError, "x"),
    (lambda: discretized_gaussian_log_likelihood(torch.full((1, 4), 0.5), torch.zeros(1, 4), torch.zeros(1, 4)),
     ValueError, "8-bit"),
    (lambda: mean_and_se(torch.ones(1)), ValueError, "values"),
])
def test_bad_inputs_name_the_argument(call, error, words):
    with pytest.raises(error, match=words):
        call()
