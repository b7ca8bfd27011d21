"""Give every exercise nbgrader's cell metadata: an answer cell, then a read-only, autograded self-check cell.

    python -m tools.nbgrader_cells notebooks/*.ipynb          # rewrite in place (idempotent)
    python -m tools.nbgrader_cells --check notebooks/*.ipynb  # report what is missing; exit status 1 if anything
    python -m tools.nbgrader_cells --course ../vae-course     # an nbgrader course folder: one assignment a notebook

The course's exercise format, which this command establishes and ``--check`` enforces:

* **The answer cell** is a code cell whose answer sits between a line ``### BEGIN SOLUTION`` and a line
  ``### END SOLUTION`` (with little else around it). nbgrader metadata: ``solution: true, grade: false,
  locked: false``, ``grade_id`` ``nbNN-exK-answer``.
* **The self-check cell** follows it directly: it begins with the comment ``# Self-check: exercise K`` and holds the
  asserts the answer must pass. Checks that would give the answer away sit between ``### BEGIN HIDDEN TESTS`` and
  ``### END HIDDEN TESTS`` lines after a visible check. nbgrader metadata: ``grade: true, solution: false,
  locked: true, points``, ``grade_id`` ``nbNN-exK-check``. nbgrader's release keeps it (hidden tests removed) and its
  autograde restores the instructor's version (hidden tests included) before it runs it: its points are earned
  exactly when it runs without an error.
* **No other cell** contains a marker string: nbgrader matches them anywhere, in markdown prose too, and a marker
  outside a cell of the right kind makes ``nbgrader generate_assignment`` fail.

The rewrite splits an older exercise cell (answer, then asserts after ``### END SOLUTION`` in the same cell) into
the two cells, gives an existing check cell its first-line comment, moves the checks listed in :data:`HIDDEN`
(those that compute the answer with the very function the exercise asks the learner not to use) into hidden tests
behind a visible check, rewrites exercise prose that quotes the markers, and sets the metadata. Points already set
on a check cell are kept (default 1). A rewritten notebook must be executed again
(``python -m tools.notebook_runner``) to store the outputs of its new cells. Nothing is written if any notebook has a
problem the rewrite cannot fix (an exercise without a check, unbalanced markers): it is reported, one line each.

``--course DIR`` writes an nbgrader course folder from notebooks already in this format: ``source/NN_topic/
NN_topic.ipynb`` for each notebook (one assignment per notebook) and, unless one is there, ``nbgrader_config.py``
(:data:`NBGRADER_CONFIG`: the course id, a cell timeout long enough for training cells, and the stub of
``python -m tools.student``, so that nbgrader's release and the course's own student copies agree line for line).

Other cells are left unlocked on purpose: autograde restores every check cell from the instructor's copy, which
is what keeps grades honest, and the rest of a notebook is the learner's to change ("change a number and see what
breaks").
"""

from __future__ import annotations

import argparse
import ast
import copy
import dataclasses
import pathlib
import re
import sys

BEGIN_SOLUTION, END_SOLUTION = "### BEGIN SOLUTION", "### END SOLUTION"
BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
# What nbgrader itself looks for: a plain substring, in any line of any cell.
NBGRADER_MARKERS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS")
SELF_CHECK = "# Self-check: exercise"
IGNORE_OUTPUT = "# NBVAL_IGNORE_OUTPUT"
SCHEMA_VERSION = 3
DEFAULT_POINTS = 1


@dataclasses.dataclass(frozen=True)
class Hide:
    """Checks of one exercise that give the answer away: top-level statements of its check cell whose first line
    contains one of ``statements`` move into a hidden-test block, after the ``visible`` checks added in their place
    (which must fail on the stub and be true of every right answer)."""

    statements: tuple[str, ...]
    visible: tuple[str, ...] = ()


