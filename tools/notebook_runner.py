"""Execute course notebooks top to bottom in a fresh kernel and store their outputs, the way nbval replays them.

    python -m tools.notebook_runner                       # every notebooks/NN_*.ipynb, in place
    python -m tools.notebook_runner notebooks/06_*.ipynb  # some of them
    python -m tools.notebook_runner --check ...           # run without writing, report times only

This is how committed outputs are made (never by editing JSON): the kernel gets the same environment as under
``pytest`` (no progress bars, no inherited ``MPLBACKEND``), widget state is not stored, and the kernelspec is
normalised, so a fresh run and the committed file differ only where the computation does.

Errors end the command with one line naming the file (a missing or unreadable notebook, or the cell that failed,
with its exception) and exit status 1. Every notebook is read before any is executed, and a notebook is written
only after all its cells ran, so a failure writes nothing.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import time

from tools._cli import CLIError, default_notebooks, fail, read_notebook
from tools.slides import add_slide_metadata

KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}


def execute(path: str | os.PathLike, write: bool = True, timeout: int = 600) -> float:
    """Run one notebook in a fresh kernel (cwd = its folder); store outputs unless ``write=False``.

    Returns the wall time in seconds (kernel start included). Raises ``CLIError`` (a ``ValueError``) naming the
    file, and for a failing cell its number and exception; nothing is written then.
    """
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    path = pathlib.Path(path)
    os.environ["VAE_LESSON_PROGRESS"] = "0"
    os.environ.pop("MPLBACKEND", None)
    nb = read_notebook(path)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", store_widget_state=False, record_timing=False,
                            resources={"metadata": {"path": str(path.parent.resolve())}})
    started = time.perf_counter()
    try:
        client.execute()
    except CellExecutionError as err:
        raise CLIError(f"{path}: {_failed_cell(nb)} raised {err.ename}: {err.evalue}") from None
    except Exception as err:  # noqa: BLE001 - a timeout, a dead or missing kernel: one line naming the file
        raise CLIError(f"{path}: execution stopped at {_failed_cell(nb, running=True)} "
                       f"({type(err).__name__}: {' '.join(str(err).split())[:300]})") from None
    seconds = time.perf_counter() - started
    nb.metadata.pop("widgets", None)
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    add_slide_metadata(nb)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)  # per-cell timestamps: noise in every diff
    if write:
        nbformat.write(nb, path)
    return seconds


def _failed_cell(nb, running: bool = False) -> str:
    """``"cell N (which begins '...')"`` for the cell holding an error output (or the last one that started)."""
    for number, cell in enumerate(nb.cells, 1):
        if cell.get("cell_type") != "code":
            continue
        errored = any(out.get("output_type") == "error" for out in cell.get("outputs", []))
        if errored or (running and cell.get("execution_count") is None and cell.get("source", "").strip()):
            first = cell["source"].strip().splitlines()[0][:40] if cell["source"].strip() else ""
            return f"cell {number} (which begins {first!r})"
    return "a cell"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.notebook_runner",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", help="notebooks (default: notebooks/[0-9]*.ipynb)")
    parser.add_argument("--check", action="store_true", help="execute without writing outputs")
    args = parser.parse_args(argv)
    try:
        paths = [str(p) for p in (args.paths or default_notebooks("notebook_runner"))]
        for p in paths:
            read_notebook(p)  # every file is a notebook before the first one runs
        total = 0.0
        for p in paths:
            seconds = execute(p, write=not args.check)
            total += seconds
            print(f"{seconds:7.1f} s  {p}", flush=True)
    except (CLIError, OSError) as err:
        return fail("notebook_runner", err)
    print(f"{total:7.1f} s  total ({len(paths)} notebooks)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
