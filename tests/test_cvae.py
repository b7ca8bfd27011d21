"""The conditional VAE against references written elsewhere: the package's plain VAE (a CVAE with its label fixed
is a VAE), torch.distributions, and the widget driven the way ipywidgets tests itself (set a value, check the
picture)."""

import inspect
import math

import ipywidgets
import matplotlib
import matplotlib.pyplot as plt
import pytest
import torch
from torch.distributions import Bernoulli, Normal, kl_divergence

import vae_lesson.variants.cvae as cvae_module
from vae_lesson import (
    VAE,
    elbo,
    iwae_bound,
    iwae_log_weights,
    load_checkpoint,
    load_digits,
    save_checkpoint,
    seed_everything,
)
from vae_lesson.variants.cvae import (
    ConditionalVAE,
    conditional_elbo,
    conditional_sliders,
    elbo_per_label,
    evaluate_conditional,
    fit_conditional,
    log_weights_per_label,
    render_conditional_decode,
    style_transfer,
)
from vae_lesson.views.plotting import tile

matplotlib.use("Agg")

X = torch.rand(6, 16, generator=torch.Generator().manual_seed(3)).round()  # [6, 16], binary pixels
Y = torch.tensor([0, 1, 2, 0, 1, 2])  # [6]


def teardown_function():
    plt.close("all")


def make(seed=0, input_dim=16, latent_dim=3, num_classes=3, label_scale=10.0):
    torch.manual_seed(seed)
    return ConditionalVAE(input_dim, latent_dim, num_classes, hidden_dims=(8,), label_scale=label_scale).eval()


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_shapes():
    model = make()
    mu, logvar = model.encode(X, Y)
    assert mu.shape == logvar.shape == (6, 3)
    assert model.decode(mu, Y).shape == (6, 16)
    assert model.decode(torch.randn(4, 6, 3), Y).shape == (4, 6, 16)  # k draws per row
    assert model.decode(mu, 2).shape == (6, 16)  # one int for every row
    terms = conditional_elbo(model, X, Y, n_samples=3, generator=gen())
    assert all(t.shape == (6,) for t in terms)
    assert elbo_per_label(model, X, generator=gen()).shape == (6, 3)
    assert style_transfer(model, X, Y, targets=[2, 0]).shape == (6, 2, 16)
    assert sum(p.numel() for p in model.parameters()) == (16 + 3) * 8 + 8 + 8 * 6 + 6 + (3 + 3) * 8 + 8 + 8 * 16 + 16


def test_with_a_fixed_label_it_is_the_package_vae():
    model = make()
    for c in range(3):
        vae = model.with_label(c)
        assert type(vae) is VAE and vae.config["input_dim"] == 16 and not vae.training
        for a, b in zip(vae.encode(X), model.encode(X, c)):
            assert torch.allclose(a, b, atol=1e-6)
        z = torch.randn(6, 3, generator=gen(1))
        assert torch.allclose(vae.decode(z), model.decode(z, c), atol=1e-6)
        ours = conditional_elbo(model, X, c, n_samples=2, generator=gen(2))
        reference = elbo(vae, X, n_samples=2, generator=gen(2))
        for a, b in zip(ours, reference):
            assert torch.allclose(a, b, atol=1e-4)
        assert torch.isfinite(iwae_bound(vae, X, k=5, generator=gen())).all()  # VAE tools apply to p(x|y=c)


def test_with_label_leaves_the_global_random_state_alone():
    model = make()
    state = torch.random.get_rng_state()
    model.with_label(1)
    assert torch.equal(state, torch.random.get_rng_state())


def test_a_cvae_with_one_constant_label_reduces_to_a_vae():
    torch.manual_seed(4)
    vae = VAE(16, 3, hidden_dims=(8,)).eval()
    model = make(num_classes=1)
    with torch.no_grad():  # copy the VAE's weights; the constant label's columns contribute nothing
        for name in ("encoder", "decoder"):
            ours, theirs = getattr(model, name), getattr(vae, name)
            ours[0].weight.zero_()
            ours[0].weight[:, :-1] = theirs[0].weight
            ours[0].bias.copy_(theirs[0].bias)
            ours[2].load_state_dict(theirs[2].state_dict())
    for a, b in zip(conditional_elbo(model, X, 0, generator=gen(5)), elbo(vae, X, generator=gen(5))):
        assert torch.allclose(a, b, atol=1e-5)


def test_label_scale_changes_no_function_only_the_parameterization():
    scaled, plain = make(label_scale=10.0), make(label_scale=1.0)
    with torch.no_grad():
        for name, width in (("encoder", 16), ("decoder", 3)):
            getattr(plain, name)[0].weight[:, width:] *= 10.0  # the weights absorb the scale
    for a, b in zip(scaled.encode(X, Y), plain.encode(X, Y)):
        assert torch.allclose(a, b, atol=1e-6)
    z = torch.randn(6, 3, generator=gen())
    assert torch.allclose(scaled.decode(z, Y), plain.decode(z, Y), atol=1e-5)


