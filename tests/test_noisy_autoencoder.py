"""Unit tests for vae_lesson.theory.noisy_autoencoder: the fixed-noise autoencoder and the code statistics.

References: the closed-form Gaussian KL (a one-component aggregate is a single Gaussian), a mixture of far-apart
components (its KL is the mean component KL minus log n), torch.distributions' MixtureSameFamily for a general
mixture, and hand-computed standard deviations. Monte Carlo tolerances: 5 standard errors.
"""

from __future__ import annotations

import math

import pytest
import torch
from support import gen as _gen
from torch.distributions import Categorical, Independent, MixtureSameFamily, Normal

from vae_lesson import elbo, fit, gaussian_kl
from vae_lesson.theory.noisy_autoencoder import (
    NoisyAutoencoder,
    aggregate_kl,
    code_summary,
    distance_to_codes,
    prior_coverage,
)

# -------------------------------------------------------------------------------------- NoisyAutoencoder


def test_encoder_outputs_means_and_a_fixed_log_variance():
    torch.manual_seed(0)
    model = NoisyAutoencoder(6, 3, hidden_dims=(5,), noise_std=0.5)
    x = torch.rand(4, 6)
    mu, logvar = model.encode(x)
    assert mu.shape == logvar.shape == (4, 3)
    torch.testing.assert_close(logvar, torch.full((4, 3), 2 * math.log(0.5)))
    assert model.encoder[-1].out_features == 3  # no variance head
    assert model.config["noise_std"] == 0.5
    assert "noise_std=0.5" in repr(model)


class _Recorder(torch.nn.Module):
    """Stands in for the decoder: remembers the codes z it receives, returns zero logits."""

    def forward(self, z):
        self.z = z.detach()
        return torch.zeros(*z.shape[:-1], 6, dtype=z.dtype)


def test_elbo_feeds_the_decoder_codes_with_the_fixed_noise():
    torch.manual_seed(0)
    model = NoisyAutoencoder(6, 2, hidden_dims=(5,), noise_std=2.0)
    model.decoder = _Recorder()
    x = torch.rand(1, 6).expand(20000, 6)
    elbo(model, x, generator=_gen(1))
    mu, _ = model.encode(x)
    noise = model.decoder.z - mu  # [20000, 2], should be N(0, 2^2) per dimension
    assert noise.mean(0).abs().max() < 5 * 2.0 / math.sqrt(20000)
    assert (noise.std(0) - 2.0).abs().max() < 5 * 2.0 / math.sqrt(2 * 20000)


def test_fit_with_beta_zero_trains_on_reconstruction_only():
    torch.manual_seed(0)
    model = NoisyAutoencoder(6, 2, hidden_dims=(8,), noise_std=1.0)
    X = torch.bernoulli(torch.full((64, 6), 0.3), generator=_gen(2))
    history = fit(model, X, num_epochs=3, batch_size=16, lr=1e-2, beta=0.0, generator=_gen(3))
    assert history.beta == [0.0, 0.0, 0.0]
    assert history.reconstruction[-1] > history.reconstruction[0]
    # the recorded KL is the closed form with sigma = sigma0 = 1: 0.5 * sum mu^2
    mu, logvar = model.encode(X)
    torch.testing.assert_close(gaussian_kl(mu, logvar), 0.5 * mu.pow(2).sum(-1))


# ------------------------------------------------------------------------------------------- aggregate_kl


def test_one_component_aggregate_kl_is_the_gaussian_kl():
    mu = torch.tensor([[0.7, -1.2]], dtype=torch.float64)
    logvar = torch.tensor([[-0.5, 0.4]], dtype=torch.float64)
    exact = gaussian_kl(mu, logvar).item()
    # log q - log p for z ~ q has a finite variance; 20000 draws give a standard error below 0.01 nats here
    estimate = aggregate_kl(mu.expand(5, 2), logvar.expand(5, 2), n_samples=20000, generator=_gen(4))
    assert abs(estimate - exact) < 0.05


def test_far_apart_components_lose_log_n():
    mu = torch.tensor([[-60.0, 0.0], [60.0, 0.0], [0.0, 60.0], [0.0, -60.0]], dtype=torch.float64)
    logvar = torch.full((4, 2), -1.0, dtype=torch.float64)
    expected = gaussian_kl(mu, logvar).mean().item() - math.log(4)
    estimate = aggregate_kl(mu, logvar, n_samples=20000, generator=_gen(5))
    assert abs(estimate - expected) / expected < 0.01


def test_aggregate_kl_matches_torch_mixture():
    g = _gen(6)
    mu = torch.randn(7, 2, generator=g, dtype=torch.float64)
    logvar = 0.3 * torch.randn(7, 2, generator=g, dtype=torch.float64)
    mixture = MixtureSameFamily(Categorical(logits=torch.zeros(7, dtype=torch.float64)),
                                Independent(Normal(mu, torch.exp(0.5 * logvar)), 1))
    torch.manual_seed(7)
    z = mixture.sample((40000,))
    terms = mixture.log_prob(z) - Normal(0.0, 1.0).log_prob(z).sum(-1)  # [40000]
    reference, se = terms.mean().item(), (terms.std() / 200).item()
    estimate = aggregate_kl(mu, logvar, n_samples=40000, generator=_gen(8))
    assert abs(estimate - reference) < 5 * math.sqrt(2) * se


