"""What the instructor commands (``student``, ``notebook_runner``, ``slides``) share: reading a notebook with an
error that names the file, and ending with one line on stderr and a non-zero exit instead of a traceback."""

from __future__ import annotations

import json
import pathlib
import sys
import warnings


class CLIError(ValueError):
    """An error the command reports as one line (its message names the file, and the cell where it applies)."""


def read_notebook(path):
    """Read ``path`` as an nbformat-4 notebook; ``CLIError`` naming the file if it is missing, a folder, not
    UTF-8 text, invalid JSON, JSON that is not a notebook, or a notebook nbformat cannot read."""
    import nbformat

    path = pathlib.Path(path)
    if not path.exists():
        raise CLIError(f"{path}: no such file")
    if path.is_dir():
        raise CLIError(f"{path}: expected a notebook file, got a folder")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise CLIError(f"{path}: expected a notebook (JSON text), got a binary file (not UTF-8)") from None
    except OSError as err:
        raise CLIError(f"{path}: cannot be read ({err.strerror or err})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise CLIError(f"{path}: expected a notebook (JSON), got invalid JSON (line {err.lineno}, column "
                       f"{err.colno}: {err.msg})") from None
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list) or "nbformat" not in data:
        raise CLIError(f"{path}: expected a Jupyter notebook (a JSON object with 'cells' and 'nbformat'), got "
                       f"JSON that is not one")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. nbformat's MissingIDFieldWarning: not the user's error
            nb = nbformat.reads(text, as_version=4)
        for cell in nb.cells:
            if cell.get("cell_type") not in ("code", "markdown", "raw") or not isinstance(cell.get("source"),
                                                                                         (str, list)):
                raise ValueError("a cell without a valid cell_type and source")
    except Exception as err:  # noqa: BLE001 - nbformat's errors vary by version; name the file either way
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CLIError(f"{path}: expected a valid Jupyter notebook, got one nbformat cannot read ({first})") from None
    return nb


def default_notebooks(command: str) -> list[pathlib.Path]:
    """``notebooks/[0-9]*.ipynb`` under the current folder; ``CLIError`` if there are none."""
    folder = pathlib.Path("notebooks")
    paths = sorted(folder.glob("[0-9]*.ipynb")) if folder.is_dir() else []
    if not paths:
        where = pathlib.Path.cwd()
        why = "no notebooks/ folder" if not folder.is_dir() else "no notebooks/NN_*.ipynb"
        raise CLIError(f"{where}: {why} here; run `python -m tools.{command}` from the course folder "
                       "(the one holding notebooks/), or name the notebooks")
    return paths


def check_out_dir(out_dir) -> pathlib.Path:
    out = pathlib.Path(out_dir)
    if out.exists() and not out.is_dir():
        raise CLIError(f"{out}: expected an output folder, got an existing file")
    return out


def fail(command: str, err: BaseException) -> int:
    """Print one line ``vae_lesson.<command>: error: ...`` on stderr; the exit status is 1."""
    message = " ".join(str(err).split()) or type(err).__name__
    print(f"python -m tools.{command}: error: {message}", file=sys.stderr)
    return 1
