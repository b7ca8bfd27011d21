"""Execute course notebooks top to bottom in a fresh kernel and store their outputs, the way nbval replays them.

    python -m vae_lesson.notebook_runner                       # every notebooks/NN_*.ipynb, in place
    python -m vae_lesson.notebook_runner notebooks/06_*.ipynb  # some of them
    python -m vae_lesson.notebook_runner --check ...           # run without writing, report times only

This is how committed outputs are made (never by editing JSON): the kernel gets the same environment as under
``pytest`` (no progress bars, no inherited ``MPLBACKEND``), widget state is not stored, and the kernelspec is
normalised, so a fresh run and the committed file differ only where the computation does.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import time

from .slides import add_slide_metadata

KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}


def execute(path: str | os.PathLike, write: bool = True, timeout: int = 600) -> float:
    """Run one notebook in a fresh kernel (cwd = its folder); store outputs unless ``write=False``.

    Returns the wall time in seconds (kernel start included). Raises on the first failing cell.
    """
    import nbformat
    from nbclient import NotebookClient

    path = pathlib.Path(path)
    os.environ["VAE_LESSON_PROGRESS"] = "0"
    os.environ.pop("MPLBACKEND", None)
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", store_widget_state=False, record_timing=False,
                            resources={"metadata": {"path": str(path.parent.resolve())}})
    started = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - started
    nb.metadata.pop("widgets", None)
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    add_slide_metadata(nb)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)  # per-cell timestamps: noise in every diff
    if write:
        nbformat.write(nb, path)
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", help="notebooks (default: notebooks/[0-9]*.ipynb)")
    parser.add_argument("--check", action="store_true", help="execute without writing outputs")
    args = parser.parse_args(argv)
    paths = args.paths or sorted(str(p) for p in pathlib.Path("notebooks").glob("[0-9]*.ipynb"))
    if not paths:
        print("no notebooks found", file=sys.stderr)
        return 1
    total = 0.0
    for p in paths:
        seconds = execute(p, write=not args.check)
        total += seconds
        print(f"{seconds:7.1f} s  {p}", flush=True)
    print(f"{total:7.1f} s  total ({len(paths)} notebooks)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