def test_aggregate_kl_of_the_prior_itself_is_near_zero():
    g = _gen(9)
    mu = torch.randn(3000, 2, generator=g, dtype=torch.float64) * math.sqrt(0.96)
    logvar = torch.full((3000, 2), math.log(0.04), dtype=torch.float64)  # spread^2 + sigma^2 = 1
    assert abs(aggregate_kl(mu, logvar, n_samples=3000, generator=_gen(10))) < 0.1


# ----------------------------------------------------------------------------------------- prior_coverage


@pytest.mark.parametrize("d,radius,exact", [
    (2, 2.0, 1 - math.exp(-2.0)),  # ||z||^2 ~ chi^2_2: P(||z|| < r) = 1 - exp(-r^2 / 2)
    (1, 1.0, math.erf(1 / math.sqrt(2))),  # P(|z| < 1) for a standard normal
])
def test_one_standard_code_covers_the_chi_probability(d, radius, exact):
    mu, logvar = torch.zeros(1, d, dtype=torch.float64), torch.zeros(1, d, dtype=torch.float64)
    n = 20000
    got = prior_coverage(mu, logvar, n_samples=n, radius=radius, generator=_gen(11))
    assert abs(got - exact) < 5 * math.sqrt(exact * (1 - exact) / n)


def test_point_like_codes_leave_holes_and_a_dense_cover_fills_them():
    g = _gen(12)
    grid = torch.cartesian_prod(torch.linspace(-4, 4, 41), torch.linspace(-4, 4, 41)).double()  # spacing 0.2
    wide = prior_coverage(grid, torch.full_like(grid, math.log(0.2**2)), generator=g)  # radius 2 sigma = 0.4
    points = prior_coverage(grid, torch.full_like(grid, math.log(0.01**2)), generator=g)  # radius 0.02
    assert wide > 0.99  # every point of [-4, 4]^2 is within 0.15 of a grid node
    assert points < 0.1  # discs of radius 0.02 around nodes 0.2 apart cover about 3 % of the square


def test_distance_to_codes_by_hand():
    mu = torch.tensor([[0.0, 0.0], [10.0, 0.0]])
    logvar = torch.log(torch.tensor([[1.0, 1.0], [4.0, 4.0]]))  # sigma 1 and 2
    z = torch.tensor([[-3.0, 4.0], [10.0, 2.0], [7.0, 0.0]])
    # (-3, 4): 5 sigmas from code 0 (6.8 from code 1); (10, 2): 1 sigma from code 1; (7, 0): min(7, 3/2)
    torch.testing.assert_close(distance_to_codes(z, mu, logvar), torch.tensor([5.0, 1.0, 1.5]))


# ------------------------------------------------------------------------------------------- code_summary


def test_code_summary_by_hand():
    mu = torch.tensor([[0.0, 1.0], [2.0, 1.0], [4.0, 4.0]])
    logvar = torch.log(torch.tensor([[0.25, 1.0], [0.25, 1.0], [0.25, 1.0]]))
    summary = code_summary(mu, logvar)
    assert summary["spread"] == pytest.approx((2.0 + math.sqrt(3.0)) / 2)  # stds 2 and sqrt(3)
    assert summary["sigma"] == pytest.approx(0.75)  # mean of 0.5 and 1


# ------------------------------------------------------------------------------------------ argument errors


@pytest.mark.parametrize("call,error,match", [
    (lambda: NoisyAutoencoder(6, 2, noise_std=0.0), ValueError, "noise_std: expected a number > 0"),
    (lambda: NoisyAutoencoder(6, 2, noise_std="1"), TypeError, "noise_std: expected a real number"),
    (lambda: aggregate_kl(torch.zeros(3, 2), torch.zeros(3, 1)), ValueError, "logvar: expected the shape"),
    (lambda: aggregate_kl(torch.zeros(3), torch.zeros(3)), ValueError, "mu: expected a 2-D tensor"),
    (lambda: aggregate_kl(torch.zeros(0, 2), torch.zeros(0, 2)), ValueError, "mu: expected at least one code"),
    (lambda: aggregate_kl(torch.zeros(3, 2), torch.zeros(3, 2), n_samples=0), ValueError, "n_samples"),
    (lambda: aggregate_kl(torch.zeros(3, 2), torch.zeros(3, 2), generator=0), TypeError, "generator"),
    (lambda: code_summary(torch.zeros(1, 2), torch.zeros(1, 2)), ValueError, "mu: expected at least two codes"),
    (lambda: prior_coverage(torch.zeros(3, 2), torch.zeros(3, 2), radius=0), ValueError, "radius: expected a number"),
    (lambda: prior_coverage(torch.zeros(3, 2), torch.zeros(2, 2)), ValueError, "logvar: expected the shape"),
    (lambda: distance_to_codes(torch.zeros(4, 3), torch.zeros(2, 2), torch.zeros(2, 2)), ValueError,
     "z: expected shape"),
])
def test_bad_arguments_name_the_argument(call, error, match):
    with pytest.raises(error, match=match):
        call()
