"""The IWAE training objective against references written elsewhere: torch.distributions, brute-force
quadrature of log p(x) in a 2-D latent space, and the plain definitions of the effective sample size."""

import math

import pytest
import torch
from torch.distributions import Bernoulli, Normal, kl_divergence

from vae_lesson import VAE, fit
from vae_lesson.analysis.evaluation import effective_sample_size
from vae_lesson.core.bounds import Objective
from vae_lesson.core.training import objective_loss
from vae_lesson.variants.iwae_training import gradient_snr, iwae_objective, posterior_spread


@pytest.fixture
def model():
    torch.manual_seed(0)
    net = VAE(4, 2, hidden_dims=(8,))
    with torch.no_grad():  # a decoder that depends strongly on z, so that q and the posterior differ
        net.decoder[0].weight.mul_(3.0)
    return net


X = torch.tensor([[1.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 0.0], [1.0, 1.0, 0.0, 0.0]])  # [3, 4]


def exact_elbo(net, x, n=200_000, seed=1):
    """ELBO by torch.distributions: closed-form KL, E_q log p(x|z) by n Monte Carlo draws; and its std. error."""
    mu, logvar = net.encode(x)
    q = Normal(mu, torch.exp(0.5 * logvar))
    kl = kl_divergence(q, Normal(torch.zeros_like(mu), torch.ones_like(mu))).sum(-1)  # [batch]
    z = q.sample((n,)) if seed is None else mu + torch.exp(0.5 * logvar) * torch.randn(
        n, *mu.shape, generator=torch.Generator().manual_seed(seed))  # [n, batch, 2]
    log_px_z = Bernoulli(logits=net.decode(z)).log_prob(x).sum(-1)  # [n, batch]
    return log_px_z.mean(0) - kl, log_px_z.std(0) / math.sqrt(n)


def log_marginal_by_quadrature(net, x, half_width=8.0, n=801):
    """log p(x) = log sum_grid p(x|z) N(z; 0, I) dz on an n x n grid over [-half_width, half_width]^2."""
    axis = torch.linspace(-half_width, half_width, n, dtype=torch.float64)
    z = torch.stack(torch.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)  # [n*n, 2]
    log_prior = Normal(0.0, 1.0).log_prob(z).sum(-1)  # [n*n]
    cell = math.log((axis[1] - axis[0]).item() ** 2)
    with torch.no_grad():
        logits = net.decode(z.float()).double()  # [n*n, 4]
    out = []
    for row in x.double():
        log_px_z = Bernoulli(logits=logits).log_prob(row).sum(-1)  # [n*n]
        out.append(torch.logsumexp(log_px_z + log_prior, 0) + cell)
    return torch.stack(out)  # [batch]


@torch.no_grad()
def mean_bound(net, x, k, repeats, seed=0):
    g = torch.Generator().manual_seed(seed)
    draws = iwae_objective(k)(net, x.repeat(repeats, 1), generator=g).terms["iwae_bound"].reshape(repeats, -1)
    return draws.mean(0), draws.std(0) / math.sqrt(repeats)


def test_terms_follow_the_documented_semantics(model):
    out = iwae_objective(5)(model, X, generator=torch.Generator().manual_seed(0))
    assert isinstance(out, Objective) and list(out.terms) == ["iwae_bound"] and out.beta_term is None
    bound = out.terms["iwae_bound"]
    assert bound.shape == (3,) and torch.equal(out.loss, -bound)
    # the bound by torch.distributions from the same draws
    g = torch.Generator().manual_seed(0)
    mu, logvar = model.encode(X)
    q = Normal(mu, torch.exp(0.5 * logvar))
    z = mu + torch.exp(0.5 * logvar) * torch.randn(5, *mu.shape, generator=g)  # [5, 3, 2]
    log_w = (Bernoulli(logits=model.decode(z)).log_prob(X).sum(-1) + Normal(0.0, 1.0).log_prob(z).sum(-1)
             - q.log_prob(z).sum(-1))  # [5, 3]
    torch.testing.assert_close(bound, torch.logsumexp(log_w, 0) - math.log(5), rtol=0, atol=1e-5)
    torch.testing.assert_close(objective_loss(out), -bound)
    with pytest.raises(ValueError, match=r"^beta: expected 1 .*no KL term.*iwae_bound"):
        objective_loss(out, beta=0.5)


def test_k1_equals_the_elbo_in_expectation(model):
    reference, ref_se = exact_elbo(model, X)
    k1, k1_se = mean_bound(model, X, 1, 50_000)
    tolerance = 5 * (k1_se + ref_se) + 1e-3
    assert (k1 - reference).abs().le(tolerance).all(), (k1, reference, tolerance)


def test_bound_rises_with_k_towards_log_p_x(model):
    log_px = log_marginal_by_quadrature(model, X).float()
    means = {}
    for k in (1, 5, 50, 1000):
        m, se = mean_bound(model, X, k, repeats={1: 20_000, 5: 20_000, 50: 2000, 1000: 100}[k])
        means[k] = (m, se)
        assert (m <= log_px + 5 * se + 1e-3).all(), f"k={k}: a lower bound on log p(x)"
    for small, large in ((1, 5), (5, 50), (50, 1000)):
        gap = means[large][0] - means[small][0]
        noise = 3 * (means[large][1] + means[small][1])
        assert (gap > (noise if large <= 50 else -noise)).all(), f"L_{large} >= L_{small}"
    assert (log_px - means[1000][0]).abs().max() < 0.05, "L_1000 is within 0.05 nats of log p(x)"


def test_gradients_flow_to_encoder_and_decoder(model):
    loss = iwae_objective(50)(model, X, generator=torch.Generator().manual_seed(0)).loss.mean()
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, f"{name} gets no gradient"


