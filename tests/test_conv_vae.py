"""ConvVAE against references written elsewhere: torch.distributions for the ELBO, the closed-form parameter count
of its layers, translation equivariance of convolutions (which checks the image reshape), and the package's
training and evaluation functions run unchanged."""

import pytest
import torch
from torch.distributions import Bernoulli, Normal, kl_divergence

from vae_lesson import elbo, evaluate, fit, iwae_bound, load_checkpoint, load_digits, save_checkpoint
from vae_lesson.variants.conv_vae import ConvVAE


@pytest.fixture
def model():
    torch.manual_seed(0)
    return ConvVAE(image_side=8, latent_dim=3, channels=(2, 4))


def test_shapes(model):
    x = torch.rand(5, 64, generator=torch.Generator().manual_seed(0))
    mu, logvar = model.encode(x)
    assert mu.shape == logvar.shape == (5, 3)
    assert model.decode(mu).shape == (5, 64)
    z = torch.randn(7, 5, 3, generator=torch.Generator().manual_seed(1))  # [k, batch, latent_dim]
    assert torch.allclose(model.decode(z)[2], model.decode(z[2]), atol=1e-6)
    assert model.sample(4, generator=torch.Generator().manual_seed(0)).shape == (4, 64)
    assert model.reconstruct(x).shape == (5, 64) and model.input_dim == 64


def test_parameter_count_matches_the_layer_formulas():
    net = ConvVAE(28, 20, (16, 32))
    conv = lambda c_in, c_out: c_in * c_out * 4 * 4 + c_out  # weights + biases of a 4 x 4 (transposed) convolution
    linear = lambda n_in, n_out: n_in * n_out + n_out
    expected = (conv(1, 16) + conv(16, 32) + linear(32 * 7 * 7, 40)  # encoder
                + linear(20, 32 * 7 * 7) + conv(32, 16) + conv(16, 1))  # decoder
    assert sum(p.numel() for p in net.parameters()) == expected == 112_649


def test_elbo_matches_torch_distributions(model):
    x = (torch.rand(6, 64, generator=torch.Generator().manual_seed(2)) > 0.5).float()
    terms = elbo(model, x, generator=torch.Generator().manual_seed(3))
    mu, logvar = model.encode(x)
    eps = torch.randn(mu.shape, generator=torch.Generator().manual_seed(3))  # the same noise
    q = Normal(mu, torch.exp(0.5 * logvar))
    reconstruction = Bernoulli(logits=model.decode(mu + q.scale * eps)).log_prob(x).sum(-1)
    kl = kl_divergence(q, Normal(torch.zeros_like(mu), torch.ones_like(mu))).sum(-1)
    assert torch.allclose(terms.reconstruction, reconstruction, atol=1e-5)
    assert torch.allclose(terms.kl, kl, atol=1e-5)


def test_encoder_trunk_is_translation_equivariant():
    # Shifting the 28 x 28 image by 4 pixels (two stride-2 layers) shifts the 7 x 7 feature map by one cell, away
    # from the zero-padded border: this holds only if the flat vector is reshaped to rows and columns the way
    # images are flattened (row-major).
    torch.manual_seed(0)
    net = ConvVAE(28, 2, (3, 5))
    trunk = net.encoder[:-2]  # convolutions and ReLUs, before Flatten and Linear
    image = torch.zeros(28, 28)
    image[8:16, 10:14] = torch.rand(8, 4, generator=torch.Generator().manual_seed(0))
    maps = trunk(image.reshape(1, 1, 28, 28))[0]  # [5, 7, 7]
    down = trunk(torch.roll(image, 4, dims=0).reshape(1, 784).reshape(1, 1, 28, 28))[0]
    right = trunk(torch.roll(image, 4, dims=1).reshape(1, 784).reshape(1, 1, 28, 28))[0]
    assert torch.allclose(maps[:, 1:5, 1:6], down[:, 2:6, 1:6], atol=1e-6)  # cells 1..5 see no padding
    assert torch.allclose(maps[:, 1:6, 1:5], right[:, 1:6, 2:6], atol=1e-6)
    assert not torch.allclose(maps[:, 1:5, 1:6], maps[:, 2:6, 1:6], atol=1e-3)  # the check has teeth
    flat = image.reshape(1, 784)
    assert torch.allclose(net.encoder[-1](maps.reshape(1, -1)), torch.cat(net.encode(flat), 1), atol=1e-6)


def test_fit_evaluate_and_iwae_work_unchanged():
    X, _ = load_digits("train")
    torch.manual_seed(0)
    net = ConvVAE(8, 4, (8, 16))
    g = torch.Generator().manual_seed(0)
    history = fit(net, X[:512], num_epochs=3, batch_size=64, lr=1e-2, generator=g)
    assert history.elbo[-1] > history.elbo[0] + 3
    terms = evaluate(net, X[:200], generator=g)
    with torch.no_grad():
        bound = iwae_bound(net, X[:200], 20, generator=g).mean().item()
    assert terms["elbo"] < bound < 0  # ELBO <= IWAE-50 <= log p(x) <= 0 for Bernoulli pixels


def test_checkpoint_round_trip(model, tmp_path):
    save_checkpoint(model, tmp_path / "conv.pt")
    loaded = load_checkpoint(tmp_path / "conv.pt")
    x = torch.rand(2, 64, generator=torch.Generator().manual_seed(0))
    assert isinstance(loaded, ConvVAE) and loaded.config == model.config
    assert torch.allclose(loaded.encode(x)[0], model.encode(x)[0])


def test_argument_errors(model):
    with pytest.raises(ValueError, match="image_side"):
        ConvVAE(image_side=30, channels=(16, 32))
    with pytest.raises(ValueError, match="channels"):
        ConvVAE(channels=())
    with pytest.raises(TypeError, match="latent_dim"):
        ConvVAE(latent_dim=2.0)
    with pytest.raises(ValueError, match="x"):
        model.encode(torch.zeros(2, 63))
    with pytest.raises(ValueError, match="z"):
        model.decode(torch.zeros(2, 4))
