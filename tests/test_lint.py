"""The package, tests and notebooks pass ruff (configured in pyproject.toml)."""

import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).parent.parent


def test_ruff_is_clean():
    ruff = shutil.which("ruff", path=str(pathlib.Path(sys.executable).parent)) or shutil.which("ruff")
    if ruff is None:
        pytest.fail("ruff is not installed: pip install -r requirements.txt")
    paths = ["vae_lesson", "jupyter-extension", "tools", "tests", "notebooks", "conftest.py"]
    result = subprocess.run([ruff, "check", "--no-cache", *paths],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