HIDDEN: dict[str, Hide] = {
    # "compute by hand (not with implied_beta)": the check called implied_beta
    "nb06-ex1": Hide(("assert beta_exercise == implied_beta(",),
                     ('assert isinstance(beta_exercise, int) and beta_exercise > 1, "beta: a whole number, '
                      'counted from how each term is averaged"',)),
    # "without calling slerp": the check called slerp
    "nb07-ex1": Hide(("assert torch.allclose(midpoint, slerp(",),
                     ("# (7.3) never cuts inside the shorter end's norm, whatever the two vectors",
                      'assert midpoint.norm() >= min(z_0.norm(), z_1.norm()) - 1e-4, "the spherical midpoint keeps at '
                      'least the shorter end\'s norm"')),
    # the package's uniform-prior KL is the answer in nats
    "nb12-ex1": Hide(("with torch.random.fork_rng(", "package_kl = ", "assert abs(kl_nats - package_kl)",
                      "assert abs(kl_bits * math.log(2) - package_kl)"),
                     ('assert abs(kl_bits * math.log(2) - kl_nats) < 0.01, "the same KL in two units: 1 bit = '
                      'ln 2 nats"',)),
    # perplexity() and code_usage() compute the answers
    "nb12-ex2": Hide(("usage = torch.tensor(", "assert abs(exercise_ppl - perplexity(",
                      "assert exercise_dead == int("),
                     ('assert 1 <= exercise_ppl <= 4, "a perplexity lies between 1 and the number of codes"',
                      'assert exercise_dead in range(5), "a number of codes, out of 4"')),
    # "compute it with (13.2) before building the model": the check built the model
    "nb13-ex1": Hide(("assert wide_params == sum(",),
                     ('assert isinstance(wide_params, int) and wide_params > 0, "a number of parameters: a positive '
                      'whole number"',)),
}


def nbgrader_config() -> str:
    """The course folder's ``nbgrader_config.py``."""
    from tools.student import STUB_MESSAGE

    stub = f'# YOUR CODE HERE\\nraise NotImplementedError("{STUB_MESSAGE}")'
    return "\n".join([
        "# nbgrader's configuration for the VAE course (written by python -m tools.nbgrader_cells --course)",
        "c = get_config()",
        'c.CourseDirectory.course_id = "vae"',
        "# cells train models: allow minutes on a busy machine (nbgrader's default is 30 s a cell)",
        "c.Execute.timeout = 600",
        "# the stub of python -m tools.student, so that both kinds of student copy agree line for line",
        f"c.ClearSolutions.code_stub = {{'python': '{stub}'}}",
        "",
    ])


class ExerciseError(ValueError):
    """A problem the rewrite cannot fix by itself (the message names the notebook's cell)."""


def _source(cell) -> str:
    src = cell["source"]
    return src if isinstance(src, str) else "".join(src)


def _stripped_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines()]


def is_solution_cell(cell) -> bool:
    return cell["cell_type"] == "code" and BEGIN_SOLUTION in _stripped_lines(_source(cell))


def notebook_prefix(path) -> str:
    """``nb06`` for ``06_vae_on_mnist.ipynb``: the part of the name before the first underscore."""
    return "nb" + pathlib.Path(path).stem.split("_")[0]


def answer_metadata(grade_id: str) -> dict:
    return {"grade": False, "grade_id": grade_id, "locked": False, "schema_version": SCHEMA_VERSION,
            "solution": True, "task": False}


def check_metadata(grade_id: str, points) -> dict:
    return {"grade": True, "grade_id": grade_id, "locked": True, "points": points, "schema_version": SCHEMA_VERSION,
            "solution": False, "task": False}


def _trim(lines: list[str]) -> list[str]:
    while lines and not lines[0].strip():
        lines = lines[1:]
    while lines and not lines[-1].strip():
        lines = lines[:-1]
    return lines


def _check_blocks(lines: list[str], begin: str, end: str, where: str) -> None:
    inside = False
    for number, line in enumerate(lines, 1):
        if line.strip() == begin:
            if inside:
                raise ExerciseError(f"{where}, line {number}: {begin!r} inside an open block (expected {end!r} first)")
            inside = True
        elif line.strip() == end:
            if not inside:
                raise ExerciseError(f"{where}, line {number}: {end!r} without a {begin!r} before it")
            inside = False
    if inside:
        raise ExerciseError(f"{where}: the {begin!r} block is never closed by {end!r}")


def _header_length(lines: list[str]) -> int:
    """How many leading lines are comments (the check cell's header: self-check and nbval comments)."""
    n = 0
    while n < len(lines) and lines[n].strip().startswith("#") and lines[n].strip() not in (BEGIN_HIDDEN,):
        n += 1
    return n


