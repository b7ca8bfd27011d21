"""Diffusion as a hierarchical VAE, against references written elsewhere: torch.distributions' Normal KL and
log-densities, Gaussian conditioning written out from the joint covariance, sampling of the chain, and the toy's
quadrature against Monte Carlo. The model's objective is checked to be unbiased for its full bound; the explorer
is driven the way ipywidgets tests itself (set the slider, check what is shown)."""

import math

import matplotlib
import matplotlib.pyplot as plt
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.distributions import Bernoulli, Normal, kl_divergence

from vae_lesson import fit
from vae_lesson.theory.diffusion_toy import (
    Schedule,
    binary_pixel_denoiser,
    denoising_kl,
    forward_marginal,
    forward_step,
    kl_weight,
    posterior,
    prior_kl,
    sample_forward,
    toy_elbo,
    toy_log_marginal,
    vp_schedule,
)
from vae_lesson.variants.diffusion import Diffusion, diffusion_bound, diffusion_objective
from vae_lesson.views.diffusion_view import diffusion_explorer, diffusion_paths, render_diffusion_step

matplotlib.use("Agg")


def gen(seed):
    return torch.Generator().manual_seed(seed)


def test_schedule_is_variance_preserving_and_log_snr_linear():
    s = vp_schedule(6, log_snr_max=3.0, log_snr_min=-4.0)
    assert s.num_steps == 6 and len(s.alpha) == 7
    assert torch.allclose(s.alpha**2 + s.sigma**2, torch.ones(7, dtype=torch.float64))
    assert s.alpha[0] == 1 and s.sigma[0] == 0
    assert torch.allclose(s.log_snr[1:], torch.linspace(3.0, -4.0, 6, dtype=torch.float64))
    assert torch.allclose((s.alpha[1:] / s.sigma[1:]).pow(2).log(), s.log_snr[1:])
    assert vp_schedule(1, 2.0).log_snr[1] == 2.0


def test_forward_marginal_is_the_chain_composed():
    s = vp_schedule(5, 2.0, -3.0)
    x = torch.rand(3, 4, generator=gen(0), dtype=torch.float64)
    mean, var = x.clone(), torch.zeros_like(x)
    for t in range(1, 6):  # z_t = a z_{t-1} + noise: mean a * mean, variance a^2 var + step variance
        step_mean, step_var = forward_step(s, torch.ones_like(x), t)
        mean, var = step_mean * mean, step_mean**2 * var + step_var
        m, v = forward_marginal(s, x, t)
        assert torch.allclose(m, mean) and torch.allclose(v, var)


def test_forward_chain_samples_have_the_marginal_moments():
    s = vp_schedule(4, 2.0, -3.0)
    n = 200_000
    x = torch.full((n, 1), 0.7, dtype=torch.float64)
    z, g = x, gen(1)
    for t in range(1, 5):
        mean, var = forward_step(s, z, t)
        z = mean + var.sqrt() * torch.randn(z.shape, generator=g, dtype=z.dtype)
        m, v = forward_marginal(s, x[:1], t)
        se_mean = math.sqrt(v.item() / n)
        assert abs(z.mean().item() - m.item()) < 5 * se_mean
        assert abs(z.var().item() - v.item()) < 5 * v.item() * math.sqrt(2 / n)  # Gaussian: Var(s^2) = 2 v^2 / n


@settings(max_examples=60, deadline=None)
@given(st.floats(-2.0, 6.0), st.floats(0.5, 8.0), st.integers(2, 8), st.data())
def test_posterior_is_bayes_for_the_joint_gaussian(log_snr_max, span, num_steps, data):
    s = vp_schedule(num_steps, log_snr_max, log_snr_max - span)
    t = data.draw(st.integers(2, num_steps))
    x = torch.tensor([[data.draw(st.floats(0.0, 1.0))]], dtype=torch.float64)
    z_t = torch.tensor([[data.draw(st.floats(-3.0, 3.0))]], dtype=torch.float64)
    mean, var = posterior(s, z_t, x, t)
    # the joint of (z_{t-1}, z_t) given x, then Gaussian conditioning written out
    a_s, a_t, v_s, v_t = s.alpha[t - 1], s.alpha[t], s.sigma[t - 1] ** 2, s.sigma[t] ** 2
    cov = (a_t / a_s) * v_s  # Cov(z_{t-1}, z_t | x)
    assert var.item() > 0, "a proper Gaussian"
    assert torch.allclose(mean, a_s * x + cov / v_t * (z_t - a_t * x), rtol=1e-9, atol=1e-9)
    assert torch.allclose(var, v_s - cov**2 / v_t + 0 * x, rtol=1e-9, atol=1e-12)


