"""VQ-VAE pieces against references written elsewhere: brute-force nearest neighbours, autograd of the identity,
the definition of perplexity via torch.distributions, exact enumeration of an autoregressive prior's K**P sequences."""

import itertools
import math

import pytest
import torch
from torch.distributions import Bernoulli, Categorical

from vae_lesson import fit, load_checkpoint, save_checkpoint
from vae_lesson.variants.vq_vae import (
    VQVAE,
    AutoregressivePrior,
    CategoricalPrior,
    code_usage,
    nearest_code,
    perplexity,
    straight_through,
    vq_bound,
    vq_losses,
    vq_objective,
)


@pytest.fixture
def model():
    torch.manual_seed(0)
    return VQVAE(input_dim=16, num_positions=3, code_dim=2, num_codes=5, hidden_dims=(12,))


def test_nearest_code_matches_brute_force():
    g = torch.Generator().manual_seed(0)
    codebook = torch.randn(7, 3, generator=g)
    z_e = torch.randn(4, 5, 3, generator=g)  # [batch, P, d]
    brute = torch.empty(4, 5, dtype=torch.int64)
    for b, p in itertools.product(range(4), range(5)):
        distances = [sum((z_e[b, p, i] - codebook[j, i]).item() ** 2 for i in range(3)) for j in range(7)]
        brute[b, p] = min(range(7), key=distances.__getitem__)
    assert torch.equal(nearest_code(z_e, codebook), brute)


def test_straight_through_is_identity_for_gradients():
    g = torch.Generator().manual_seed(1)
    z_e = torch.randn(3, 4, 2, generator=g, requires_grad=True)
    z_q = torch.randn(3, 4, 2, generator=g, requires_grad=True)
    weights = torch.randn(3, 4, 2, generator=g)
    f = lambda z: (weights * z).sin().sum()  # any differentiable downstream function
    out = straight_through(z_e, z_q)
    assert torch.equal(out, z_e + (z_q - z_e))  # forward value is z_q (up to float rounding)
    assert torch.allclose(out, z_q, atol=1e-6)
    (grad_ze,) = torch.autograd.grad(f(out), z_e)
    z_ref = z_q.detach().clone().requires_grad_(True)
    (grad_zq,) = torch.autograd.grad(f(z_ref), z_ref)  # gradient w.r.t. the quantised vector itself
    assert torch.allclose(grad_ze, grad_zq, atol=1e-6)
    out = straight_through(z_e, z_q)
    assert torch.autograd.grad(f(out), z_q, allow_unused=True)[0] is None  # nothing reaches the codes


def test_vq_losses_values_and_where_gradients_go():
    g = torch.Generator().manual_seed(2)
    z_e = torch.randn(2, 3, 4, generator=g, requires_grad=True)
    z_q = torch.randn(2, 3, 4, generator=g, requires_grad=True)
    codebook, commitment = vq_losses(z_e, z_q)
    expected = ((z_e - z_q) ** 2).sum((1, 2))
    assert torch.allclose(codebook, expected) and torch.allclose(commitment, expected)
    assert torch.autograd.grad(codebook.sum(), z_e, allow_unused=True)[0] is None
    assert torch.allclose(torch.autograd.grad(codebook.sum(), z_q)[0], 2 * (z_q - z_e))
    assert torch.autograd.grad(commitment.sum(), z_q, allow_unused=True)[0] is None
    assert torch.allclose(torch.autograd.grad(commitment.sum(), z_e)[0], 2 * (z_e - z_q))


def test_perplexity():
    assert perplexity(torch.arange(8).repeat(5), 8).item() == pytest.approx(8.0)  # uniform usage -> K
    assert perplexity(torch.full((4, 3), 2), 8).item() == pytest.approx(1.0)  # one code -> 1
    indices = torch.tensor([[0, 0, 1], [2, 0, 1]])
    counts = torch.tensor([3.0, 2.0, 1.0, 0.0])
    assert perplexity(indices, 4).item() == pytest.approx(Categorical(probs=counts / 6).entropy().exp().item())
    assert code_usage(indices, 4).tolist() == [3, 2, 1, 0]


def test_model_shapes_and_straight_through_decoder(model):
    x = torch.rand(6, 16, generator=torch.Generator().manual_seed(3))
    z_e = model.encode(x)
    indices, z_q = model.quantize(z_e)
    assert z_e.shape == z_q.shape == (6, 3, 2) and indices.shape == (6, 3) and indices.dtype == torch.int64
    assert torch.equal(z_q, model.codebook[nearest_code(z_e, model.codebook)])
    x_logits, *_ = model(x)
    assert x_logits.shape == (6, 16)
    assert torch.allclose(x_logits, model.decode(z_q), atol=1e-5)  # the decoder sees z_q in the forward pass
    assert torch.allclose(model.decode_indices(indices), model.decode(z_q))
    assert torch.equal(model.codes(x, batch_size=4), indices)


