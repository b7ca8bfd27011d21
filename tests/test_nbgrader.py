"""nbgrader, tried as an instructor would: every notebook is an assignment that releases, and grades right.

In a temporary course folder (``python -m tools.nbgrader_cells --course``: one assignment per notebook, its own
``gradebook.db``, offline), ``nbgrader generate_assignment`` releases every notebook; the release agrees with
``python -m tools.student``'s copy cell by cell; and ``nbgrader autograde`` grades three students:

* ``instructor`` submits the instructor's notebooks: full marks, every cell runs without an error;
* ``released`` submits the release untouched: zero for every exercise, and autograde still finishes;
* ``wrong`` submits the instructor's notebooks with one wrong answer (from ``exercise_wrong_answers.py``) in the
  notebooks of :data:`WRONG_SUBMISSION`: it loses exactly that exercise's points. 04's wrong answer passes the
  visible check and fails only a hidden test, so this also shows that autograde restores hidden tests.

Cost: autograde executes every notebook twice (instructor and released) plus the wrong-answer subset; the runs are
split over ``VAE_LESSON_NBGRADER_WORKERS`` worker processes (default: up to 2, one per core), each with its own
copy of the course folder and gradebook, so that no two processes share an sqlite file.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys
import time

import nbformat
import pytest
from exercise_wrong_answers import WRONG_ANSWERS
from test_exercises import replace_solutions

from tools.nbgrader_cells import (
    BEGIN_HIDDEN,
    NBGRADER_MARKERS,
    ExerciseError,
    convert,
    exercises,
    main,
    rewrite_prose,
    write_course,
)
from tools.student import STUB_MESSAGE, student_notebook

ROOT = pathlib.Path(__file__).parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))
# One wrong answer each; 00's is caught by the visible check, 04's only by a hidden test. Both notebooks are cheap.
WRONG_SUBMISSION = {"00_setup_check": 2, "04_elbo": 1}
WORKERS = int(os.environ.get("VAE_LESSON_NBGRADER_WORKERS") or min(2, os.cpu_count() or 1))


# --- the exercise format (fast) ---------------------------------------------------------------------------------


def test_every_notebook_is_in_the_exercise_format(capsys):
    """``python -m tools.nbgrader_cells --check``: the hygiene check of the exercise format."""
    status = main(["--check", *map(str, NOTEBOOKS)])
    report = capsys.readouterr()
    assert status == 0, report.out + report.err


def _notebook(*cells):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(s) if kind == "md" else nbformat.v4.new_code_cell(s)
                for kind, s in cells]
    return nb


def test_an_old_exercise_cell_is_split_marked_and_stays_so():
    nb = _notebook(
        ("md", "Each exercise has a cell for your answer between `### BEGIN SOLUTION` and `### END SOLUTION`."),
        ("code", "# NBVAL_IGNORE_OUTPUT\nx = 1\n### BEGIN SOLUTION\ny = 2 * x\n### END SOLUTION\nassert y == 2\n"
                 "print('ok')"),
        ("code", "z = y + 1"),
    )
    converted, changes = convert(nb, "07_topic.ipynb")
    assert changes and nb.cells[1].source.endswith("print('ok')"), "the input is not modified"
    answer, check, after = converted.cells[1:]
    assert answer.source == "# NBVAL_IGNORE_OUTPUT\nx = 1\n### BEGIN SOLUTION\ny = 2 * x\n### END SOLUTION"
    assert check.source == "# Self-check: exercise 1\n# NBVAL_IGNORE_OUTPUT\nassert y == 2\nprint('ok')"
    assert after.source == "z = y + 1" and "nbgrader" not in after.metadata
    assert answer.metadata.nbgrader == {"grade": False, "grade_id": "nb07-ex1-answer", "locked": False,
                                        "schema_version": 3, "solution": True, "task": False}
    assert check.metadata.nbgrader == {"grade": True, "grade_id": "nb07-ex1-check", "locked": True, "points": 1,
                                       "schema_version": 3, "solution": False, "task": False}
    assert not any(m in converted.cells[0].source for m in NBGRADER_MARKERS)
    assert exercises(converted) == [(1, 2)]
    check.metadata.nbgrader["points"] = 3  # an instructor's points are kept
    again, changes = convert(converted, "07_topic.ipynb")
    assert changes == [] and again == converted


def test_a_check_in_the_next_cell_gets_its_comment_and_an_exercise_without_one_is_refused():
    nb = _notebook(("code", "### BEGIN SOLUTION\ny = 2\n### END SOLUTION"), ("code", "assert y == 2"))
    converted, _ = convert(nb, "03_x.ipynb")
    assert converted.cells[1].source == "# Self-check: exercise 1\nassert y == 2"
    lonely = _notebook(("code", "### BEGIN SOLUTION\ny = 2\n### END SOLUTION"), ("md", "Next."))
    with pytest.raises(ExerciseError, match="no check"):
        convert(lonely, "03_x.ipynb")
    stray = _notebook(("code", "print('### END SOLUTION')"))
    with pytest.raises(ExerciseError, match="END SOLUTION"):
        convert(stray, "03_x.ipynb")
    unbalanced = _notebook(("code", "### BEGIN SOLUTION\ny = 2\n### BEGIN SOLUTION\n### END SOLUTION"),
                           ("code", "assert y"))
    with pytest.raises(ExerciseError, match="inside an open block"):
        convert(unbalanced, "03_x.ipynb")


def test_a_check_that_gives_the_answer_away_becomes_a_hidden_test():
    nb = _notebook(("code", "### BEGIN SOLUTION\nwide_params = 7\n### END SOLUTION\n"
                            "assert wide_params == sum(p.numel() for p in model.parameters()), 'count'\nprint('ok')"))
    converted, changes = convert(nb, "13_conv.ipynb")
    lines = converted.cells[1].source.splitlines()
    assert lines[1].startswith("assert isinstance(wide_params, int)")  # a visible check first
    assert lines[2:5] == [BEGIN_HIDDEN, "assert wide_params == sum(p.numel() for p in model.parameters()), 'count'",
                          "### END HIDDEN TESTS"] and lines[5] == "print('ok')"
    assert convert(converted, "13_conv.ipynb")[1] == []


@pytest.mark.parametrize(("prose", "expected"), [
    ("Write your answer between `### BEGIN SOLUTION` and `### END SOLUTION` (try first)",
     "Write your answer in the answer cell (try first)"),
    ("a cell where your answer goes, between `### BEGIN SOLUTION` and\n`### END SOLUTION` (the",
     "a cell where your answer goes (the"),
    ("see `### BEGIN HIDDEN TESTS`", "see the start of the hidden checks"),
])
def test_prose_names_no_marker(prose, expected):
    assert rewrite_prose(prose) == expected


# --- the round trip (executes notebooks) ------------------------------------------------------------------------


def nbgrader(course: pathlib.Path, *args: str, wait: bool = True):
    """Run the nbgrader CLI in ``course`` (its alembic on PATH, no user configuration); a finished process, or the
    running one if ``wait`` is false."""
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
               JUPYTER_CONFIG_DIR=str(course / ".jupyter"), VAE_LESSON_PROGRESS="0")
    env.pop("MPLBACKEND", None)
    log = open(course / "nbgrader.log", "a")  # noqa: SIM115 - closed by the caller's finish()
    process = subprocess.Popen([sys.executable, "-m", "nbgrader", *args], cwd=course, env=env, stdout=log,
                               stderr=subprocess.STDOUT)
    process.log = log
    return finish(process, course) if wait else process


def finish(process, course: pathlib.Path):
    process.wait(timeout=3600)
    process.log.close()
    assert process.returncode == 0, (course / "nbgrader.log").read_text()[-4000:]
    return process


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """A course folder with every notebook generated (released) as an assignment of its own."""
    root = tmp_path_factory.mktemp("course")
    write_course(root, NOTEBOOKS)
    nbgrader(root, "generate_assignment", "*", "--force")
    return root


def released(course, path) -> nbformat.NotebookNode:
    return nbformat.read(course / "release" / path.stem / path.name, as_version=4)


@pytest.mark.slow  # nbgrader generate_assignment on every notebook: about 15 s
def test_the_release_agrees_with_the_student_copies(course):
    for path in NOTEBOOKS:
        instructor = nbformat.read(path, as_version=4)
        release, student = released(course, path), student_notebook(instructor)
        assert [c.cell_type for c in release.cells] == [c.cell_type for c in student.cells], path.name
        for number, (ours, theirs) in enumerate(zip(student.cells, release.cells), 1):
            assert ours.source == theirs.source, f"{path.name}, cell {number}: tools.student and nbgrader differ"
            assert not any(m in ours.source for m in NBGRADER_MARKERS), f"{path.name}, cell {number}"
            for key in ("editable", "deletable"):
                assert ours.metadata.get(key, True) == theirs.metadata.get(key, True), f"{path.name}, {number}"
        for answer, check in exercises(instructor):
            assert STUB_MESSAGE in release.cells[answer].source, f"{path.name}: cell {answer + 1} is not stubbed"
            assert release.cells[check].metadata.get("editable") is False, f"{path.name}: cell {check + 1}"
            kept = instructor.cells[check].source.split(BEGIN_HIDDEN)[0]
            assert release.cells[check].source.startswith(kept.rstrip("\n")), f"{path.name}: check {check + 1}"
        stubbed = [i for i, c in enumerate(release.cells) if STUB_MESSAGE in c.source]
        assert stubbed == [answer for answer, _ in exercises(instructor)], path.name


def grading_problems(submissions, workers) -> list[str]:
    """What is wrong with the grades of ``submissions`` (``(student, path, notebook)``, the k-th graded in
    ``workers[k % len(workers)]``): one line per submission that did not get what it should."""
    from nbgrader.api import Gradebook

    problems = []
    for k, (student, path, _) in enumerate(submissions):
        worker = workers[k % len(workers)]
        with Gradebook(f"sqlite:///{worker / 'gradebook.db'}", "vae") as gradebook:
            graded = gradebook.find_submission_notebook(path.stem, path.stem, student)
            scores = {grade.name: (grade.score, grade.max_score) for grade in graded.grades}
            total, top = graded.score, graded.max_score
        autograded = nbformat.read(worker / "autograded" / student / path.stem / path.name, as_version=4)
        outputs = [(i + 1, o) for i, c in enumerate(autograded.cells) for o in c.get("outputs", [])]
        errors = sorted({i for i, o in outputs if o.get("output_type") == "error"})
        timeouts = sorted({i for i, o in outputs if o.get("ename") == "CellTimeoutError"})
        label = f"{path.stem} submitted by {student}"
        if not scores:
            problems.append(f"{label}: no graded cells")
        if timeouts:
            problems.append(f"{label}: cells {timeouts} timed out")
        if student == "instructor":
            if any(score != most for score, most in scores.values()) or total != top or errors:
                problems.append(f"{label}: scores {scores}, errors in cells {errors} (expected full marks)")
        elif student == "released":
            if any(score != 0 for score, _ in scores.values()) or total != 0:
                problems.append(f"{label}: scores {scores} (expected zero for every exercise)")
        else:
            lost = f"nb{path.stem.split('_')[0]}-ex{WRONG_SUBMISSION[path.stem]}-check"
            expected = {name: (0.0 if name == lost else most, most) for name, (_, most) in scores.items()}
            if scores != expected or total != top - scores[lost][1]:
                problems.append(f"{label}: scores {scores} (expected only {lost} to lose its points)")
    return problems


def _wrong_submission(path, number) -> nbformat.NotebookNode:
    nb = nbformat.read(path, as_version=4)
    answer, _ = exercises(nb)[number - 1]
    wrong = WRONG_ANSWERS[path.stem][number]
    cell = nb.cells[answer]
    cell.source = replace_solutions(cell.source, wrong if isinstance(wrong, list) else [wrong])
    return nb


@pytest.mark.slow  # autograde executes every notebook twice, and two notebooks a third time
def test_autograde_gives_full_marks_zero_and_loses_exactly_a_wrong_answers_points(course, tmp_path):
    submissions = []  # (student, notebook path, notebook)
    for path in NOTEBOOKS:
        submissions.append(("instructor", path, nbformat.read(path, as_version=4)))
        submissions.append(("released", path, released(course, path)))
    for stem, number in WRONG_SUBMISSION.items():
        submissions.append(("wrong", ROOT / "notebooks" / f"{stem}.ipynb",
                            _wrong_submission(ROOT / "notebooks" / f"{stem}.ipynb", number)))
    # Worker w grades submissions w, w + W, w + 2W, ...: each notebook's instructor and released runs land on
    # different workers, which balances the load without knowing how long each notebook takes.
    workers = [tmp_path / f"worker{w}" for w in range(WORKERS)]
    for worker in workers:
        shutil.copytree(course, worker, ignore=shutil.ignore_patterns("release", "nbgrader.log"))
    for k, (student, path, nb) in enumerate(submissions):
        target = workers[k % WORKERS] / "submitted" / student / path.stem / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, target)
    started = time.perf_counter()
    running = [nbgrader(worker, "autograde", "*", "--force", wait=False) for worker in workers]
    for worker, process in zip(workers, running):
        finish(process, worker)
    print(f"autograde of {len(submissions)} submissions on {WORKERS} workers: {time.perf_counter() - started:.0f} s")

    problems = grading_problems(submissions, workers)
    assert not problems, "\n".join(problems)
