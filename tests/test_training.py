"""fit and evaluate: learning happens, reruns are bit-identical, bad input and divergence stop loudly."""

import math

import pytest
import torch

from vae_lesson import VAE, Autoencoder, evaluate, fit, load_digits, seed_everything
from vae_lesson.core.training import show_progress


@pytest.fixture(scope="module")
def digits():
    return load_digits("train")[0], load_digits("test")[0]


def train_digits(X, X_val, seed=0, **kwargs):
    generator = seed_everything(seed)
    model = VAE(64, 4, hidden_dims=(64,))
    history = fit(model, X, num_epochs=kwargs.pop("num_epochs", 4), batch_size=64, lr=3e-3, X_val=X_val,
                  generator=generator, progress=False, **kwargs)
    return model, history


def test_fit_lowers_validation_negative_elbo(digits):
    X, X_val = digits
    generator = seed_everything(0)
    model = VAE(64, 4, hidden_dims=(64,))
    before = evaluate(model, X_val, generator=generator)["elbo"]
    _, history = train_digits(X, X_val)
    assert len(history) == 4 and len(history.val_elbo) == 4
    assert history.val_elbo[-1] > before + 5, (before, history.val_elbo)
    assert history.val_elbo[-1] > history.val_elbo[0]
    for name in ("elbo", "val_elbo"):
        recon, kl = history[name.replace("elbo", "reconstruction")], history[name.replace("elbo", "kl")]
        assert all(math.isclose(e, r - k, rel_tol=1e-6) for e, r, k in zip(history[name], recon, kl))


def test_two_seeded_runs_are_bit_identical(digits):
    X, X_val = digits
    model_a, history_a = train_digits(X, X_val, seed=3, num_epochs=2)
    model_b, history_b = train_digits(X, X_val, seed=3, num_epochs=2)
    assert history_a.as_dict() == history_b.as_dict()
    for a, b in zip(model_a.parameters(), model_b.parameters()):
        assert torch.equal(a, b)
    _, history_c = train_digits(X, X_val, seed=4, num_epochs=2)
    assert history_c.as_dict() != history_a.as_dict()


def test_kl_warmup_ramps_beta(digits):
    X, _ = digits
    _, history = train_digits(X, None, num_epochs=4, beta=2.0, kl_warmup_epochs=2)
    assert history.beta[0] == pytest.approx(1.0)  # end of epoch 1 of 2 warm-up epochs
    assert history.beta[1:] == [2.0, 2.0, 2.0]
    assert "val_elbo" not in history  # no X_val, no validation series
    have = r"\(reconstruction, kl, elbo, beta, seconds\)"
    with pytest.raises(KeyError, match=rf"history: expected the name of a series it records {have}, got 'val_elbo'"):
        history["val_elbo"]


def test_beta_zero_lets_kl_grow(digits):
    X, _ = digits
    _, free = train_digits(X, None, beta=0.0)
    _, regular = train_digits(X, None, beta=1.0)
    assert free.kl[-1] > 2 * regular.kl[-1]


def test_autoencoder_trains_on_reconstruction_only(digits):
    X, X_val = digits
    generator = seed_everything(0)
    model = Autoencoder(64, 2, hidden_dims=(32,))
    history = fit(model, X, num_epochs=3, batch_size=64, lr=3e-3, X_val=X_val, generator=generator, progress=False)
    assert history.names() == ["reconstruction", "val_reconstruction", "seconds"]  # no KL, no bound, no beta
    assert history.val_reconstruction[-1] > history.val_reconstruction[0]
    for name in ("kl", "elbo"):
        with pytest.raises(AttributeError, match=rf"got '{name}'"):
            getattr(history, name)
    assert evaluate(model, X_val).keys() == {"reconstruction"}
    with pytest.raises(ValueError, match=r"^beta: expected 1: the objective reconstruction_terms has no KL term"):
        fit(Autoencoder(64, 2, hidden_dims=(8,)), X, num_epochs=1, beta=2.0, progress=False)


def test_divergence_stops_with_a_clear_message(digits):
    X, _ = digits
    model = VAE(64, 2, hidden_dims=(16,))
    with torch.no_grad():
        model.encoder[0].weight.fill_(1e30)  # the first forward pass overflows
    with pytest.raises(FloatingPointError, match=r"epoch 1, step 1 .*try lr=0\.0001"):
        fit(model, X, num_epochs=1, lr=1e-3, progress=False)


def test_progress_bar_writes_only_when_asked(digits, capsys):
    X, _ = digits
    fit(VAE(64, 2, hidden_dims=(8,)), X[:64], num_epochs=1, progress=False)
    assert capsys.readouterr().err == ""
    fit(VAE(64, 2, hidden_dims=(8,)), X[:64], num_epochs=1, progress=True)
    assert "epochs" in capsys.readouterr().err


def test_progress_default_follows_environment(monkeypatch):
    monkeypatch.setenv("VAE_LESSON_PROGRESS", "0")
    assert show_progress() is False
    monkeypatch.setenv("VAE_LESSON_PROGRESS", "1")
    assert show_progress() is True
    monkeypatch.delenv("VAE_LESSON_PROGRESS")
    monkeypatch.setenv("CI", "true")
    assert show_progress() is False


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"beta": -0.5}, ValueError, "beta: expected a number >= 0.0, got -0.5"),
        ({"num_epochs": 0}, ValueError, "num_epochs: expected an int >= 1"),
        ({"batch_size": 2.5}, TypeError, "batch_size: expected an int"),
        ({"lr": 0}, ValueError, "lr: expected a number > 0"),
        ({"kl_warmup_epochs": -1}, ValueError, "kl_warmup_epochs"),
        ({"generator": 7}, TypeError, "generator: expected a torch.Generator"),
        ({"X_val": torch.rand(5, 3)}, ValueError, r"X_val: expected shape \[n, 64\]"),
    ],
)
def test_fit_rejects_bad_arguments(digits, kwargs, error, match):
    with pytest.raises(error, match=match):
        fit(VAE(64, 2), digits[0], progress=False, **kwargs)


@pytest.mark.parametrize(
    ("X", "error", "match"),
    [
        (torch.rand(10, 64) * 2, ValueError, "X: expected values <= 1.0"),
        (torch.full((10, 64), float("nan")), ValueError, "X: expected finite values"),
        (torch.randint(0, 2, (10, 64)), TypeError, "X: expected a floating-point tensor"),
        (torch.rand(64), ValueError, "X: expected a 2-D tensor"),
        (torch.rand(10, 63), ValueError, r"X: expected shape \[n, 64\]"),
        (torch.rand(0, 64), ValueError, "X: expected at least one example"),
        ([[0.0] * 64], TypeError, "X: expected a torch.Tensor"),
    ],
)
def test_fit_rejects_bad_data(X, error, match):
    with pytest.raises(error, match=match):
        fit(VAE(64, 2), X, progress=False)


def test_fit_rejects_non_models(digits):
    with pytest.raises(TypeError, match="model: expected a torch.nn.Module"):
        fit("a model", digits[0])


def test_evaluate_matches_manual_mean(digits):
    _, X_val = digits
    model = VAE(64, 3, hidden_dims=(16,))
    a = evaluate(model, X_val, batch_size=100, generator=torch.Generator().manual_seed(1))
    b = evaluate(model, X_val, batch_size=1000, generator=torch.Generator().manual_seed(1))
    assert a["kl"] == pytest.approx(b["kl"], rel=1e-6)  # KL is exact: batching must not change it
    assert a["elbo"] == pytest.approx(a["reconstruction"] - a["kl"], rel=1e-6)