def test_denoising_kl_matches_torch_normal_kl():
    s = vp_schedule(8, 4.0, -5.0)
    g = gen(2)
    x = torch.rand(5, 7, generator=g, dtype=torch.float64)
    x_hat = torch.rand(5, 7, generator=g, dtype=torch.float64)
    t = torch.tensor([2, 3, 5, 8, 4])
    z_t = sample_forward(s, x, t, generator=g)
    m_q, v_q = posterior(s, z_t, x, t)
    m_p, v_p = posterior(s, z_t, x_hat, t)
    reference = kl_divergence(Normal(m_q, v_q.sqrt()), Normal(m_p, v_p.sqrt())).sum(-1)
    assert torch.allclose(denoising_kl(s, x, x_hat, t), reference, rtol=1e-9)
    snr = s.log_snr.exp()
    assert torch.allclose(kl_weight(s, t), 0.5 * (snr[t - 1] - snr[t]))


def test_prior_kl_matches_torch_normal_kl():
    s = vp_schedule(5, 1.0, -4.0)
    x = torch.rand(4, 9, generator=gen(3), dtype=torch.float64)
    reference = kl_divergence(Normal(s.alpha[5] * x, s.sigma[5].expand_as(x)), Normal(0.0, 1.0)).sum(-1)
    assert torch.allclose(prior_kl(s, x), reference, rtol=1e-9)


def test_binary_pixel_denoiser_is_bayes_rule():
    s = vp_schedule(4, 3.0, -3.0)
    z = torch.linspace(-2, 2, 41, dtype=torch.float64)
    for t in (1, 3):
        like_1 = Normal(s.alpha[t], s.sigma[t]).log_prob(z).exp() * 0.3
        like_0 = Normal(0.0, s.sigma[t]).log_prob(z).exp() * 0.7
        assert torch.allclose(binary_pixel_denoiser(s, z, t, 0.3), like_1 / (like_0 + like_1), atol=1e-12)


def test_toy_marginal_sums_to_one_and_bounds_the_elbo():
    for num_steps in (2, 5, 12):
        s = vp_schedule(num_steps, 5.0, -7.0)
        log_p = toy_log_marginal(s, 0.3, n_grid=2001)
        assert abs(log_p.exp().sum().item() - 1) < 1e-9
        for x in (0, 1):
            assert toy_elbo(s, x, 0.3).elbo <= log_p[x].item(), "the ELBO is a lower bound"
    far = toy_log_marginal(vp_schedule(32, 5.0, -7.0), 0.3, n_grid=2001).exp()
    assert abs(far[1].item() - 0.3) < 0.02, "many steps: the model's p(x) approaches the data's"


def test_toy_elbo_quadrature_matches_monte_carlo():
    s = vp_schedule(6, 4.0, -6.0)
    n, g = 100_000, gen(4)
    x = torch.ones(n, 1, dtype=torch.float64)
    exact = toy_elbo(s, 1, 0.3)
    z_1 = sample_forward(s, x, 1, generator=g)
    recon = Bernoulli(probs=binary_pixel_denoiser(s, z_1, 1, 0.3)).log_prob(x)[:, 0]
    assert abs(recon.mean().item() - exact.reconstruction) < 5 * recon.std().item() / math.sqrt(n) + 1e-9
    for t in range(2, 7):
        z_t = sample_forward(s, x, t, generator=g)
        kl = denoising_kl(s, x, binary_pixel_denoiser(s, z_t, t, 0.3), t)
        assert abs(kl.mean().item() - exact.step_kls[t - 2]) < 5 * kl.std().item() / math.sqrt(n) + 1e-9


def small_model(seed=0, num_steps=4, input_dim=6):
    torch.manual_seed(seed)
    return Diffusion(input_dim=input_dim, num_steps=num_steps, hidden_dims=(8,), embed_dim=3).double()


def test_objective_is_unbiased_for_the_full_bound():
    model = small_model()
    x = torch.rand(1, 6, generator=gen(5), dtype=torch.float64).expand(40_000, 6)
    sampled = diffusion_objective(model, x, generator=gen(6))
    full = diffusion_bound(model, x, generator=gen(7), batch_size=40_000)
    total_kl = full.step_kls.sum(1) + full.prior_kl
    se = math.sqrt((sampled.kl.var() + total_kl.var()).item() / len(x))
    assert abs(sampled.kl.mean().item() - total_kl.mean().item()) < 5 * se
    assert torch.allclose(sampled.elbo, sampled.reconstruction - sampled.kl)
    assert torch.allclose(full.elbo, full.reconstruction - full.step_kls.sum(1) - full.prior_kl)
    assert full.step_kls.shape == (40_000, 3) and (full.step_kls >= 0).all()


