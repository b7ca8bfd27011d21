"""Learned priors (MoG, VampPrior) against references written elsewhere: torch.distributions' MixtureSameFamily and
Independent Normal, the closed-form Gaussian KL (a one-component standard mixture is N(0, I)), the package's IWAE
bound, and sample moments with tolerances from their standard errors."""

import math

import matplotlib
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from support import binary_x, gen
from torch.distributions import Categorical, Independent, MixtureSameFamily, Normal

from vae_lesson import elbo, fit, gaussian_kl, iwae_bound, load_checkpoint, save_checkpoint
from vae_lesson.variants.learned_priors import (
    LearnedPriorVAE,
    hole_fraction,
    kl_monte_carlo,
    kl_split,
    learned_prior_elbo,
    learned_prior_iwae,
    mixture_log_density,
    mixture_moments,
    render_hole_maps,
    sample_mixture,
    standard_log_prior,
)

matplotlib.use("Agg")


def mixture(seed, K=3, d=2):
    g = gen(seed)
    return (torch.log_softmax(torch.randn(K, generator=g, dtype=torch.float64), 0),
            torch.randn(K, d, generator=g, dtype=torch.float64), torch.randn(K, d, generator=g, dtype=torch.float64))


def reference(log_weights, mu, logvar):
    return MixtureSameFamily(Categorical(logits=log_weights), Independent(Normal(mu, torch.exp(0.5 * logvar)), 1))


def model(prior="mog", seed=0, K=3, latent_dim=2):
    torch.manual_seed(seed)
    return LearnedPriorVAE(6, latent_dim, (8,), prior=prior, n_components=K).double()


def standard_one_component(seed=0):
    m = model("mog", seed, K=1)
    with torch.no_grad():
        m.prior_mu.zero_()
        m.prior_logvar.zero_()
    return m


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 5), st.integers(1, 4))
def test_mixture_log_density_matches_torch_distributions(seed, K, d):
    log_weights, mu, logvar = mixture(seed, K, d)
    z = torch.randn(7, 4, d, generator=gen(seed + 1), dtype=torch.float64)
    torch.testing.assert_close(mixture_log_density(z, log_weights, mu, logvar),
                               reference(log_weights, mu, logvar).log_prob(z), rtol=1e-10, atol=1e-10)


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 10_000))
def test_mixture_log_density_ignores_the_order_of_components(seed):
    log_weights, mu, logvar = mixture(seed, 4, 3)
    z = torch.randn(5, 3, generator=gen(seed + 1), dtype=torch.float64)
    perm = torch.randperm(4, generator=gen(seed + 2))
    torch.testing.assert_close(mixture_log_density(z, log_weights[perm], mu[perm], logvar[perm]),
                               mixture_log_density(z, log_weights, mu, logvar))


def test_mixture_moments_match_torch_distributions_samples():
    log_weights, mu, logvar = mixture(3, 4, 2)
    mean, cov = mixture_moments(log_weights, mu, logvar)
    torch.manual_seed(0)
    draws = reference(log_weights, mu, logvar).sample((400_000,))  # [n, 2]
    torch.testing.assert_close(mean, draws.mean(0), atol=0.02, rtol=0)  # s.e. <= 0.004 here
    torch.testing.assert_close(cov, draws.T.cov(), atol=0.05, rtol=0)


def test_samples_have_the_mixture_moments_and_the_wrong_std_fails():
    log_weights, mu, logvar = mixture(5, 3, 2)
    logvar = logvar.abs() + 0.5  # variances far from 1, so that exp(logvar) and exp(logvar / 2) differ
    mean, cov = mixture_moments(log_weights, mu, logvar)
    z = sample_mixture(200_000, log_weights, mu, logvar, generator=gen(1))
    se = (cov.diagonal() / len(z)).sqrt()
    assert ((z.mean(0) - mean).abs() < 5 * se).all()
    assert ((z.var(0) - cov.diagonal()).abs() < 0.03 * cov.diagonal()).all()
    k = torch.multinomial(log_weights.exp(), 200_000, replacement=True, generator=gen(1))
    wrong = mu[k] + logvar[k].exp() * torch.randn(200_000, 2, generator=gen(2), dtype=torch.float64)
    assert ((wrong.var(0) - cov.diagonal()).abs() > 0.1 * cov.diagonal()).any(), "the moment check catches it"


