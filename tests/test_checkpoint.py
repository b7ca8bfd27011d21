"""Checkpoints: a round trip restores the same function; foreign or damaged files are refused clearly."""

import pickle

import pytest
import torch

from vae_lesson import VAE, Autoencoder, load_checkpoint, save_checkpoint


@pytest.mark.parametrize("cls", [VAE, Autoencoder])
def test_round_trip(tmp_path, cls):
    model = cls(12, 3, hidden_dims=(9, 5))
    path = tmp_path / "model.pt"
    save_checkpoint(model, path)
    loaded = load_checkpoint(path)
    assert type(loaded) is cls and loaded.config == model.config and not loaded.training
    z = torch.randn(4, 3)
    assert torch.equal(loaded.decode(z), model.decode(z))
    for (name_a, a), (name_b, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert name_a == name_b and torch.equal(a, b)


def test_checkpoint_is_a_plain_dict_loadable_with_weights_only(tmp_path):
    path = tmp_path / "model.pt"
    save_checkpoint(VAE(4, 1), path)
    payload = torch.load(path, weights_only=True)
    assert payload["format"] == "vae_lesson.checkpoint" and payload["class"] == "VAE"
    assert set(payload) == {"format", "version", "class", "config", "state_dict"}


class Evil:
    def __reduce__(self):
        return (print, ("this would have run",))


def test_pickled_objects_are_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": "vae_lesson.checkpoint", "payload": Evil()}, path)
    with pytest.raises(ValueError, match="expected a vae_lesson checkpoint"):
        load_checkpoint(path)


@pytest.mark.parametrize(
    "content",
    [b"", b"hello, this is not a checkpoint", pickle.dumps({"format": "vae_lesson.checkpoint"})],
)
def test_garbage_files_are_refused(tmp_path, content):
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="expected a vae_lesson checkpoint"):
        load_checkpoint(path)


def test_foreign_torch_files_are_refused(tmp_path):
    path = tmp_path / "state_dict.pt"
    torch.save(VAE(4, 1).state_dict(), path)  # a bare state dict: no class, no config
    with pytest.raises(ValueError, match="format 'vae_lesson.checkpoint'"):
        load_checkpoint(path)
    torch.save({"format": "vae_lesson.checkpoint", "version": 1, "class": "GAN", "config": {}, "state_dict": {}},
               path)
    with pytest.raises(ValueError, match="expected a model class among"):
        load_checkpoint(path)


def test_mismatched_weights_are_refused(tmp_path):
    path = tmp_path / "model.pt"
    save_checkpoint(VAE(4, 1), path)
    payload = torch.load(path, weights_only=True)
    payload["config"]["latent_dim"] = 2
    torch.save(payload, path)
    with pytest.raises(ValueError, match=r"model.pt: expected state_dict\[.decoder.0.weight.\] of shape \[400, 2\]"):
        load_checkpoint(path)


def test_missing_file_and_unsupported_model(tmp_path):
    with pytest.raises(FileNotFoundError, match="expected an existing checkpoint file"):
        load_checkpoint(tmp_path / "nope.pt")
    with pytest.raises(TypeError, match="model: expected a model class of vae_lesson"):
        save_checkpoint(torch.nn.Linear(2, 2), tmp_path / "x.pt")


def test_variant_checkpoints_load_in_a_fresh_process(tmp_path):
    """load_checkpoint finds each variant's class by name without the caller importing its module first."""
    import subprocess
    import sys

    save = (
        "import pathlib\n"
        "from vae_lesson import save_checkpoint\n"
        "from vae_lesson.variants.hierarchical import HierarchicalVAE\n"
        "from vae_lesson.variants.learned_priors import LearnedPriorVAE\n"
        f"d = pathlib.Path({str(tmp_path)!r})\n"
        "save_checkpoint(HierarchicalVAE(64, (4, 2), (16,), top_hidden=8), d / 'h.pt')\n"
        "save_checkpoint(LearnedPriorVAE(64, 2, (16,), prior='vamp', n_components=3), d / 'l.pt')\n")
    subprocess.run([sys.executable, "-c", save], check=True)
    load = (
        "from vae_lesson import load_checkpoint\n"
        f"print(type(load_checkpoint({str(tmp_path / 'h.pt')!r})).__name__,"
        f" type(load_checkpoint({str(tmp_path / 'l.pt')!r})).__name__)\n")
    out = subprocess.run([sys.executable, "-c", load], check=True, capture_output=True, text=True).stdout
    assert out.split() == ["HierarchicalVAE", "LearnedPriorVAE"]