def test_objective_matches_torch_distributions_and_trains(model):
    x = (torch.rand(64, 16, generator=torch.Generator().manual_seed(4)) > 0.5).float()
    out = vq_objective(0.25)(model, x)
    x_logits, z_e, z_q, _ = model(x)
    reference = Bernoulli(logits=x_logits).log_prob(x).sum(-1)
    distance = ((z_e - z_q) ** 2).sum((1, 2))  # [64]
    assert list(out.terms) == ["reconstruction", "squared_distance"] and out.beta_term is None
    assert torch.allclose(out.terms["reconstruction"], reference, atol=1e-5)
    assert torch.allclose(out.terms["squared_distance"], distance, atol=1e-6)
    assert torch.allclose(out.loss, -reference + 1.25 * distance, atol=1e-4)
    history = fit(model, x, num_epochs=30, batch_size=16, lr=1e-2, objective=vq_objective(),
                  generator=torch.Generator().manual_seed(0))
    assert history.reconstruction[-1] > history.reconstruction[0] + 1.0
    assert history.names() == ["reconstruction", "squared_distance", "seconds"]


def test_bound_with_uniform_and_fitted_priors(model):
    x = (torch.rand(10, 16, generator=torch.Generator().manual_seed(5)) > 0.5).float()
    uniform = vq_bound(model, x)
    assert torch.allclose(uniform.kl, torch.full((10,), 3 * math.log(5)))
    assert torch.allclose(uniform.reconstruction, Bernoulli(logits=model(x)[0]).log_prob(x).sum(-1), atol=1e-5)
    prior = CategoricalPrior(model.codes(x), 5, alpha=1.0)
    fitted = vq_bound(model, x, prior)
    assert torch.allclose(fitted.reconstruction, uniform.reconstruction)
    assert fitted.kl.mean() <= uniform.kl.mean() + 1e-5  # frequencies fitted on x beat uniform on x


def test_categorical_prior_counts_and_samples():
    indices = torch.tensor([[0, 2], [0, 1], [1, 1], [0, 1]])  # [n=4, P=2], K=3
    prior = CategoricalPrior(indices, 3, alpha=0.0)
    assert torch.allclose(prior.log_probs.exp(), torch.tensor([[0.75, 0.25, 0.0], [0.0, 0.75, 0.25]]))
    smoothed = CategoricalPrior(indices, 3, alpha=1.0).log_probs.exp()
    assert torch.allclose(smoothed[0], torch.tensor([4.0, 2.0, 1.0]) / 7)
    expected = Categorical(probs=smoothed[0]).log_prob(torch.tensor(1)) + Categorical(
        probs=smoothed[1]).log_prob(torch.tensor(2))
    assert CategoricalPrior(indices, 3).log_prob(torch.tensor([[1, 2]])).item() == pytest.approx(expected.item())
    draws = prior.sample(20000, generator=torch.Generator().manual_seed(0))
    assert draws.shape == (20000, 2)
    assert (draws[:, 0] == 0).float().mean().item() == pytest.approx(0.75, abs=0.02)  # 0.003 standard error
    assert (draws[:, 1] != 0).all()


def test_autoregressive_prior_is_normalised_causal_and_samples_right():
    torch.manual_seed(0)
    prior = AutoregressivePrior(num_positions=3, num_codes=3)
    with torch.no_grad():
        prior.linear.weight.normal_(0, 2.0)
        prior.linear.bias.normal_(0, 1.0)
    every = torch.tensor(list(itertools.product(range(3), repeat=3)))  # all 27 sequences
    log_p = prior.log_prob(every)
    assert torch.logsumexp(log_p, 0).item() == pytest.approx(0.0, abs=1e-5)  # sums to 1 over K**P sequences
    a, b = torch.tensor([[0, 1, 2]]), torch.tensor([[0, 2, 0]])  # differ from position 1 on
    assert torch.allclose(prior.logits(a)[:, :2], prior.logits(b)[:, :2])  # positions 0, 1 ignore position >= 1
    assert not torch.allclose(prior.logits(a)[:, 2], prior.logits(b)[:, 2])
    draws = prior.sample(20000, generator=torch.Generator().manual_seed(1))
    codes = draws @ torch.tensor([9, 3, 1])  # sequence -> 0..26 in the order of `every`
    frequencies = torch.bincount(codes, minlength=27).float() / 20000
    assert torch.allclose(frequencies, log_p.exp(), atol=0.015)  # binomial sd <= 0.0036


def test_checkpoint_round_trip(model, tmp_path):
    save_checkpoint(model, tmp_path / "vq.pt")
    loaded = load_checkpoint(tmp_path / "vq.pt")
    assert isinstance(loaded, VQVAE) and loaded.config == model.config
    assert torch.equal(loaded.codebook, model.codebook)


