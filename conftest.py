"""Test-session setup shared by the unit tests and the nbval notebook runs.

Runs before any notebook kernel starts; kernels inherit this process's environment.
"""

import os

# No progress bars anywhere under test: nbval compares stderr, which must stay empty.
os.environ["VAE_LESSON_PROGRESS"] = "0"
# A backend set outside (e.g. MPLBACKEND=Agg in a CI image) would make notebook figures silently vanish.
os.environ.pop("MPLBACKEND", None)

# Build matplotlib's font cache now, in this process: on a fresh machine the first import prints
# "Matplotlib is building the font cache" to stderr, which strict nbval would report in a notebook.
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot  # noqa: E402, F401
import torch  # noqa: E402

from vae_lesson.core.seed import default_num_threads  # noqa: E402

torch.set_num_threads(default_num_threads())


def pytest_collection_modifyitems(config, items):
    """Test tiers: every cell nbval runs from a notebook is marked ``notebooks``; every other test without a
    ``browser`` or ``slow`` marker is ``unit``, so ``pytest -m unit`` is the fast loop (``--lf`` reruns failures)."""
    import pytest

    for item in items:
        if item.nodeid.split("::", 1)[0].endswith(".ipynb"):
            item.add_marker(pytest.mark.notebooks)
        elif not any(item.iter_markers("browser")) and not any(item.iter_markers("slow")):
            item.add_marker(pytest.mark.unit)
