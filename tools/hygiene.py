"""Notebook hygiene: was each notebook executed top to bottom in a fresh kernel, and does it carry no noise?

    python -m tools.hygiene notebooks/                # every .ipynb in the folder
    python -m tools.hygiene notebooks/04_elbo.ipynb   # some of them

Strict nbval replays each notebook and compares outputs; these checks catch what it does not: stale execution
counts (edited after running), saved widget state, SVG figures, stored errors or stderr, a missing setup line, and
notebooks too thin to teach. ``tests/test_notebook_hygiene.py`` runs the same checks on every notebook, and so does
the pre-commit hook. Exit status 1 if any notebook has a problem.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import re
import sys


def code_cells(nb: dict) -> list[dict]:
    return [c for c in nb["cells"] if c["cell_type"] == "code" and "".join(c["source"]).strip()]


def name_is_numbered_snake_case(name: str, nb: dict) -> list[str]:
    return [] if re.fullmatch(r"\d\d[a-z]?_[a-z0-9_]+\.ipynb", name) else [f"{name}: not named NN_snake_case.ipynb"]


def executed_once_top_to_bottom(name: str, nb: dict) -> list[str]:
    counts = [c.get("execution_count") for c in code_cells(nb)]
    return [] if counts == list(range(1, len(counts) + 1)) else [f"{name}: execution counts {counts}"]


def no_errors_stderr_or_svg(name: str, nb: dict) -> list[str]:
    problems = []
    for i, cell in enumerate(code_cells(nb), 1):
        for out in cell.get("outputs", []):
            if out["output_type"] == "error":
                problems.append(f"{name}: cell {i} stored an error")
            if out.get("name") == "stderr" and "".join(out["text"]).strip():
                problems.append(f"{name}: cell {i} wrote to stderr")
            if "image/svg+xml" in out.get("data", {}):
                problems.append(f"{name}: cell {i} has an SVG figure")
    return problems


def no_saved_widget_state_and_standard_kernel(name: str, nb: dict) -> list[str]:
    problems = []
    if "widgets" in nb["metadata"]:
        problems.append(f"{name}: saved widget state in metadata")
    timed = [i for i, c in enumerate(nb["cells"]) if "execution" in c.get("metadata", {})]
    if timed:
        problems.append(f"{name}: cells {timed[:5]} carry per-cell execution timestamps")
    if nb["metadata"].get("kernelspec", {}).get("name") != "python3":
        problems.append(f"{name}: kernelspec is not python3")
    return problems


def setup_cell_seeds_and_draws_inline(name: str, nb: dict) -> list[str]:
    cells = code_cells(nb)
    first_code = "".join(cells[0]["source"]) if cells else ""
    problems = []
    if "%matplotlib inline" not in first_code:
        problems.append(f"{name}: the setup cell needs %matplotlib inline")
    if "seed_everything(" not in first_code:
        problems.append(f"{name}: the setup cell must call seed_everything")
    return problems


def enough_explanation(name: str, nb: dict) -> list[str]:
    prose = "".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    problems = []
    if len(prose) < 2000:
        problems.append(f"{name}: only {len(prose)} characters of explanation")
    if not nb["cells"] or not re.match(r"# \d\d · ", "".join(nb["cells"][0]["source"])):
        problems.append(f"{name}: first cell is not the '# NN · Title'")
    return problems


CHECKS = [name_is_numbered_snake_case, executed_once_top_to_bottom, no_errors_stderr_or_svg,
          no_saved_widget_state_and_standard_kernel, setup_cell_seeds_and_draws_inline, enough_explanation]


def notebooks(paths) -> list[pathlib.Path]:
    """The ``.ipynb`` files among ``paths`` (a folder stands for the notebooks in it), sorted."""
    found = []
    for path in map(pathlib.Path, paths):
        found += sorted(path.glob("*.ipynb")) if path.is_dir() else [path]
    return found


def check(path: pathlib.Path) -> list[str]:
    """Every problem of one notebook, each as ``"name: what"``."""
    nb = json.loads(pathlib.Path(path).read_text(encoding="utf-8"))
    return [problem for check_one in CHECKS for problem in check_one(pathlib.Path(path).name, nb)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", default=["notebooks"], help="notebooks or folders (default: notebooks)")
    args = parser.parse_args(argv)
    paths = notebooks(args.paths)
    if not paths:
        print("no notebooks found", file=sys.stderr)
        return 1
    problems = [problem for path in paths for problem in check(path)]
    for problem in problems:
        print(problem)
    print(f"{len(paths)} notebooks, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