def check_source(body: list[str], number: int, ignore_output: bool) -> list[str]:
    """The check cell's lines: ``# Self-check: exercise N`` first, nbval's marker next if wanted, then the body
    (any old self-check or nbval header lines of the body are replaced)."""
    n = _header_length(body)
    header = [line for line in body[:n] if not line.strip().startswith(SELF_CHECK)]
    ignore_output = ignore_output or any(line.strip() == IGNORE_OUTPUT for line in header)
    header = [line for line in header if line.strip() != IGNORE_OUTPUT]
    return [f"{SELF_CHECK} {number}"] + ([IGNORE_OUTPUT] if ignore_output else []) + header + _trim(body[n:])


def hide_answers(lines: list[str], rule: Hide) -> list[str] | None:
    """``lines`` with the statements of ``rule`` moved into a hidden-test block after ``rule.visible``; ``None`` if
    no such statement is visible (already hidden, or the check was rewritten)."""
    hidden_rows, inside = set(), False
    for i, line in enumerate(lines):
        if line.strip() in (BEGIN_HIDDEN, END_HIDDEN):
            inside = line.strip() == BEGIN_HIDDEN
            hidden_rows.add(i)
        elif inside:
            hidden_rows.add(i)
    try:
        tree = ast.parse("\n".join(lines))
    except SyntaxError:
        return None
    moved: list[tuple[int, int]] = []
    for statement in tree.body:
        start, stop = statement.lineno - 1, statement.end_lineno  # rows [start, stop)
        if start in hidden_rows:
            continue
        if any(pattern in lines[start] for pattern in rule.statements):
            while start > 0 and lines[start - 1].strip().startswith("#") and start - 1 not in hidden_rows \
                    and not lines[start - 1].strip().startswith(SELF_CHECK) \
                    and lines[start - 1].strip() != IGNORE_OUTPUT:
                start -= 1  # the comments right above a statement go with it
            moved.append((start, stop))
    if not moved:
        return None
    rows = {i for start, stop in moved for i in range(start, stop)}
    first = min(rows)
    out = [line for i, line in enumerate(lines[:first]) if i not in rows]
    out += list(rule.visible) + [BEGIN_HIDDEN] + [lines[i] for i in sorted(rows)] + [END_HIDDEN]
    out += [line for i, line in enumerate(lines[first:], first) if i not in rows]
    return out


_CLAUSE = re.compile(r",?\s+between\s+`\s*###\s*BEGIN SOLUTION\s*`\s+and\s+`\s*###\s*END SOLUTION\s*`")
_FALLBACK = [(re.compile(r"`?(###\s*)?BEGIN SOLUTION`?"), "the start of the answer"),
             (re.compile(r"`?(###\s*)?END SOLUTION`?"), "the end of the answer"),
             (re.compile(r"`?(###\s*)?BEGIN HIDDEN TESTS`?"), "the start of the hidden checks"),
             (re.compile(r"`?(###\s*)?END HIDDEN TESTS`?"), "the end of the hidden checks")]


def rewrite_prose(text: str) -> str:
    """Markdown without nbgrader's marker strings: "between `### BEGIN SOLUTION` and `### END SOLUTION`" goes
    (after "write your answer" it becomes "in the answer cell"); any other marker is named in words."""
    out, last = [], 0
    for match in _CLAUSE.finditer(text):
        before = text[last:match.start()]
        out.append(before + (" in the answer cell" if re.search(r"write your answer$", before, re.I) else ""))
        last = match.end()
    text = "".join(out) + text[last:]
    for pattern, words in _FALLBACK:
        text = pattern.sub(words, text)
    return text


def _node(cell: dict):
    from nbformat import from_dict

    return from_dict(cell)


def _new_cell_id(nb, wanted: str) -> str:
    taken = {c.get("id") for c in nb["cells"]}
    cell_id, n = wanted, 2
    while cell_id in taken:
        cell_id, n = f"{wanted}-{n}", n + 1
    return cell_id