def test_model_decodes_with_its_network_at_step_one_and_samples():
    model = small_model()
    z = torch.randn(3, 6, generator=gen(8), dtype=torch.float64)
    assert torch.equal(model.decode(z), model.x_logits(z, 1))
    assert torch.equal(model.x_logits(z, torch.tensor([2, 2, 2])), model.x_logits(z, 2))
    zs, x_hats = model.sample_chain(5, gen(9))
    assert zs.shape == x_hats.shape == (4, 5, 6)
    assert ((x_hats > 0) & (x_hats < 1)).all()
    assert torch.equal(model.sample(5, gen(9)), x_hats[0])


def test_fit_trains_it():
    torch.manual_seed(0)
    model = Diffusion(input_dim=6, num_steps=3, hidden_dims=(16,), embed_dim=2)
    X = torch.rand(64, 6, generator=gen(10)).round()
    history = fit(model, X, num_epochs=25, batch_size=16, lr=1e-2, objective=diffusion_objective, generator=gen(11),
                  progress=False)
    assert all(math.isfinite(v) for v in history.elbo)
    before = small_model(1, 3).float()
    assert diffusion_bound(model, X, gen(12)).elbo.mean() > diffusion_bound(before, X, gen(12)).elbo.mean()


def test_explorer_follows_its_slider():
    model = small_model(num_steps=4, input_dim=4).float()  # 2 x 2 images
    x = torch.rand(4, generator=gen(13))
    explorer = diffusion_explorer(model, x, generator=gen(14))
    first = explorer.image.value
    assert first[:4] == b"\x89PNG" and explorer.slider.max == 4
    for t in (3, 4):
        explorer.slider.value = t
        assert torch.equal(explorer.shown_x_hat, explorer.paths.forward_x_hat[t - 1])
        assert explorer.image.value != first
        assert not explorer.output.outputs
    paths = diffusion_paths(model, x, generator=gen(14))
    assert torch.equal(paths.forward_z, explorer.paths.forward_z), "drawn with the generator, reproducibly"
    assert torch.allclose(paths.forward_x_hat[1], model.denoise(paths.forward_z[1][None], 2)[0])
    fig = render_diffusion_step(paths, 2, model.schedule)
    assert len(fig.axes) == 5
    plt.close(fig)


@pytest.mark.parametrize("call, error, words", [
    (lambda: vp_schedule(0), ValueError, "num_steps"),
    (lambda: vp_schedule(3, 1.0, 2.0), ValueError, "log_snr_min"),
    (lambda: forward_marginal(vp_schedule(3), torch.zeros(2, 2), 4), ValueError, "t: expected steps from 1 to T=3"),
    (lambda: posterior(vp_schedule(3), torch.zeros(2, 2), torch.zeros(2, 2), 1), ValueError, "from 2"),
    (lambda: posterior(vp_schedule(3), torch.zeros(2, 2), torch.zeros(2, 3), 2), ValueError, "x: expected the shape"),
    (lambda: forward_marginal(vp_schedule(3), torch.zeros(2, 2), 1.0), TypeError, "t: expected an int"),
    (lambda: forward_marginal("schedule", torch.zeros(2, 2), 1), TypeError, "schedule"),
    (lambda: toy_elbo(vp_schedule(3), 2), ValueError, "x: expected 0 or 1"),
    (lambda: toy_log_marginal(vp_schedule(3), 1.0), ValueError, "p_one"),
    (lambda: Diffusion(num_steps=1), ValueError, "num_steps"),
    (lambda: small_model().x_logits(torch.zeros(2, 5, dtype=torch.float64), 1), ValueError, "z_t"),
    (lambda: small_model().x_logits(torch.zeros(2, 6, dtype=torch.float64), 5), ValueError, "t: expected steps"),
    (lambda: diffusion_objective(small_model(), torch.full((2, 6), 2.0)), ValueError, "x: expected values <= 1"),
    (lambda: diffusion_bound(torch.nn.Linear(2, 2), torch.zeros(2, 6)), TypeError, "model"),
    (lambda: diffusion_paths(small_model(), torch.zeros(2, 6)), ValueError, "x: expected a 1-D"),
    (lambda: render_diffusion_step(diffusion_paths(small_model(input_dim=4), torch.zeros(4)), 5), ValueError,
     "t: expected"),
])
def test_bad_inputs_name_the_argument(call, error, words):
    with pytest.raises(error, match=words):
        call()


def test_schedule_type_is_exported():
    assert isinstance(vp_schedule(2), Schedule)
