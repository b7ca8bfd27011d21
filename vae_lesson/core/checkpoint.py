"""Save and load models safely: a state dict plus the constructor arguments, read with ``weights_only=True``.

A checkpoint is a plain dict ``{"format", "version", "class", "config", "state_dict"}`` written by
``torch.save``. Loading uses ``torch.load(..., weights_only=True)``, which refuses to unpickle arbitrary
objects, so opening a checkpoint someone sent you cannot run their code. A file that is not one of ours
(or is damaged) raises ``ValueError`` naming the file and saying what is wrong.

Nothing is allocated from an unchecked file: the config is checked first (its keys against the class's
constructor, then the constructor's own checks of types and ranges, run on PyTorch's ``meta`` device, which
allocates no memory), then every tensor of the state dict against the shape and kind that config implies
(no missing or extra key, floating-point where the model has floats, finite values). Only then is the model
built for real and the weights copied in.
"""

from __future__ import annotations

import importlib
import inspect
import os
import warnings

import torch

from vae_lesson import _checks
from vae_lesson.core.models import VAE, Autoencoder

FORMAT = "vae_lesson.checkpoint"
VERSION = 1
MODEL_CLASSES: dict[str, type[torch.nn.Module]] = {"VAE": VAE, "Autoencoder": Autoencoder}
# course model classes defined outside core/: their module registers them when imported, which
# load_checkpoint does on demand (`import vae_lesson` does not import the variants)
LAZY_MODEL_MODULES = {
    "ConditionalVAE": "vae_lesson.variants.cvae",
    "ConvVAE": "vae_lesson.variants.conv_vae",
    "VQVAE": "vae_lesson.variants.vq_vae",
    "LearnedPriorVAE": "vae_lesson.variants.learned_priors",
    "HierarchicalVAE": "vae_lesson.variants.hierarchical",
}


def register_model(cls: type[torch.nn.Module]) -> type[torch.nn.Module]:
    """Make a model class loadable by :func:`load_checkpoint` (it needs a ``config`` dict of its arguments)."""
    if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)):
        _checks.fail("cls", "a subclass of torch.nn.Module", repr(cls), TypeError)
    MODEL_CLASSES[cls.__name__] = cls
    return cls


def _check_path(path) -> str:
    if not isinstance(path, (str, os.PathLike)):
        _checks.fail("path", "a file name (str or pathlib.Path)", type(path).__name__, TypeError)
    path = os.fspath(path)
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not path:
        _checks.fail("path", "a file name", "an empty string")
    return path


def save_checkpoint(model: torch.nn.Module, path: str | os.PathLike) -> None:
    """Write ``model``'s class name, constructor ``config`` and ``state_dict`` to ``path``.

    The folder must exist (it is not created: a typo in a folder name should not create a new folder);
    otherwise ``FileNotFoundError`` names it. A model with NaN or inf weights is refused (``ValueError``).
    """
    name = type(model).__name__
    if MODEL_CLASSES.get(name) is not type(model) or not isinstance(getattr(model, "config", None), dict):
        _checks.fail("model", "a model class of vae_lesson (" + ", ".join(MODEL_CLASSES) + ")", name, TypeError)
    path = _check_path(path)
    if os.path.isdir(path):
        _checks.fail("path", "a file name, not a folder (e.g. 'vae.pt')", repr(path))
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"path: expected a file in an existing folder, got {path!r} (the folder {folder!r} "
                                f"does not exist; create it first, e.g. os.makedirs({folder!r}))")
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(v.isfinite().all())]
    if bad:
        _checks.fail("model", "finite weights (a model that diverged cannot be reloaded)",
                     f"NaN or inf in {', '.join(bad[:3])}", _checks.NonFiniteError)
    try:
        torch.save({"format": FORMAT, "version": VERSION, "class": name, "config": dict(model.config),
                    "state_dict": state}, path)
    except OSError as err:
        raise OSError(f"path: could not write the checkpoint {path!r} ({err.strerror or err})") from None


def _bad(path: str, expected: str, got: object) -> ValueError:
    return ValueError(f"{path}: expected {expected}, got {got}")