@pytest.mark.parametrize("prior", ["mog", "vamp"])
def test_prior_samples_have_the_priors_moments(prior):
    m = model(prior, 1, K=4)
    mean, cov = mixture_moments(*m.prior_components())
    z = m.sample_prior(100_000, generator=gen(2))
    assert z.shape == (100_000, 2)
    se = (cov.diagonal() / len(z)).sqrt()
    assert ((z.mean(0) - mean).abs() < 5 * se).all()
    assert ((z.var(0) - cov.diagonal()).abs() < 0.04 * cov.diagonal()).all()
    assert m.sample(5, generator=gen(3)).shape == (5, 6)


def test_vamp_prior_is_the_encoders_posterior_of_its_pseudo_inputs():
    m = model("vamp", 2, K=5)
    X = torch.rand(20, 6, generator=gen(0), dtype=torch.float64)
    m.init_pseudo_inputs(X, generator=gen(1))
    u = m.pseudo_inputs()
    assert u.shape == (5, 6) and (u > 0.04).all() and (u < 0.96).all()
    z = torch.randn(9, 2, generator=gen(3), dtype=torch.float64)
    mu, logvar = m.vae.encode(u)
    expected = torch.stack([Independent(Normal(mu[k], torch.exp(0.5 * logvar[k])), 1).log_prob(z)
                            for k in range(5)]).logsumexp(0) - math.log(5)
    torch.testing.assert_close(m.log_prior(z), expected)


def test_one_standard_component_gives_the_closed_form_kl():
    m, x = standard_one_component(), binary_x(4)
    with torch.no_grad():
        closed = gaussian_kl(*m.vae.encode(x))
    mc = kl_monte_carlo(m, x, n_samples=20_000, generator=gen(4))
    assert ((mc.kl - closed).abs() < 4 * mc.se).all() and (mc.se < 0.05).all()
    terms = learned_prior_elbo(m, x, n_samples=20_000, generator=gen(5))
    torch.testing.assert_close(terms.elbo, terms.reconstruction - terms.kl)
    with torch.no_grad():
        reference = elbo(m.vae, x, n_samples=20_000, generator=gen(6))
    assert ((terms.elbo - reference.elbo).abs() < 0.1).all()


def test_one_standard_component_gives_the_packages_iwae_bound():
    m, x = standard_one_component(1), binary_x(5)
    with torch.no_grad():
        expected = iwae_bound(m.vae, x, 50, generator=gen(7))
    torch.testing.assert_close(learned_prior_iwae(m, x, 50, generator=gen(7)), expected)
    with torch.no_grad():
        chunked = iwae_bound(m.vae, x, 50, generator=gen(8), max_rows=7)  # other chunks, other draws
    torch.testing.assert_close(learned_prior_iwae(m, x, 50, generator=gen(8), max_rows=7), chunked)


def test_iwae_is_a_bound_that_tightens_with_k():
    m, x = model("vamp", 3), binary_x(6)
    with torch.no_grad():
        elbo_value = learned_prior_elbo(m, x, n_samples=5000, generator=gen(1)).elbo.mean()
    means = [torch.stack([learned_prior_iwae(m, x, k, generator=gen(10 + r)) for r in range(40)]).mean()
             for k in (1, 10, 200)]
    assert abs(means[0] - elbo_value) < 0.1  # k = 1 is the ELBO in expectation
    assert means[0] < means[1] < means[2]


def test_kl_split_adds_up_and_matches_the_closed_form_rate():
    g = gen(8)
    mu, logvar = torch.randn(300, 2, generator=g, dtype=torch.float64), -torch.rand(300, 2, generator=g).double()
    split = kl_split(mu, logvar, standard_log_prior, n_samples=8, generator=gen(9))
    closed = gaussian_kl(mu, logvar).mean().item()
    assert abs(split.rate - closed) < 4 * split.rate_se
    assert split.rate == pytest.approx(split.mutual_information + split.marginal_kl, abs=1e-9)
    assert 0 < split.mutual_information <= math.log(300) + 4 * split.mutual_information_se


