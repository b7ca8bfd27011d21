"""The public contract of vae_lesson: every name importable from the top level, with the documented semantics."""

import torch

import vae_lesson

CONTRACT = [
    "reparameterize", "gaussian_kl", "bernoulli_log_likelihood", "gaussian_log_likelihood",
    "Autoencoder", "VAE", "elbo", "iwae_bound", "LinearGaussian", "load_mnist", "load_digits", "fit",
    "seed_everything", "save_checkpoint", "load_checkpoint",
]


def test_contract_names_are_exported_and_documented():
    for name in CONTRACT:
        obj = getattr(vae_lesson, name)
        assert name in vae_lesson.__all__
        assert obj.__doc__ and len(obj.__doc__.strip()) > 40, f"{name} needs a docstring with shape and units"


def test_per_example_shapes_in_nats():
    model = vae_lesson.VAE(6, 2, hidden_dims=(5,))
    x = torch.rand(3, 6)
    terms = vae_lesson.elbo(model, x)
    assert terms._fields == ("elbo", "reconstruction", "kl")
    assert all(t.shape == (3,) for t in terms)
    assert vae_lesson.iwae_bound(model, x, k=4).shape == (3,)
    assert vae_lesson.gaussian_kl(*model.encode(x)).shape == (3,)
    assert vae_lesson.gaussian_log_likelihood(x, x, 0.0).shape == (3,)


def test_import_is_light():
    """``import vae_lesson`` imports the core only: no ipywidgets, no matplotlib.pyplot (views import them)."""
    import subprocess
    import sys

    code = ("import sys, vae_lesson; heavy = [m for m in ('ipywidgets', 'matplotlib.pyplot') if m in sys.modules]; "
            "print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out


def test_contract_is_small_and_importable():
    assert 20 <= len(vae_lesson.__all__) <= 40
    for name in vae_lesson.__all__:
        assert getattr(vae_lesson, name).__module__.startswith("vae_lesson.")
