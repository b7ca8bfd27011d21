"""The two-level hierarchical VAE against references written elsewhere: torch.distributions' Normal KL and
log-densities (the ELBO term by term against log p(x, z1, z2) - log q(z1, z2 | x) on the same draws), the IWAE
bound's k = 1 expectation, and exact cases for active units."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from support import binary_x, gen
from torch.distributions import Bernoulli, Independent, Normal, kl_divergence

from vae_lesson import elbo, fit, load_checkpoint, save_checkpoint
from vae_lesson.variants.hierarchical import (
    HierarchicalVAE,
    active_units_per_layer,
    gaussian_kl_between,
    hierarchical_elbo,
    hierarchical_elbo_terms,
    hierarchical_iwae,
)


def model(seed=0):
    torch.manual_seed(seed)
    return HierarchicalVAE(6, (3, 2), (8,), top_hidden=5).double()


def diag(mu, logvar):
    return Independent(Normal(mu, torch.exp(0.5 * logvar)), 1)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 5))
def test_gaussian_kl_between_matches_torch_distributions(seed, d):
    g = gen(seed)
    mu_q, logvar_q, mu_p, logvar_p = (torch.randn(4, d, generator=g, dtype=torch.float64) for _ in range(4))
    torch.testing.assert_close(gaussian_kl_between(mu_q, logvar_q, mu_p, logvar_p),
                               kl_divergence(diag(mu_q, logvar_q), diag(mu_p, logvar_p)), rtol=1e-10, atol=1e-10)
    assert gaussian_kl_between(mu_q, logvar_q, mu_q, logvar_q).abs().max() < 1e-12


def test_the_elbo_term_by_term_equals_log_joint_minus_log_q_in_expectation():
    m, x, S = model(1), binary_x(3), 40_000
    with torch.no_grad():
        terms = hierarchical_elbo_terms(m, x, n_samples=S, generator=gen(2))
        q = m.infer(x, S, generator=gen(3))  # independent draws, scored with torch.distributions
        z2, z1 = q["z2"], q["z1"]
        log_joint = (Independent(Bernoulli(logits=m.decode(z1)), 1).log_prob(x)
                     + diag(q["prior_mu1"], q["prior_logvar1"]).log_prob(z1)
                     + Independent(Normal(torch.zeros_like(z2), 1.0), 1).log_prob(z2))  # [S, batch]
        log_q = diag(q["mu2"], q["logvar2"]).log_prob(z2) + diag(q["mu1"], q["logvar1"]).log_prob(z1)
        direct = log_joint - log_q
    se = direct.std(0) / S**0.5
    assert ((terms.elbo - direct.mean(0)).abs() < 4 * se + 0.01).all()
    torch.testing.assert_close(terms.elbo, terms.reconstruction - terms.kl_z1 - terms.kl_z2)
    assert (terms.kl_z1 >= 0).all() and (terms.kl_z2 >= 0).all()
    as_elbo = hierarchical_elbo(m, x, n_samples=4, generator=gen(4))
    again = hierarchical_elbo_terms(m, x, n_samples=4, generator=gen(4))
    torch.testing.assert_close(as_elbo.kl, again.kl_z1 + again.kl_z2)


def test_iwae_at_k_1_is_the_elbo_and_it_tightens_with_k():
    m, x = model(2), binary_x(4)
    with torch.no_grad():
        reference = hierarchical_elbo(m, x, n_samples=20_000, generator=gen(1)).elbo.mean()
    means = [torch.stack([hierarchical_iwae(m, x, k, generator=gen(10 + r)) for r in range(40)]).mean()
             for k in (1, 10, 200)]
    assert abs(means[0] - reference) < 0.1
    assert means[0] < means[1] < means[2]
    torch.testing.assert_close(hierarchical_iwae(m, x, 30, generator=gen(5), max_rows=7),
                               hierarchical_iwae(m, x, 30, generator=gen(5), max_rows=7))


def test_active_units_per_layer_sees_a_top_layer_that_ignores_x():
    m, X = model(3), binary_x(50)
    units = active_units_per_layer(m, X, generator=gen(0))
    assert units["z2"].activity.shape == (2,) and units["z1"].activity.shape == (3,)
    with torch.no_grad():
        m.q_z2.weight.zero_()  # mu2 and logvar2 no longer depend on x: the top layer has collapsed
    collapsed = active_units_per_layer(m, X, generator=gen(0))
    assert collapsed["z2"].count == 0 and collapsed["z2"].activity.abs().max() == 0
    with torch.no_grad():
        kl2 = hierarchical_elbo_terms(m, X, generator=gen(1)).kl_z2
    assert torch.allclose(kl2, kl2[0].expand_as(kl2))  # the same q(z2 | x) for every x


def test_sample_fit_and_checkpoint(tmp_path):
    m, X = model(4), binary_x(64)
    images = m.sample(5, generator=gen(0))
    assert images.shape == (5, 6) and (images >= 0).all() and (images <= 1).all()
    history = fit(m, X, num_epochs=8, batch_size=16, lr=1e-2, generator=gen(1), objective=hierarchical_elbo,
                  kl_warmup_epochs=2)
    assert history.elbo[-1] > history.elbo[0]
    save_checkpoint(m, tmp_path / "h.pt")
    loaded = load_checkpoint(tmp_path / "h.pt").double()
    torch.testing.assert_close(loaded.p_z1[0].weight, m.p_z1[0].weight)


def test_the_one_level_elbo_refuses_the_hierarchy():
    with pytest.raises(TypeError, match="model"):
        elbo(model(), binary_x(2))


@pytest.mark.parametrize("call, error, words", [
    (lambda: HierarchicalVAE(6, (3,)), ValueError, "latent_dims"),
    (lambda: HierarchicalVAE(6, (3, 2), ()), ValueError, "hidden_dims"),
    (lambda: HierarchicalVAE(6, (3, 2), top_hidden=0), ValueError, "top_hidden"),
    (lambda: model().infer(torch.rand(2, 5, dtype=torch.float64)), ValueError, "x"),
    (lambda: model().infer(binary_x(2), n_samples=0), ValueError, "n_samples"),
    (lambda: hierarchical_elbo(object(), binary_x(2)), TypeError, "model"),
    (lambda: hierarchical_iwae(model(), binary_x(2), 0), ValueError, "k"),
    (lambda: gaussian_kl_between(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(2, 2), torch.zeros(2, 2)),
     ValueError, "mu_p"),
    (lambda: active_units_per_layer(model(), binary_x(4), threshold=-1.0), ValueError, "threshold"),
])
def test_bad_inputs_name_the_argument(call, error, words):
    with pytest.raises(error, match=words):
        call()