def _check_config(path: str, cls, config) -> torch.nn.Module:
    """Check ``config`` against ``cls``'s constructor; return the model built on the meta device (no memory)."""
    if not isinstance(config, dict) or not all(isinstance(k, str) for k in config):
        raise _bad(path, f"a config dict of {cls.__name__}'s constructor arguments", type(config).__name__)
    params = inspect.signature(cls.__init__).parameters
    names = [n for n, p in params.items() if n != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    unknown = sorted(set(config) - set(names))
    if unknown:
        raise _bad(path, f"config keys among {names} ({cls.__name__}'s arguments)", f"unknown key(s) {unknown}")
    missing = [n for n in names if params[n].default is inspect.Parameter.empty and n not in config]
    if missing:
        raise _bad(path, f"every required argument of {cls.__name__} in the config", f"no {missing}")
    for key, value in config.items():
        if not _plain(value):
            raise _bad(path, f"config[{key!r}] to be a number, a string or a list of numbers", repr(value))
    try:
        with torch.device("meta"):  # shapes only: a config asking for terabytes allocates nothing
            return cls(**config)
    except (TypeError, ValueError) as err:
        raise _bad(path, f"a valid config for {cls.__name__}", f"{config} ({err})") from None


def _plain(value, depth: int = 0) -> bool:
    if isinstance(value, (bool, int, float, str)) or value is None:
        return True
    return depth == 0 and isinstance(value, (list, tuple)) and all(_plain(v, 1) for v in value)


def _check_state(path: str, state, skeleton: torch.nn.Module) -> None:
    """Every tensor of ``state`` against the model built from the config: keys, shapes, kinds, finite values."""
    if not isinstance(state, dict):
        raise _bad(path, "a state_dict (a dict of tensors)", type(state).__name__)
    wanted = skeleton.state_dict()
    missing, extra = sorted(set(wanted) - set(state)), sorted(set(state) - set(wanted), key=str)
    if missing or extra:
        raise _bad(path, f"the {len(wanted)} weights of {type(skeleton).__name__}({skeleton.config})",
                   (f"missing {missing[:4]}" if missing else "") + (" and " if missing and extra else "")
                   + (f"unexpected {extra[:4]}" if extra else ""))
    for key, ref in wanted.items():
        value = state[key]
        if not isinstance(value, torch.Tensor):
            raise _bad(path, f"state_dict[{key!r}] to be a tensor", type(value).__name__)
        if value.shape != ref.shape:
            raise _bad(path, f"state_dict[{key!r}] of shape {list(ref.shape)} (from the config "
                       f"{skeleton.config})", list(value.shape))
        if ref.is_floating_point():
            if not value.is_floating_point():
                raise _bad(path, f"state_dict[{key!r}] to be floating-point", value.dtype)
            if not bool(value.isfinite().all()):
                raise _bad(path, f"finite weights in state_dict[{key!r}]",
                           f"{int((~value.isfinite()).sum())} NaN or inf")


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> torch.nn.Module:
    """Rebuild the model saved at ``path`` (in eval mode), on ``map_location`` (``"cpu"``, ``"cuda"``, ...).

    ``FileNotFoundError`` if missing; ``ValueError`` naming the file if it is not a valid vae_lesson checkpoint
    (or is damaged), and naming ``map_location`` if this torch cannot use that device."""
    path = _check_path(path)
    device = _checks.device("map_location", map_location)  # before reading: "cuda" on a CPU-only torch
    if not os.path.isfile(path):
        raise FileNotFoundError(f"path: expected an existing checkpoint file, got {path!r}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about pickle protocols of files that are not ours
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling failure means "not a checkpoint of ours"

        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"{path}: expected a vae_lesson checkpoint written by save_checkpoint, got a file "
                         f"torch.load(weights_only=True) refuses ({first})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path}: expected a vae_lesson checkpoint (format {FORMAT!r}), got a different file")
    if payload.get("version") != VERSION:
        raise ValueError(f"{path}: expected checkpoint version {VERSION}, got {payload.get('version')!r}")
    name = payload.get("class")
    if isinstance(name, str) and name not in MODEL_CLASSES and name in LAZY_MODEL_MODULES:
        importlib.import_module(LAZY_MODEL_MODULES[name])
    cls = MODEL_CLASSES.get(name) if isinstance(name, str) else None
    if cls is None:
        raise ValueError(f"{path}: expected a model class among {sorted(MODEL_CLASSES)}, got {name!r}")
    for key in ("config", "state_dict"):
        if key not in payload:
            raise _bad(path, f"a checkpoint with a {key!r} entry", f"entries {sorted(map(str, payload))}")
    skeleton = _check_config(path, cls, payload["config"])
    _check_state(path, payload["state_dict"], skeleton)
    model = cls(**payload["config"])
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as err:
        raise ValueError(f"{path}: the weights do not fit {cls.__name__}({payload['config']}): {err}") from None
    return model.to(device).eval()
