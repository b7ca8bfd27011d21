"""Every exercise's self-check can fail: it rejects the untouched stub and a plausible wrong answer.

A self-check that passes whatever the learner writes teaches nothing. For each notebook this test executes the
notebook top to bottom in one fresh kernel. An exercise is an answer cell (its answer between ``### BEGIN
SOLUTION`` and ``### END SOLUTION``) and the self-check cell right after it (nbgrader's autograded cell; its
hidden tests included, as autograde runs it); ``python -m tools.nbgrader_cells --check`` keeps them in that shape.
At every exercise the test first runs answer and check three ways, in order:

1. **the stub**: each solution block replaced by ``pass`` (the learner wrote nothing). The exercise must fail,
   with an ``AssertionError`` from the check or because the answer's names are missing; a check that passes here
   would pass untouched.
2. **a wrong answer** from :data:`WRONG_ANSWERS` (a plausible mistake, in place of the solution block). The
   check must raise ``AssertionError``: the check itself catches the mistake.
3. **the solution**: the cells as committed must pass.

Every exercise needs an entry in :data:`WRONG_ANSWERS`, keyed by notebook stem and exercise number (1, 2, ...
in the order the answer cells appear); a value is the code that replaces the solution block, or a list of
such codes, one per block, for a cell with several blocks.
"""

from __future__ import annotations

import os
import pathlib
import re

import nbformat
import pytest
from exercise_wrong_answers import WRONG_ANSWERS
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = pathlib.Path(__file__).parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
SELF_CHECK = "# Self-check: exercise"


def replace_solutions(source: str, replacements: list[str]) -> str:
    """``source`` with its i-th solution block (markers included) replaced by ``replacements[i]``, indented alike."""
    out, block, inside = [], 0, False
    for line in source.splitlines():
        marker = line.strip()
        if marker == BEGIN:
            indent = re.match(r"\s*", line).group(0)
            out += [indent + new for new in replacements[block].splitlines()] or [indent + "pass"]
            inside = True
        elif marker == END:
            inside, block = False, block + 1
        elif not inside:
            out.append(line)
    assert block == len(replacements), f"{block} solution blocks, {len(replacements)} replacements"
    return "\n".join(out)


def exercise_cells(nb) -> list[int]:
    return [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and BEGIN in c.source]


def check_cells(nb, index: int) -> list[int]:
    """The self-check cell right after answer cell ``index``. For an exercise not yet split into the two cells
    (asserts after ``### END SOLUTION``; ``tools.nbgrader_cells --check`` reports it), the code cells that follow
    the answer cell directly, up to markdown or the next answer cell."""
    if index + 1 < len(nb.cells) and nb.cells[index + 1].source.startswith(SELF_CHECK):
        return [index + 1]
    following = []
    for i in range(index + 1, len(nb.cells)):
        if nb.cells[i].cell_type != "code" or BEGIN in nb.cells[i].source:
            break
        following.append(i)
    return following


def test_every_exercise_has_a_wrong_answer():
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        wanted = set(range(1, len(exercise_cells(nb)) + 1))
        have = set(WRONG_ANSWERS.get(path.stem, {}))
        assert have == wanted, f"{path.name}: exercises {sorted(wanted)}, wrong answers for {sorted(have)}"


def test_replace_solutions_keeps_indentation_and_the_check():
    source = "def f(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION\nassert f(1) == 2"
    assert replace_solutions(source, ["return x"]) == "def f(x):\n    return x\nassert f(1) == 2"
    assert replace_solutions(source, ["pass"]) == "def f(x):\n    pass\nassert f(1) == 2"


def run(client: NotebookClient, nb, answer: str, index: int) -> CellExecutionError | None:
    """Run ``answer`` in place of answer cell ``index``, then its check cell; the first error, or None."""
    sources = [(answer, index)] + [(nb.cells[i].source, i) for i in check_cells(nb, index)]
    for source, i in sources:
        try:
            client.execute_cell(nbformat.v4.new_code_cell(source), i)
        except CellExecutionError as error:
            return error
    return None


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_self_checks_fail_on_the_stub_and_on_a_wrong_answer(path):
    nb = nbformat.read(path, as_version=4)
    exercises = exercise_cells(nb)
    if not exercises:
        pytest.skip("no exercises")
    wrong = WRONG_ANSWERS[path.stem]
    env = {**os.environ, "VAE_LESSON_PROGRESS": "0"}
    env.pop("MPLBACKEND", None)
    client = NotebookClient(nb, timeout=600, kernel_name="python3", allow_errors=False,
                            resources={"metadata": {"path": str(path.parent)}})
    problems = []
    with client.setup_kernel(env=env):
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            if index in exercises:
                number = exercises.index(index) + 1
                blocks = cell.source.count(BEGIN)
                stub = run(client, nb, replace_solutions(cell.source, ["pass"] * blocks), index)
                if stub is None:
                    problems.append(f"exercise {number}: the check passes on the untouched stub")
                answer = wrong[number] if isinstance(wrong[number], list) else [wrong[number]]
                error = run(client, nb, replace_solutions(cell.source, answer), index)
                if error is None or error.ename != "AssertionError":
                    got = "passed" if error is None else f"raised {error.ename}: {error.evalue[:120]}"
                    problems.append(f"exercise {number}: the check {got} on the wrong answer, not AssertionError")
            client.execute_cell(cell, index)  # the committed cell (solution included) must run
    assert not problems, f"{path.name}: " + "; ".join(problems)
