"""Write student copies of the course notebooks: solutions replaced by stubs, exercise outputs cleared.

    python -m vae_lesson.student OUT_DIR                  # every notebooks/NN_*.ipynb
    python -m vae_lesson.student OUT_DIR notebooks/04_elbo.ipynb

The instructor notebooks are the one source. Their exercise cells use nbgrader's markers, so instructors who use
nbgrader can take them as they are:

* the lines from ``### BEGIN SOLUTION`` to ``### END SOLUTION`` become
  ``# YOUR CODE HERE`` / ``raise NotImplementedError(...)``, indented like the markers;
* lines from ``### BEGIN HIDDEN TESTS`` to ``### END HIDDEN TESTS`` are removed (checks a grader keeps back);
* the self-check lines after ``### END SOLUTION`` (the ``assert`` the answer must pass) stay;
* outputs and execution counts are cleared from the first exercise cell on, so a student copy shows no answers.

A student copy therefore runs up to its first exercise and stops there with the stub's message.
"""

from __future__ import annotations

import argparse
import copy
import pathlib
import re
import sys

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
                raise ValueError(f"line {number}: {marker!r} inside an open {mode!r} block")
            mode = marker
            if marker == BEGIN_SOLUTION:
                indent = re.match(r"\s*", line).group(0)
                out += [f"{indent}# YOUR CODE HERE", f'{indent}raise NotImplementedError("{STUB_MESSAGE}")']
        elif marker in (END_SOLUTION, END_HIDDEN):
            expected = BEGIN_SOLUTION if marker == END_SOLUTION else BEGIN_HIDDEN
            if mode != expected:
                raise ValueError(f"line {number}: {marker!r} without a matching {expected!r}")
            mode = None
        elif mode is None:
            out.append(line)
    if mode is not None:
        raise ValueError(f"a {mode!r} block is never closed")
    return "\n".join(out)


def is_exercise(cell) -> bool:
    """A code cell holding a solution or hidden-test block."""
    text = _source(cell)
    return cell["cell_type"] == "code" and (BEGIN_SOLUTION in text or BEGIN_HIDDEN in text)


def student_notebook(nb):
    """A student copy of a notebook (an ``nbformat`` node or plain dict); the input is not modified."""
    nb = copy.deepcopy(nb)
    seen_exercise = False
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        if is_exercise(cell):
            seen_exercise = True
            cell["source"] = strip_solutions(_source(cell))
        if seen_exercise:
            cell["outputs"] = []
            cell["execution_count"] = None
    return nb


def write_student_copies(out_dir, paths) -> list[pathlib.Path]:
    """Write a student copy of each notebook in ``paths`` into ``out_dir``; returns the written paths."""
    import nbformat

    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in map(pathlib.Path, paths):
        nb = nbformat.read(path, as_version=4)
        target = out_dir / path.name
        if target.resolve() == path.resolve():
            raise ValueError(f"out_dir: expected a folder other than the notebooks' own, got {out_dir}")
        nbformat.write(student_notebook(nb), target)
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", help="folder for the student copies (created if missing)")
    parser.add_argument("paths", nargs="*", help="notebooks (default: notebooks/[0-9]*.ipynb)")
    args = parser.parse_args(argv)
    paths = args.paths or sorted(pathlib.Path("notebooks").glob("[0-9]*.ipynb"))
    for target in write_student_copies(args.out_dir, paths):
        print(target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
