"""Student copies: solutions become stubs, hidden tests vanish, self-checks stay (read-only), and a copy stops at
exercise 1. That they agree with nbgrader's release, cell by cell, is tested in test_nbgrader.py."""

import json
import pathlib

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from tools.student import (
    BEGIN_SOLUTION,
    STUB_MESSAGE,
    is_exercise,
    strip_solutions,
    student_notebook,
    write_student_copies,
)

NOTEBOOKS = sorted((pathlib.Path(__file__).parent.parent / "notebooks").glob("[0-9]*.ipynb"))


def test_strip_solutions_keeps_indentation_and_self_checks():
    source = "\n".join([
        "def f(x):",
        "    ### BEGIN SOLUTION",
        "    return 2 * x",
        "    ### END SOLUTION",
        "### BEGIN HIDDEN TESTS",
        "assert f(3) == 6",
        "### END HIDDEN TESTS",
        "assert f(1) == 2",
    ])
    assert strip_solutions(source).splitlines() == [
        "def f(x):",
        "    # YOUR CODE HERE",
        f'    raise NotImplementedError("{STUB_MESSAGE}")',
        "assert f(1) == 2",
    ]


@pytest.mark.parametrize(
    "source",
    ["### BEGIN SOLUTION\nx = 1", "x = 1\n### END SOLUTION", "### BEGIN SOLUTION\n### BEGIN HIDDEN TESTS"],
)
def test_unbalanced_markers_are_rejected(source):
    with pytest.raises(ValueError, match="BEGIN|END"):
        strip_solutions(source)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_every_notebook_has_two_exercises_and_a_clean_student_copy(path):
    nb = json.loads(path.read_text())
    exercises = [c for c in nb["cells"] if c["cell_type"] == "code" and BEGIN_SOLUTION in "".join(c["source"])]
    assert len(exercises) >= 2, f"{path.name}: {len(exercises)} answer cells (need at least 2)"
    student = student_notebook(nb)
    assert nb["cells"][0] == student["cells"][0]  # the input is not modified...
    assert any(BEGIN_SOLUTION in "".join(c["source"]) for c in nb["cells"])  # ...and keeps its solutions
    first = next(i for i, c in enumerate(student["cells"]) if is_exercise(nb["cells"][i]))
    for cell in student["cells"][first:]:
        text = "".join(cell["source"])
        assert "### BEGIN" not in text and "### END" not in text
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None
    stubs = sum(STUB_MESSAGE in "".join(c["source"]) for c in student["cells"])
    assert stubs >= len(exercises)
    for original, copied in zip(nb["cells"], student["cells"]):  # checks read-only, as nbgrader releases them
        role = original.get("metadata", {}).get("nbgrader", {})
        if role.get("grade"):
            assert copied["metadata"]["editable"] is False and copied["metadata"]["deletable"] is False
            assert "".join(copied["source"]).startswith("# Self-check: exercise")
        elif role.get("solution"):
            assert copied["metadata"]["deletable"] is False and STUB_MESSAGE in "".join(copied["source"])


@pytest.mark.slow  # executes a student copy of a notebook in a kernel
def test_student_copy_runs_until_the_first_exercise_and_stops_there(tmp_path):
    (copy,) = write_student_copies(tmp_path, [NOTEBOOKS[0]])
    nb = nbformat.read(copy, as_version=4)
    client = NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOKS[0].parent)}})
    with pytest.raises(CellExecutionError) as info:
        client.execute()
    assert "NotImplementedError" in str(info.value) and STUB_MESSAGE in str(info.value)
    first = next(i for i, c in enumerate(nb.cells) if STUB_MESSAGE in c.source)
    executed = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.get("execution_count")]
    assert max(executed) == first, "execution should stop exactly at the first exercise"
    errors = [i for i, c in enumerate(nb.cells) if any(o.get("output_type") == "error" for o in c.get("outputs", []))]
    assert errors == [first]


def test_out_dir_must_differ_from_the_source(tmp_path):
    src = tmp_path / "00_x.ipynb"
    src.write_text(NOTEBOOKS[0].read_text())
    with pytest.raises(ValueError, match="out_dir"):
        write_student_copies(tmp_path, [src])