def convert(nb, path) -> tuple[object, list[str]]:
    """The converted copy of ``nb`` (an ``nbformat`` node or a plain dict; the input is not modified) and the list
    of changes it makes, one line each. ``ExerciseError`` names the cell of a problem it cannot fix."""
    nb = copy.deepcopy(nb)
    name, prefix = pathlib.Path(path).name, notebook_prefix(path)
    changes: list[str] = []
    cells = nb["cells"]

    for i, cell in enumerate(cells):
        if cell["cell_type"] == "markdown" and any(m in _source(cell) for m in NBGRADER_MARKERS):
            cell["source"] = rewrite_prose(_source(cell))
            changes.append(f"cell {i + 1}: markdown quotes nbgrader's markers")

    i, number, roles = 0, 0, {}
    while i < len(cells):
        cell = cells[i]
        if not is_solution_cell(cell):
            i += 1
            continue
        number += 1
        where = f"{name}: exercise {number} (cell {i + 1})"
        lines = _source(cell).splitlines()
        _check_blocks(lines, BEGIN_SOLUTION, END_SOLUTION, where)
        last_end = max(k for k, line in enumerate(lines) if line.strip() == END_SOLUTION)
        head, tail = _trim(lines[: last_end + 1]), _trim(lines[last_end + 1:])
        if any(line.strip() in (BEGIN_HIDDEN, END_HIDDEN) for line in head):
            raise ExerciseError(f"{where}: hidden tests before the end of the answer (they belong in the check)")
        ignore_output = any(line.strip() == IGNORE_OUTPUT for line in head)
        nxt = cells[i + 1] if i + 1 < len(cells) else None
        next_is_check = (nxt is not None and nxt["cell_type"] == "code" and not is_solution_cell(nxt)
                         and (_source(nxt).lstrip().startswith(SELF_CHECK)
                              or nxt.get("metadata", {}).get("nbgrader", {}).get("grade")))
        if tail:
            cell["source"] = "\n".join(head)
            body = tail
            if next_is_check:  # a check that was already split off: the leftover asserts join it
                body = tail + _trim(_source(nxt).splitlines()[_header_length(_source(nxt).splitlines()):])
                cells.pop(i + 1)
            new = {"cell_type": "code", "execution_count": None, "id": _new_cell_id(nb, f"{prefix}-ex{number}-check"),
                   "metadata": {}, "outputs": cell.get("outputs", []), "source": ""}
            if "id" not in cell:
                new.pop("id")
            cell["outputs"], cell["execution_count"] = [], None
            cells.insert(i + 1, new if type(cell) is dict else _node(new))
            check = cells[i + 1]
            changes.append(f"exercise {number}: asserts after the answer, in the answer cell")
        elif nxt is not None and nxt["cell_type"] == "code" and not is_solution_cell(nxt):
            check = nxt
            body = _source(nxt).splitlines()
        else:
            raise ExerciseError(f"{where}: no check after the answer cell (expected asserts after "
                                f"{END_SOLUTION!r} or a code cell right after it)")
        new_lines = check_source(body, number, ignore_output)
        grade_id = f"{prefix}-ex{number}"
        rule = HIDDEN.get(grade_id)
        if rule is not None:
            hidden = hide_answers(new_lines, rule)
            if hidden is not None:
                new_lines = hidden
                changes.append(f"exercise {number}: a visible check gives the answer away (it belongs in hidden tests)")
        where_check = f"{name}: exercise {number}'s check (cell {i + 2})"
        _check_blocks(new_lines, BEGIN_HIDDEN, END_HIDDEN, where_check)
        if any(line.strip() in (BEGIN_SOLUTION, END_SOLUTION) for line in new_lines):
            raise ExerciseError(f"{where_check}: a solution block in a check cell")
        if not any(line.lstrip().startswith("assert") for line in new_lines):
            raise ExerciseError(f"{where_check}: no assert (the code cell after an answer cell is its check)")
        if "\n".join(new_lines) != _source(check):
            if not tail:
                changes.append(f"exercise {number}: the check cell does not begin with {SELF_CHECK} {number!s}")
            check["source"] = "\n".join(new_lines)
        old = check.get("metadata", {}).get("nbgrader", {})
        points = old.get("points", DEFAULT_POINTS) if old.get("grade") else DEFAULT_POINTS
        roles[i] = answer_metadata(f"{grade_id}-answer")
        roles[i + 1] = check_metadata(f"{grade_id}-check", points)
        i += 2

    for k, cell in enumerate(cells):
        wanted, had = roles.get(k), cell.get("metadata", {}).get("nbgrader")
        if wanted is None and had is not None:
            del cell["metadata"]["nbgrader"]
            changes.append(f"cell {k + 1}: nbgrader metadata on a cell that is no exercise cell")
        elif wanted is not None and had != wanted:
            cell.setdefault("metadata", {})["nbgrader"] = wanted
            changes.append(f"cell {k + 1}: nbgrader metadata {wanted['grade_id']} missing or different")
        if cell["cell_type"] == "code" and wanted is None:
            stray = [m for m in NBGRADER_MARKERS if m in _source(cell)]
            if stray:
                raise ExerciseError(f"{name}: cell {k + 1} is no exercise cell but contains {stray[0]!r} (nbgrader "
                                    "would refuse it: reword it)")
        if cell["cell_type"] not in ("code", "markdown") and any(m in _source(cell) for m in NBGRADER_MARKERS):
            raise ExerciseError(f"{name}: {cell['cell_type']} cell {k + 1} contains a marker string")
    return nb, changes