def test_fit_records_the_bound_by_its_name_and_refuses_a_kl_weight():
    data = torch.rand(64, 4).round()
    torch.manual_seed(0)
    net = VAE(4, 2, hidden_dims=(8,))
    history = fit(net, data, num_epochs=2, batch_size=16, X_val=data[:8], objective=iwae_objective(3),
                  generator=torch.Generator().manual_seed(0), progress=False)
    assert history.names() == ["iwae_bound", "val_iwae_bound", "seconds"]
    assert len(history.iwae_bound) == 2 and history.iwae_bound[-1] < 0
    for missing in ("kl", "elbo", "reconstruction", "beta"):
        with pytest.raises(AttributeError, match=rf"history: expected .*iwae_bound.*got '{missing}'"):
            getattr(history, missing)
    for kwargs, name in (({"beta": 0.3}, "beta"), ({"kl_warmup_epochs": 1}, "kl_warmup_epochs")):
        with pytest.raises(ValueError, match=rf"^{name}: expected .*no KL term to weight \(its terms: iwae_bound\)"):
            fit(VAE(4, 2, hidden_dims=(8,)), data, num_epochs=1, objective=iwae_objective(3), progress=False,
                **kwargs)


def test_effective_sample_size_matches_its_definition():
    log_w = torch.randn(30, 5, generator=torch.Generator().manual_seed(0)) * 3 - 100  # [k, batch]
    w = log_w.double().exp()
    expected = w.sum(0).pow(2) / w.pow(2).sum(0)
    assert torch.allclose(effective_sample_size(log_w).double(), expected, rtol=1e-5)
    assert torch.allclose(effective_sample_size(torch.zeros(7, 2)), torch.full((2,), 7.0))
    one_hot = torch.tensor([[0.0], [-1e4], [-1e4]])
    assert torch.allclose(effective_sample_size(one_hot), torch.ones(1))


def test_posterior_spread_is_the_geometric_mean_sigma(model):
    data = torch.rand(10, 4)
    _, logvar = model.encode(data)
    expected = torch.exp(0.5 * logvar).log().mean(0).exp()
    assert torch.allclose(posterior_spread(model, data, batch_size=3), expected, atol=1e-6)


def test_gradient_snr_is_mean_over_sd_of_repeated_gradients(model):
    x, k, repeats = X[:2], 3, 6
    snr = gradient_snr(model, x, k, repeats, generator=torch.Generator().manual_seed(4))
    g = torch.Generator().manual_seed(4)  # the same draws, by torch.distributions
    params = list(model.encoder.parameters()) + list(model.decoder.parameters())
    rows = []
    for _ in range(repeats):
        mu, logvar = model.encode(x)
        q = Normal(mu, torch.exp(0.5 * logvar))
        z = mu + torch.exp(0.5 * logvar) * torch.randn(k, *mu.shape, generator=g)  # [k, 2, 2]
        log_w = (Bernoulli(logits=model.decode(z)).log_prob(x).sum(-1) + Normal(0.0, 1.0).log_prob(z).sum(-1)
                 - q.log_prob(z).sum(-1))  # [k, 2]
        bound = (torch.logsumexp(log_w, 0) - math.log(k)).mean()
        rows.append(torch.cat([grad.reshape(-1) for grad in torch.autograd.grad(bound, params)]).double())
    samples = torch.stack(rows)  # [repeats, P]
    expected = samples.mean(0).abs() / samples.std(0)
    n_encoder = sum(p.numel() for p in model.encoder.parameters())
    assert torch.allclose(snr["encoder"], expected[:n_encoder], rtol=1e-3, equal_nan=True)
    assert torch.allclose(snr["decoder"], expected[n_encoder:], rtol=1e-3, equal_nan=True)
    assert all(p.grad is None for p in params)  # the model's .grad fields are left alone


def test_gradient_snr_follows_rainforth_and_marks_constant_components(model):
    x = X.clone()
    x[:, 1] = 0.0  # a blank pixel: its encoder weights get no gradient, ever
    snr = {k: gradient_snr(model, x, k, 200, generator=torch.Generator().manual_seed(5)) for k in (1, 64)}
    first_weight = snr[1]["encoder"][:32].reshape(8, 4)  # encoder[0].weight: [8 hidden, 4 pixels]
    assert torch.isnan(first_weight[:, 1]).all() and not torch.isnan(first_weight).all()  # (dead units: NaN rows)
    assert snr[64]["decoder"].nanmedian() > 2 * snr[1]["decoder"].nanmedian()  # grows like sqrt(k)
    assert snr[64]["encoder"].nanmedian() < 0.7 * snr[1]["encoder"].nanmedian()  # shrinks


def test_argument_errors(model):
    with pytest.raises(ValueError, match="k: expected an int >= 1"):
        iwae_objective(0)
    with pytest.raises(TypeError, match="k: expected an int"):
        iwae_objective(2.0)
    with pytest.raises(TypeError, match="generator"):
        iwae_objective(2)(model, X, generator=0)
    with pytest.raises(TypeError, match="model"):
        iwae_objective(2)(torch.nn.Linear(4, 4), X)
    with pytest.raises(ValueError, match="X"):
        posterior_spread(model, torch.rand(2, 4) + 1)
    with pytest.raises(ValueError, match="n_repeats"):
        gradient_snr(model, X, 2, n_repeats=1)
    with pytest.raises(TypeError, match="model"):
        gradient_snr(torch.nn.Linear(4, 4), X, 2)
    with pytest.raises(ValueError, match="x"):
        gradient_snr(model, X[:0], 2)
    assert iwae_objective(7).k == 7 and iwae_objective(7).__name__ == "iwae_objective(7)"
