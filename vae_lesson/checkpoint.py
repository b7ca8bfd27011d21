"""Save and load models safely: a state dict plus the constructor arguments, read with ``weights_only=True``.

A checkpoint is a plain dict ``{"format", "version", "class", "config", "state_dict"}`` written by
``torch.save``. Loading uses ``torch.load(..., weights_only=True)``, which refuses to unpickle arbitrary
objects, so opening a checkpoint someone sent you cannot run their code. A file that is not one of ours
(or is damaged) raises ``ValueError`` saying so.
"""

from __future__ import annotations

import os
import warnings

import torch

from . import _checks
from .models import VAE, Autoencoder

FORMAT = "vae_lesson.checkpoint"
VERSION = 1
MODEL_CLASSES: dict[str, type[torch.nn.Module]] = {"VAE": VAE, "Autoencoder": Autoencoder}


def register_model(cls: type[torch.nn.Module]) -> type[torch.nn.Module]:
    """Make a model class loadable by :func:`load_checkpoint` (it needs a ``config`` dict of its arguments)."""
    MODEL_CLASSES[cls.__name__] = cls
    return cls


def save_checkpoint(model: torch.nn.Module, path: str | os.PathLike) -> None:
    """Write ``model``'s class name, constructor ``config`` and ``state_dict`` to ``path``."""
    name = type(model).__name__
    if MODEL_CLASSES.get(name) is not type(model) or not isinstance(getattr(model, "config", None), dict):
        _checks.fail("model", "a model class of vae_lesson (" + ", ".join(MODEL_CLASSES) + ")", name, TypeError)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save({"format": FORMAT, "version": VERSION, "class": name, "config": dict(model.config),
                "state_dict": state}, os.fspath(path))


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> torch.nn.Module:
    """Rebuild the model saved at ``path`` (in eval mode). ``FileNotFoundError`` if missing; ``ValueError``
    if the file is not a vae_lesson checkpoint."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"path: expected an existing checkpoint file, got {path!r}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about pickle protocols of files that are not ours
            payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling failure means "not a checkpoint of ours"

        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"{path}: expected a vae_lesson checkpoint written by save_checkpoint, got a file "
                         f"torch.load(weights_only=True) refuses ({first})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path}: expected a vae_lesson checkpoint (format {FORMAT!r}), got a different file")
    if payload.get("version") != VERSION:
        raise ValueError(f"{path}: expected checkpoint version {VERSION}, got {payload.get('version')!r}")
    cls = MODEL_CLASSES.get(payload.get("class"))
    if cls is None:
        raise ValueError(f"{path}: expected a model class among {sorted(MODEL_CLASSES)}, got {payload.get('class')!r}")
    model = cls(**payload["config"])
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as err:
        raise ValueError(f"{path}: the weights do not fit {cls.__name__}({payload['config']}): {err}") from None
    return model.to(map_location).eval()
