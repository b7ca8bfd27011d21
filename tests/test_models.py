"""The two MLP models: shapes, sampling, and the constructor's and methods' argument checks."""

import pytest
import torch

from vae_lesson import VAE, Autoencoder


@pytest.mark.parametrize("cls", [VAE, Autoencoder])
def test_shapes(cls):
    model = cls(12, 3, hidden_dims=(10, 7))
    x = torch.rand(5, 12)
    code = model.encode(x)
    if cls is VAE:
        mu, logvar = code
        assert mu.shape == logvar.shape == (5, 3)
        z = mu
    else:
        assert code.shape == (5, 3)
        z = code
    assert model.decode(z).shape == (5, 12)
    assert model.decode(z.expand(4, 5, 3)).shape == (4, 5, 12)  # k samples per example
    recon = model.reconstruct(x)
    assert recon.shape == (5, 12) and bool(((recon >= 0) & (recon <= 1)).all())
    assert model.config == {"input_dim": 12, "latent_dim": 3, "hidden_dims": [10, 7]}


def test_vae_sample_is_seeded_and_in_unit_interval():
    model = VAE(12, 3)
    a = model.sample(6, generator=torch.Generator().manual_seed(0))
    b = model.sample(6, generator=torch.Generator().manual_seed(0))
    c = model.sample(6, generator=torch.Generator().manual_seed(1))
    assert a.shape == (6, 12) and torch.equal(a, b) and not torch.equal(a, c)
    assert bool(((a > 0) & (a < 1)).all())


def test_vae_sample_decodes_prior_draws():
    model = VAE(12, 3)
    z = torch.randn(6, 3, generator=torch.Generator().manual_seed(5))
    expected = torch.sigmoid(model.decode(z))
    assert torch.allclose(model.sample(6, generator=torch.Generator().manual_seed(5)), expected)


def test_forward_uses_reparameterized_noise_and_backpropagates():
    model = VAE(12, 3)
    x = torch.rand(4, 12)
    logits, mu, logvar = model(x, generator=torch.Generator().manual_seed(0))
    assert logits.shape == (4, 12)
    logits.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"latent_dim": 0}, ValueError, "latent_dim: expected an int >= 1, got 0"),
        ({"latent_dim": 2.0}, TypeError, "latent_dim: expected an int"),
        ({"input_dim": -3}, ValueError, "input_dim"),
        ({"hidden_dims": (400, 0)}, ValueError, r"hidden_dims\[1\]: expected an int >= 1"),
        ({"hidden_dims": 400}, TypeError, "hidden_dims: expected a sequence"),
    ],
)
@pytest.mark.parametrize("cls", [VAE, Autoencoder])
def test_constructor_rejects_bad_sizes(cls, kwargs, error, match):
    args = {"input_dim": 12, "latent_dim": 2, **kwargs}
    with pytest.raises(error, match=match):
        cls(**args)


@pytest.mark.parametrize(
    ("x", "error", "match"),
    [
        (torch.rand(4, 11), ValueError, r"x: expected shape \[batch, 12\]"),
        (torch.rand(12), ValueError, "x: expected a 2-D tensor"),
        (torch.rand(4, 12) + 1, ValueError, "x: expected values <= 1.0"),
        (torch.rand(4, 12) - 1, ValueError, "x: expected values >= 0.0"),
        (torch.ones(4, 12, dtype=torch.uint8), TypeError, "x: expected a floating-point tensor"),
    ],
)
@pytest.mark.parametrize("cls", [VAE, Autoencoder])
def test_encode_rejects_bad_images(cls, x, error, match):
    with pytest.raises(error, match=match):
        cls(12, 2).encode(x)


def test_decode_and_sample_reject_bad_arguments():
    model = VAE(12, 2)
    with pytest.raises(ValueError, match=r"z: expected shape \[batch, 2\]"):
        model.decode(torch.zeros(3, 5))
    with pytest.raises(ValueError, match="z: expected finite values"):
        model.decode(torch.full((3, 2), float("inf")))
    with pytest.raises(ValueError, match="n: expected an int >= 1"):
        model.sample(0)
    with pytest.raises(TypeError, match="generator: expected a torch.Generator"):
        model.sample(2, generator=0)