def test_a_prior_equal_to_the_aggregate_posterior_has_no_holes_and_no_marginal_kl():
    mu, logvar = torch.zeros(50, 2, dtype=torch.float64), torch.zeros(50, 2, dtype=torch.float64)
    z = torch.randn(1000, 2, generator=gen(1), dtype=torch.float64)
    assert hole_fraction(z, standard_log_prior(z), mu, logvar) == 0.0
    assert hole_fraction(z, standard_log_prior(z), mu + 5, logvar) > 0.99
    split = kl_split(mu, logvar, standard_log_prior, generator=gen(2))
    assert abs(split.marginal_kl) < 1e-12 and abs(split.mutual_information) < 1e-12


def test_fit_trains_on_the_learned_prior_elbo_and_checkpoints_round_trip(tmp_path):
    m, X = model("vamp", 4), binary_x(64)
    history = fit(m, X, num_epochs=8, batch_size=16, lr=1e-2, generator=gen(0), objective=learned_prior_elbo)
    assert history.elbo[-1] > history.elbo[0]
    save_checkpoint(m, tmp_path / "m.pt")
    loaded = load_checkpoint(tmp_path / "m.pt").double()
    z = torch.randn(3, 2, generator=gen(1), dtype=torch.float64)
    torch.testing.assert_close(loaded.log_prior(z), m.log_prior(z))


def test_render_hole_maps_draws_one_panel_per_model():
    mu, logvar = torch.randn(40, 2, generator=gen(0)), torch.full((40, 2), -2.0)
    fig = render_hole_maps({"a": (mu, logvar, standard_log_prior), "b": (mu, logvar, standard_log_prior)}, n_grid=21)
    assert len([ax for ax in fig.axes if ax.get_title()]) == 2


def test_the_packages_standard_prior_functions_refuse_a_learned_prior_model():
    with pytest.raises(TypeError, match="model"):
        elbo(model(), binary_x(2))
    with pytest.raises(TypeError, match="model"):
        iwae_bound(model(), binary_x(2), 5)


@pytest.mark.parametrize("call, error, words", [
    (lambda: LearnedPriorVAE(6, 2, prior="flow"), ValueError, "prior"),
    (lambda: LearnedPriorVAE(6, 2, n_components=0), ValueError, "n_components"),
    (lambda: learned_prior_elbo(object(), binary_x(2)), TypeError, "model"),
    (lambda: kl_monte_carlo(model(), binary_x(2), n_samples=1), ValueError, "n_samples"),
    (lambda: learned_prior_iwae(model(), binary_x(2), 0), ValueError, "k"),
    (lambda: model("mog").init_pseudo_inputs(binary_x(4)), ValueError, "prior='vamp'"),
    (lambda: model("vamp").init_pseudo_inputs(torch.rand(4, 5)), ValueError, "X"),
    (lambda: mixture_log_density(torch.zeros(3, 4), *mixture(0, 3, 2)), ValueError, "z"),
    (lambda: sample_mixture(0, *mixture(0)), ValueError, "n"),
    (lambda: mixture_moments(torch.zeros(2), torch.zeros(3, 2), torch.zeros(3, 2)), ValueError, "log_weights"),
    (lambda: kl_split(torch.zeros(3, 2), torch.zeros(3, 2), "N(0, I)"), TypeError, "log_prior"),
    (lambda: hole_fraction(torch.zeros(3, 2), torch.zeros(4), torch.zeros(3, 2), torch.zeros(3, 2)), ValueError,
     "log_p"),
    (lambda: render_hole_maps({}), TypeError, "panels"),
])
def test_bad_inputs_name_the_argument(call, error, words):
    with pytest.raises(error, match=words.replace("(", r"\(").replace(")", r"\)")):
        call()
