"""The one place where global random state and the thread count are set.

Call :func:`seed_everything` once at the top of a notebook or script. It seeds Python's ``random``, NumPy and
torch, fixes torch's intra-op thread count (and that of the BLAS/OpenMP pools NumPy and scikit-learn use), and
returns a ``torch.Generator`` that you pass on explicitly
(``fit(..., generator=g)``, ``model.sample(n, generator=g)``) so that every random draw is visible.

Why one thread by default: the course's models are small MLPs. On a 2-core machine torch's default of 2
threads was measured 10-40x *slower* than 1 thread for them (thread wake-up and synchronisation cost more than
the arithmetic they share), and results are bit-identical run to run only at a fixed thread count. On a
bigger machine set ``VAE_LESSON_THREADS=4`` (environment variable) or pass ``num_threads=4``.

Another seed, in one place: ``seed_everything()`` without a seed uses ``$VAE_LESSON_SEED`` (default 0). Every
notebook calls it that way and derives every other seed from it, so ``VAE_LESSON_SEED=3 jupyter lab`` reruns the
whole course with other initial weights, other batches and other noise. The notebooks' self-checks are claims
about VAEs, not about seed 0: they must hold for every seed (``python -m tools.robustness`` checks that).
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from vae_lesson import _checks

THREADS_ENV = "VAE_LESSON_THREADS"
DEFAULT_THREADS = 1
SEED_ENV = "VAE_LESSON_SEED"
DEFAULT_SEED = 0


def _environment_int(name: str, default: int, minimum: int) -> int:
    """The whole number in environment variable ``name`` (``default`` when unset or blank), at least ``minimum``."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        _checks.fail(name, f"a whole number >= {minimum} (environment variable)", repr(raw))
    return value


def default_seed() -> int:
    """The seed :func:`seed_everything` uses when given none: ``$VAE_LESSON_SEED`` if set, else 0."""
    return _environment_int(SEED_ENV, DEFAULT_SEED, minimum=0)


def default_num_threads() -> int:
    """The thread count the course uses: ``$VAE_LESSON_THREADS`` if set, else 1."""
    return _environment_int(THREADS_ENV, DEFAULT_THREADS, minimum=1)


def seed_everything(seed: int | None = None, num_threads: int | None = None) -> torch.Generator:
    """Seed ``random``, NumPy and torch; set torch's thread count; return a seeded ``torch.Generator``.

    ``seed=None`` uses :func:`default_seed` (0 unless ``$VAE_LESSON_SEED`` says otherwise); the seed used is
    ``generator.initial_seed()``, from which a notebook derives any other seed it needs.
    ``num_threads=None`` uses :func:`default_num_threads` (1 unless ``$VAE_LESSON_THREADS`` says otherwise).
    Two runs with the same seed and thread count on the same CPU give bit-identical results.
    """
    seed = default_seed() if seed is None else _checks.integer("seed", seed, minimum=0)
    threads = default_num_threads() if num_threads is None else _checks.integer("num_threads", num_threads, minimum=1)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    # NumPy's and scikit-learn's BLAS/OpenMP pools too: on 2 cores their default was measured 20x slower
    threadpool_limits(threads)
    return torch.Generator().manual_seed(seed)
