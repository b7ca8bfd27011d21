"""Write student copies of the course notebooks: solutions replaced by stubs, exercise outputs cleared.

    python -m tools.student OUT_DIR                  # every notebooks/NN_*.ipynb
    python -m tools.student OUT_DIR notebooks/04_elbo.ipynb

The instructor notebooks are the one source. Each exercise is an answer cell followed by its self-check cell, in
nbgrader's format (``python -m tools.nbgrader_cells`` keeps them so), so instructors who use nbgrader get the same
student copy from ``nbgrader generate_assignment`` (a test compares the two, cell by cell). Without nbgrader:

* the lines from ``### BEGIN SOLUTION`` to ``### END SOLUTION`` become
  ``# YOUR CODE HERE`` / ``raise NotImplementedError(...)``, indented like the markers;
* lines from ``### BEGIN HIDDEN TESTS`` to ``### END HIDDEN TESTS`` are removed (checks a grader keeps back);
* the self-check cells (the asserts the answer must pass) stay, read-only and undeletable, and answer cells
  undeletable, as nbgrader marks them;
* outputs and execution counts are cleared from the first exercise cell on, so a student copy shows no answers.

A student copy therefore runs up to its first exercise and stops there with the stub's message.

Errors (a missing file, a file that is not a notebook, unbalanced markers, an output folder equal to the
notebooks' own, no ``notebooks/`` folder here) end the command with one line naming the file (and the cell) and
exit status 1; every notebook is checked before anything is written, so nothing is written or overwritten.
"""

from __future__ import annotations

import argparse
import copy
import pathlib
import re
import sys

from tools._cli import CLIError, check_out_dir, default_notebooks, fail, read_notebook

BEGIN_SOLUTION, END_SOLUTION = "### BEGIN SOLUTION", "### END SOLUTION"
BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
STUB_MESSAGE = "Exercise: replace this line with your solution"


def _source(cell) -> str:
    src = cell["source"]
    return src if isinstance(src, str) else "".join(src)


def strip_solutions(source: str) -> str:
    """Replace every solution block by a stub and drop hidden-test blocks.

    Raises ``ValueError`` on unbalanced markers."""
    out: list[str] = []
    mode = None
    for number, line in enumerate(source.splitlines(), 1):
        marker = line.strip()
        if marker in (BEGIN_SOLUTION, BEGIN_HIDDEN):
            if mode is not None:
                closing = END_SOLUTION if mode == BEGIN_SOLUTION else END_HIDDEN
                raise ValueError(f"line {number}: expected {closing!r} before a new block, got {marker!r} inside an "
                                 f"open {mode!r} block")
            mode = marker
            if marker == BEGIN_SOLUTION:
                indent = re.match(r"\s*", line).group(0)
                out += [f"{indent}# YOUR CODE HERE", f'{indent}raise NotImplementedError("{STUB_MESSAGE}")']
        elif marker in (END_SOLUTION, END_HIDDEN):
            expected = BEGIN_SOLUTION if marker == END_SOLUTION else BEGIN_HIDDEN
            if mode != expected:
                raise ValueError(f"line {number}: expected {marker!r} only after a matching {expected!r}, got it "
                                 "without one")
            mode = None
        elif mode is None:
            out.append(line)
    if mode is not None:
        closing = END_SOLUTION if mode == BEGIN_SOLUTION else END_HIDDEN
        raise ValueError(f"expected the {mode!r} block to be closed by {closing!r}, got the end of the cell (it is "
                         "never closed)")
    return "\n".join(out)


def is_exercise(cell) -> bool:
    """A code cell holding a solution or hidden-test block (or a stray end marker, which strip_solutions refuses)."""
    text = _source(cell)
    return cell["cell_type"] == "code" and any(m in text for m in (BEGIN_SOLUTION, BEGIN_HIDDEN, END_SOLUTION,
                                                                    END_HIDDEN))


def student_notebook(nb):
    """A student copy of a notebook (an ``nbformat`` node or plain dict); the input is not modified.

    Unbalanced markers raise ``ValueError`` naming the cell (1-based, as counted from the top) and its line."""
    nb = copy.deepcopy(nb)
    seen_exercise = False
    for number, cell in enumerate(nb["cells"], 1):
        if cell["cell_type"] != "code":
            continue
        role = cell.get("metadata", {}).get("nbgrader", {})
        if role.get("solution"):
            cell["metadata"]["deletable"] = False
        elif role.get("grade") or role.get("locked"):
            cell["metadata"]["deletable"] = cell["metadata"]["editable"] = False
        if is_exercise(cell):
            seen_exercise = True
            try:
                cell["source"] = strip_solutions(_source(cell))
            except ValueError as err:
                first = _source(cell).strip().splitlines()[0][:40]
                raise ValueError(f"cell {number} (which begins {first!r}), {err}") from None
        if seen_exercise:
            cell["outputs"] = []
            cell["execution_count"] = None
    return nb


def _student_copies(out_dir, paths) -> list[tuple[pathlib.Path, object]]:
    """Every ``(target, student copy)``, all checked before anything is written (``CLIError`` naming the file)."""
    out_dir = check_out_dir(out_dir)
    copies, targets = [], {}
    for path in map(pathlib.Path, paths):
        nb = read_notebook(path)
        if out_dir.resolve() == path.parent.resolve():
            raise CLIError(f"out_dir: expected a folder other than the notebooks' own, got {out_dir} ({path} would "
                           "be overwritten by its student copy)")
        target = out_dir / path.name
        if target in targets:
            raise CLIError(f"{path}: two notebooks named {path.name} ({targets[target]} too) would be written to "
                           f"the same {target}")
        targets[target] = path
        try:
            copies.append((target, student_notebook(nb)))
        except ValueError as err:
            raise CLIError(f"{path}: {err}") from None
    return copies


def write_student_copies(out_dir, paths) -> list[pathlib.Path]:
    """Write a student copy of each notebook in ``paths`` into ``out_dir``; returns the written paths.

    Every notebook is read and converted first: on any error (a ``ValueError`` naming the file
    and, for markers, the cell) nothing is written and no folder is created."""
    import nbformat

    copies = _student_copies(out_dir, paths)
    pathlib.Path(out_dir).mkdir(parents=True, exist_ok=True)
    written = []
    for target, nb in copies:
        nbformat.write(nb, target)
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.student", description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", help="folder for the student copies (created if missing)")
    parser.add_argument("paths", nargs="*", help="notebooks (default: notebooks/[0-9]*.ipynb)")
    args = parser.parse_args(argv)
    try:
        paths = args.paths or default_notebooks("student")
        for target in write_student_copies(args.out_dir, paths):
            print(target)
    except (CLIError, OSError) as err:
        return fail("student", err)
    return 0


if __name__ == "__main__":
    sys.exit(main())