def test_conditional_elbo_matches_torch_distributions():
    model = make()
    terms = conditional_elbo(model, X, Y, n_samples=4000, generator=gen(6))
    with torch.no_grad():
        mu, logvar = model.encode(X, Y)
        q = Normal(mu, torch.exp(0.5 * logvar))
        kl = kl_divergence(q, Normal(torch.zeros_like(mu), torch.ones_like(mu))).sum(-1)  # [6]
        log_px_z = Bernoulli(logits=model.decode(q.sample((4000,)), Y)).log_prob(X).sum(-1)  # [4000, 6]
    assert torch.allclose(terms.kl, kl, atol=1e-5)
    se = log_px_z.std(0) / math.sqrt(4000)  # standard error of each example's mean
    assert ((terms.reconstruction.detach() - log_px_z.mean(0)).abs() < 6 * se + 1e-3).all()
    assert torch.allclose(terms.elbo, terms.reconstruction - terms.kl)


def test_elbo_per_label_is_the_elbo_of_each_fixed_label_vae():
    model = make()
    scores = elbo_per_label(model, X, n_samples=3, generator=gen(7))
    reference = gen(7)  # the same draws, label after label
    for c in range(3):
        assert torch.allclose(scores[:, c], elbo(model.with_label(c), X, n_samples=3, generator=reference).elbo,
                              atol=1e-4)


def test_log_weights_per_label_match_torch_distributions():
    model, k = make(), 5
    log_w = log_weights_per_label(model, X, k, generator=gen(8))
    assert log_w.shape == (k, 6, 3)
    g = gen(8)  # the same draws: label after label, [k, batch, latent_dim] each
    with torch.no_grad():
        for c in range(3):
            mu, logvar = model.encode(X, c)
            q = Normal(mu, torch.exp(0.5 * logvar))
            z = mu + torch.exp(0.5 * logvar) * torch.randn(k, *mu.shape, generator=g)  # [k, 6, 3]
            expected = (Bernoulli(logits=model.decode(z, c)).log_prob(X).sum(-1)
                        + Normal(0.0, 1.0).log_prob(z).sum(-1) - q.log_prob(z).sum(-1))  # [k, 6]
            assert torch.allclose(log_w[..., c], expected, atol=1e-4)


def test_log_weights_per_label_are_each_fixed_label_vaes_iwae_weights():
    model, k = make(), 50
    log_w = log_weights_per_label(model, X, k, generator=gen(9))  # one chunk: the draws go label after label
    reference = gen(9)
    with torch.no_grad():
        for c in range(3):
            expected = iwae_log_weights(model.with_label(c), X, k, generator=reference)  # [k, 6], the plain VAE's
            assert torch.allclose(log_w[..., c], expected, atol=1e-4)
    # chunks of images change which draw goes to which image, not the distribution: the IWAE-k means agree
    chunked = log_weights_per_label(model, X, 4000, generator=gen(10), max_rows=8000)  # 2 images per chunk
    whole = log_weights_per_label(model, X, 4000, generator=gen(11))
    bound = lambda lw: torch.logsumexp(lw, 0) - math.log(lw.shape[0])  # [6, 3]
    assert chunked.shape == whole.shape == (4000, 6, 3)
    assert (bound(chunked) - bound(whole)).abs().mean() < 0.1
    assert log_weights_per_label(model, X[:0], 3).shape == (3, 0, 3)


def test_fit_keeps_each_image_with_its_label_and_raises_the_elbo(monkeypatch):
    X_digits, y_digits = load_digits("train")
    X_small, y_small = X_digits[:300], y_digits[:300]
    X_marked = X_small.clone()
    X_marked[:, 0] = y_small / 9  # pixel 0 says the label, so the objective can check each pair it is given
    seen = []
    original = cvae_module.conditional_elbo

    def spy(model, x, y, *args):
        seen.append(bool(torch.equal(torch.round(x[:, 0] * 9).long(), y)))
        return original(model, x, y, *args)

    monkeypatch.setattr(cvae_module, "conditional_elbo", spy)
    seed_everything(0)  # one thread: small models train many times faster
    model = ConditionalVAE(64, 2, 10, hidden_dims=(32,))
    history = fit_conditional(model, X_marked, y_small, num_epochs=6, batch_size=50, lr=3e-3,
                              X_val=X_marked[:100], y_val=y_small[:100], generator=gen(8))
    assert seen and all(seen)
    assert len(history.val_elbo) == 6 and history.val_elbo[-1] > history.val_elbo[0] + 5
    assert not model.training
    monkeypatch.setattr(cvae_module, "conditional_elbo", original)
    means = evaluate_conditional(model, X_marked[:100], y_small[:100], n_samples=2, generator=gen(9))
    direct = original(model, X_marked[:100], y_small[:100], 2, gen(9))
    for name in ("elbo", "reconstruction", "kl"):
        assert abs(means[name] - getattr(direct, name).mean().item()) < 1e-3


