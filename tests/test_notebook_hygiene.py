"""Every committed notebook passes the hygiene checks of ``tools.hygiene`` (one implementation: the same checks run
as ``python -m tools.hygiene notebooks/`` and as a pre-commit hook).

Strict nbval replays each notebook and compares outputs; these checks catch what it does not: stale execution
counts (edited after running), saved widget state, SVG figures, stored errors or stderr, a missing setup line, and
notebooks too thin to teach.
"""

import json
import pathlib

import pytest

from tools.hygiene import CHECKS, notebooks

NOTEBOOKS = notebooks([pathlib.Path(__file__).parent.parent / "notebooks"])


def test_there_are_notebooks():
    assert NOTEBOOKS, "notebooks/ holds no .ipynb files"


@pytest.mark.parametrize("check", CHECKS, ids=[c.__name__ for c in CHECKS])
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_hygiene(path, check):
    problems = check(path.name, json.loads(path.read_text(encoding="utf-8")))
    assert not problems, "\n".join(problems)