def exercises(nb) -> list[tuple[int, int]]:
    """``(answer cell index, check cell index)`` of each exercise of a converted notebook, in order."""
    out = []
    for i, cell in enumerate(nb["cells"]):
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("solution") and i + 1 < len(nb["cells"]):
            out.append((i, i + 1))
    return out


def write_course(course, paths) -> list[pathlib.Path]:
    """Copy each notebook to ``course/source/<stem>/<name>`` and write ``course/nbgrader_config.py`` if missing;
    returns the written paths. ``ExerciseError`` (nothing written) if a notebook is not in the exercise format."""
    import shutil

    from tools._cli import read_notebook

    paths = [pathlib.Path(p) for p in paths]
    for path in paths:
        _, changes = convert(read_notebook(path), path)
        if changes:
            raise ExerciseError(f"{path}: not in the exercise format ({changes[0]}); run python -m "
                                f"tools.nbgrader_cells {path} first")
    course = pathlib.Path(course)
    written = []
    for path in paths:
        target = course / "source" / path.stem / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        written.append(target)
    config = course / "nbgrader_config.py"
    if not config.exists():
        config.write_text(nbgrader_config())
        written.append(config)
    return written


def main(argv: list[str] | None = None) -> int:
    from tools._cli import CLIError, default_notebooks, fail, read_notebook

    parser = argparse.ArgumentParser(prog="python -m tools.nbgrader_cells", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report what the rewrite would change; write nothing")
    parser.add_argument("--course", metavar="DIR", help="write an nbgrader course folder (source/ and its config)")
    parser.add_argument("paths", nargs="*", help="notebooks (default: notebooks/[0-9]*.ipynb)")
    args = parser.parse_args(argv)
    try:
        paths = [pathlib.Path(p) for p in (args.paths or default_notebooks("nbgrader_cells"))]
        if args.course:
            for target in write_course(args.course, paths):
                print(target)
            return 0
        results, problems = [], []
        for path in paths:
            nb = read_notebook(path)
            try:
                results.append((path, *convert(nb, path)))
            except ExerciseError as err:
                problems.append(str(err))
    except (CLIError, ExerciseError, OSError) as err:
        return fail("nbgrader_cells", err)
    for problem in problems:
        print(f"python -m tools.nbgrader_cells: error: {problem}", file=sys.stderr)
    if args.check:
        pending = [(path, changes) for path, _, changes in results if changes]
        for path, changes in pending:
            for change in changes:
                print(f"{path}: {change}")
        return 1 if pending or problems else 0
    if problems:
        print("python -m tools.nbgrader_cells: nothing written", file=sys.stderr)
        return 1
    import nbformat

    rewritten = []
    for path, converted, changes in results:
        if changes:
            nbformat.write(converted, path)
            rewritten.append(path)
            print(f"{path}: {len(changes)} changes")
    if rewritten:
        print("execute the rewritten notebooks again to store their outputs: python -m tools.notebook_runner "
              + " ".join(str(p) for p in rewritten))
    return 0


if __name__ == "__main__":
    sys.exit(main())