def test_argument_errors(model):
    with pytest.raises(ValueError, match="z_e"):
        nearest_code(torch.zeros(2, 3), torch.zeros(4, 2))
    with pytest.raises(ValueError, match="x"):
        model.encode(torch.zeros(2, 15))
    with pytest.raises(ValueError, match="z_q"):
        model.decode(torch.zeros(2, 4, 2))
    with pytest.raises(ValueError, match="indices"):
        code_usage(torch.tensor([0, 5]), 5)
    with pytest.raises(TypeError, match="indices"):
        perplexity(torch.tensor([0.0, 1.0]), 5)
    with pytest.raises(ValueError, match="num_codes"):
        VQVAE(num_codes=0)
    with pytest.raises(ValueError, match="commitment_cost"):
        vq_objective(-1.0)
    with pytest.raises(ValueError, match="z_q"):
        straight_through(torch.zeros(2, 3), torch.zeros(3, 2))
    with pytest.raises(ValueError, match=r"indices: expected shape \[n, 3\]"):
        model.decode_indices(torch.zeros(2, 4, dtype=torch.int64))
    with pytest.raises(ValueError, match="indices"):
        AutoregressivePrior(3, 5).log_prob(torch.tensor([[0, 1, 5]]))
    with pytest.raises(TypeError, match="model"):
        vq_bound(torch.nn.Linear(2, 2), torch.zeros(1, 16))


def test_autoregressive_prior_starts_uniform():
    prior = AutoregressivePrior(num_positions=4, num_codes=6)
    indices = torch.randint(0, 6, (5, 4), generator=torch.Generator().manual_seed(0))
    assert torch.allclose(prior.log_prob(indices), torch.full((5,), -4 * math.log(6)))


def _brute_force_log_joint(model, x, prior):
    """log pi(k) + log p(x|k) for every one of the K**P code sequences, by enumeration: ``([K**P, P], [K**P])``."""
    K, P = model.num_codes, model.num_positions
    sequences = torch.tensor(list(itertools.product(range(K), repeat=P)))  # [K**P, P]
    with torch.no_grad():
        probs = torch.sigmoid(model.decode_indices(sequences))  # [K**P, D]
    log_lik = Bernoulli(probs=probs, validate_args=False).log_prob(x.expand_as(probs)).sum(1)  # grey x allowed
    log_prior = torch.full((len(sequences),), -P * math.log(K)) if prior is None else prior.log_prob(sequences)
    return sequences, log_lik + log_prior


@pytest.mark.parametrize("use_prior", [False, True])
def test_neighbour_bound_against_enumeration(model, use_prior):
    from vae_lesson.variants.vq_vae import neighbour_bound

    g = torch.Generator().manual_seed(3)
    X = torch.rand(6, 16, generator=g)  # [6, 16]
    prior = None
    if use_prior:
        prior = AutoregressivePrior(3, 5)
        with torch.no_grad():
            prior.linear.weight.normal_(0, 1, generator=g)
            prior.linear.bias.normal_(0, 1, generator=g)
    bound = neighbour_bound(model, X, prior, batch_size=4)  # two batches
    point_mass = vq_bound(model, X, prior).elbo  # [6]
    for i in range(len(X)):
        sequences, log_joint = _brute_force_log_joint(model, X[i:i + 1], prior)
        chosen = model.codes(X[i:i + 1])[0]  # [P]
        near = (sequences != chosen).sum(1) <= 1  # Hamming distance 0 or 1: 1 + P(K-1) = 13 sequences
        assert int(near.sum()) == 1 + 3 * 4
        exact = torch.logsumexp(log_joint, 0)  # log p(x), all 125 sequences
        assert bound[i].item() == pytest.approx(torch.logsumexp(log_joint[near], 0).item(), abs=1e-4)
        assert point_mass[i].item() <= bound[i].item() + 1e-5 and bound[i].item() <= exact.item() + 1e-5
        assert bound[i].item() > point_mass[i].item() + 1e-3, "the neighbours add probability"


def test_neighbour_bound_is_exact_with_one_position():
    from vae_lesson.variants.vq_vae import neighbour_bound

    torch.manual_seed(1)
    model = VQVAE(input_dim=10, num_positions=1, code_dim=2, num_codes=6, hidden_dims=(8,))
    X = torch.rand(4, 10, generator=torch.Generator().manual_seed(4))
    for i in range(4):
        exact = torch.logsumexp(_brute_force_log_joint(model, X[i:i + 1], None)[1], 0)  # every code is a neighbour
        assert neighbour_bound(model, X[i:i + 1])[0].item() == pytest.approx(exact.item(), abs=1e-4)


def test_neighbour_bound_rejects_bad_input(model):
    from vae_lesson.variants.vq_vae import neighbour_bound

    with pytest.raises(TypeError, match="model"):
        neighbour_bound(torch.nn.Linear(2, 2), torch.rand(2, 16))
    with pytest.raises(ValueError, match="X"):
        neighbour_bound(model, torch.rand(2, 16) + 1)
    with pytest.raises(ValueError, match="batch_size"):
        neighbour_bound(model, torch.rand(2, 16), batch_size=0)
