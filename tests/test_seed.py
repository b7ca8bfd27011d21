"""seed_everything: the one place for global randomness and the thread count."""

import random

import numpy as np
import pytest
import torch

from vae_lesson import seed_everything
from vae_lesson.core.seed import default_num_threads


def test_same_seed_same_draws_everywhere():
    g = seed_everything(11)
    draws = (random.random(), np.random.rand(), torch.rand(1).item(), torch.rand(1, generator=g).item())
    g = seed_everything(11)
    again = (random.random(), np.random.rand(), torch.rand(1).item(), torch.rand(1, generator=g).item())
    assert draws == again
    seed_everything(12)
    assert torch.rand(1).item() != draws[2]


def test_thread_count_defaults_to_one_and_is_overridable(monkeypatch):
    before = torch.get_num_threads()
    try:
        monkeypatch.delenv("VAE_LESSON_THREADS", raising=False)
        seed_everything(0)
        assert torch.get_num_threads() == 1
        monkeypatch.setenv("VAE_LESSON_THREADS", "2")
        assert default_num_threads() == 2
        seed_everything(0)
        assert torch.get_num_threads() == 2
        seed_everything(0, num_threads=1)
        assert torch.get_num_threads() == 1
        monkeypatch.setenv("VAE_LESSON_THREADS", "many")
        with pytest.raises(ValueError, match="VAE_LESSON_THREADS: expected a whole number >= 1"):
            seed_everything(0)
    finally:
        torch.set_num_threads(before)


def test_bad_seed_and_threads_are_rejected():
    with pytest.raises(ValueError, match="seed: expected an int >= 0"):
        seed_everything(-1)
    with pytest.raises(TypeError, match="seed: expected an int"):
        seed_everything(1.5)
    with pytest.raises(ValueError, match="num_threads: expected an int >= 1"):
        seed_everything(0, num_threads=0)


def test_blas_pools_follow_the_thread_count():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    import sklearn.linear_model  # noqa: F401  (loads the OpenMP pool scikit-learn uses)

    seed_everything(0, num_threads=1)
    pools = threadpoolctl.threadpool_info()
    assert pools, "no BLAS/OpenMP pool found"
    assert all(pool["num_threads"] == 1 for pool in pools), pools


def test_another_seed_in_one_place(monkeypatch):
    """``seed_everything()`` takes its seed from $VAE_LESSON_SEED; an explicit seed still wins."""
    monkeypatch.delenv("VAE_LESSON_SEED", raising=False)
    assert seed_everything().initial_seed() == 0
    first = torch.rand(1).item()
    monkeypatch.setenv("VAE_LESSON_SEED", "3")
    assert seed_everything().initial_seed() == 3
    assert torch.rand(1).item() != first
    assert seed_everything(0).initial_seed() == 0
    assert torch.rand(1).item() == first
    for bad in ("-1", "three", "1.5"):
        monkeypatch.setenv("VAE_LESSON_SEED", bad)
        with pytest.raises(ValueError, match="VAE_LESSON_SEED: expected a whole number >= 0"):
            seed_everything()