def test_style_transfer_decodes_the_posterior_mean_with_each_target():
    model = make()
    out = style_transfer(model, X, Y, targets=[2, 0])
    mu, _ = model.encode(X, Y)
    assert torch.allclose(out[:, 0], torch.sigmoid(model.decode(mu, 2)).detach())
    assert torch.allclose(out[:, 1], torch.sigmoid(model.decode(mu, 0)).detach())


def test_checkpoint_round_trip(tmp_path):
    model = make(label_scale=4.0)
    save_checkpoint(model, tmp_path / "cvae.pt")
    loaded = load_checkpoint(tmp_path / "cvae.pt")
    assert type(loaded) is ConditionalVAE and loaded.config == model.config
    z = torch.randn(6, 3, generator=gen())
    assert torch.equal(loaded.decode(z, Y), model.decode(z, Y))


def test_render_shows_the_decode_of_z_with_the_digit():
    model = make(input_dim=16)
    z = torch.randn(3, generator=gen())
    fig = render_conditional_decode(model, z, 1)
    decodes = torch.sigmoid(model.decode(z.expand(3, -1), torch.arange(3))).detach()  # [3, 16]
    assert torch.allclose(torch.as_tensor(fig.axes[0].images[0].get_array()), decodes[1].reshape(4, 4))
    assert torch.allclose(torch.as_tensor(fig.axes[1].images[0].get_array()), torch.as_tensor(tile(decodes, 3)))


def test_widget_decodes_the_chosen_z_and_digit():
    model = make(latent_dim=4)
    handles = conditional_sliders(model, X, Y, example=4, max_sliders=2)
    assert isinstance(handles.container, ipywidgets.VBox) and handles.image.value
    assert "display(" not in inspect.getsource(conditional_sliders)
    mu, _ = model.encode(X, Y)
    assert handles.digit.value == 1 and torch.allclose(handles.z, mu[4])  # starts at example 4, its label
    assert handles.dims == mu.var(0).argsort(descending=True)[:2].tolist()
    handles.digit.value = 2
    handles.sliders[0].value = 1.5
    handles.sliders[1].value = -0.75
    z = mu[4].detach().clone()
    z[handles.dims[0]], z[handles.dims[1]] = 1.5, -0.75
    expected = torch.sigmoid(model.decode(z[None], 2))[0].detach()  # [16]
    assert torch.allclose(handles.z, z)
    assert torch.allclose(handles.pixels, expected)
    assert torch.allclose(torch.as_tensor(handles.figure.axes[0].images[0].get_array()), expected.reshape(4, 4))
    assert not handles.output.outputs


def test_argument_errors():
    model = make()
    with pytest.raises(TypeError, match="y"):
        model.encode(X, Y.float())
    with pytest.raises(ValueError, match="y"):
        model.encode(X, Y[:3])
    with pytest.raises(ValueError, match="y"):
        model.decode(torch.zeros(6, 3), torch.full((6,), 3))
    with pytest.raises(ValueError, match="x"):
        model.encode(X[:, :5], Y)
    with pytest.raises(ValueError, match="label"):
        model.with_label(3)
    with pytest.raises(TypeError, match="model"):
        conditional_elbo(VAE(16, 3), X, Y)
    with pytest.raises(TypeError, match="y_val"):
        fit_conditional(model, X, Y, X_val=X)
    with pytest.raises(ValueError, match="label_scale"):
        ConditionalVAE(16, 3, label_scale=0)
    with pytest.raises(ValueError, match="digit"):
        render_conditional_decode(model, torch.zeros(3), 3)
    with pytest.raises(ValueError, match="example"):
        conditional_sliders(model, X, Y, example=6)
    with pytest.raises(ValueError, match="k: expected an int >= 1"):
        log_weights_per_label(model, X, 0)
    with pytest.raises(TypeError, match="model"):
        log_weights_per_label(VAE(16, 3), X, 2)
    with pytest.raises(ValueError, match="x"):
        log_weights_per_label(model, X + 2, 2)


def test_widget_errors_appear_in_its_output(monkeypatch):
    model = make()
    handles = conditional_sliders(model, X, Y, max_sliders=1)

    def broken(*args, **kwargs):
        raise RuntimeError("drawing failed")

    monkeypatch.setattr(cvae_module, "render_conditional_decode", broken)
    handles.digit.value = 0 if handles.digit.value else 1
    assert "RuntimeError: drawing failed" in str(handles.output.outputs)
    monkeypatch.undo()
    handles.digit.value = 2
    assert not handles.output.outputs, "the next good update clears the error"
