"""Every committed notebook was executed top to bottom in a fresh kernel and carries no noise.

Strict nbval replays each notebook and compares outputs; these checks catch what it does not: stale
execution counts (edited after running), saved widget state, SVG figures, stored errors or stderr, a
missing setup line, and notebooks too thin to teach.
"""

import json
import pathlib
import re

import pytest

NOTEBOOKS = sorted((pathlib.Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks():
    assert NOTEBOOKS, "notebooks/ holds no .ipynb files"


@pytest.fixture(params=NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def notebook(request):
    return request.param.name, json.loads(request.param.read_text())


def code_cells(nb):
    return [c for c in nb["cells"] if c["cell_type"] == "code" and "".join(c["source"]).strip()]


def test_name_is_numbered_snake_case(notebook):
    name, _ = notebook
    assert re.fullmatch(r"\d\d[a-z]?_[a-z0-9_]+\.ipynb", name), name


def test_executed_once_top_to_bottom(notebook):
    name, nb = notebook
    counts = [c.get("execution_count") for c in code_cells(nb)]
    assert counts == list(range(1, len(counts) + 1)), f"{name}: execution counts {counts}"


def test_no_errors_stderr_or_svg(notebook):
    name, nb = notebook
    for i, cell in enumerate(code_cells(nb), 1):
        for out in cell.get("outputs", []):
            assert out["output_type"] != "error", f"{name}: cell {i} stored an error"
            if out.get("name") == "stderr":
                assert not "".join(out["text"]).strip(), f"{name}: cell {i} wrote to stderr"
            assert "image/svg+xml" not in out.get("data", {}), f"{name}: cell {i} has an SVG figure"


def test_no_saved_widget_state_and_standard_kernel(notebook):
    name, nb = notebook
    assert "widgets" not in nb["metadata"], f"{name}: saved widget state in metadata"
    timed = [i for i, c in enumerate(nb["cells"]) if "execution" in c.get("metadata", {})]
    assert not timed, f"{name}: cells {timed[:5]} carry per-cell execution timestamps"
    assert nb["metadata"]["kernelspec"]["name"] == "python3"


def test_setup_cell_seeds_and_draws_inline(notebook):
    name, nb = notebook
    first_code = "".join(code_cells(nb)[0]["source"])
    assert "%matplotlib inline" in first_code, f"{name}: the setup cell needs %matplotlib inline"
    assert "seed_everything(" in first_code, f"{name}: the setup cell must call seed_everything"


def test_enough_explanation(notebook):
    name, nb = notebook
    prose = "".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    assert len(prose) >= 2000, f"{name}: only {len(prose)} characters of explanation"
    assert re.match(r"# \d\d · ", "".join(nb["cells"][0]["source"])), f"{name}: first cell is the '# NN · Title'"
