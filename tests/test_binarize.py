"""Binarized data: one fixed binarization for evaluation, a fresh one every batch for training."""

import pytest
import torch

from vae_lesson import VAE, fit, load_digits, seed_everything
from vae_lesson.core.data import binarize


def test_binarize_fixed_and_unbiased():
    X, _ = load_digits("train")
    a, b = binarize(X, 0), binarize(X, 0)
    assert torch.equal(a, b) and set(a.unique().tolist()) <= {0.0, 1.0}
    assert not torch.equal(a, binarize(X, 1))
    # unbiased: the mean of many draws is the grey value; 1295*64 pixels, SE of mean diff tiny
    draws = torch.stack([binarize(X, s) for s in range(200)]).mean(0)
    assert (draws - X).abs().max() < 5 * 0.5 / 200 ** 0.5
    Xb, y = load_digits("val", binarized=True)
    assert torch.equal(Xb, binarize(load_digits("val")[0], 0))

def test_binarize_bad_input():
    with pytest.raises(TypeError, match="binarized"):
        load_digits("val", binarized=1)
    with pytest.raises(ValueError, match="binarize_seed"):
        load_digits("val", binarized=True, binarize_seed=-1)

def test_fit_binarize():
    X, _ = load_digits("train")
    g = seed_everything(0)
    m = VAE(64, 2, hidden_dims=(16,))
    h = fit(m, X[:200], num_epochs=2, generator=g, binarize=True, progress=False)
    assert len(h) == 2
    with pytest.raises(TypeError, match="binarize"):
        fit(m, X[:200], num_epochs=1, binarize="yes", progress=False)
