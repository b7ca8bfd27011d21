"""Do the notebooks' self-checks hold on another learner's machine? Execute every notebook with other seeds.

    python -m tools.robustness                          # seeds 1 2, every notebooks/NN_*.ipynb
    python -m tools.robustness --seeds 1 2 3 4 notebooks/08_*.ipynb
    python -m tools.robustness --seeds 3 --perturb aten-default threads-2

A self-check (an ``assert`` in a notebook) states a property of VAEs, so it must hold whatever the seed and
whatever the CPU. This command runs each notebook top to bottom in a fresh kernel with ``VAE_LESSON_SEED`` set
(``seed_everything()`` reads it; every other seed in a notebook derives from it), optionally under a
perturbation that changes floating-point results the way another processor does:

* ``aten-default``: ``ATEN_CPU_CAPABILITY=default``, other ATen kernels (no AVX2/AVX-512 code paths);
* ``threads-2``: ``VAE_LESSON_THREADS=2``, another reduction order.

Nothing is written: outputs are not compared (they legitimately change with the seed), only executed. For each
run it prints the first cell that fails, with its error (an ``AssertionError`` names the claim that broke), and
it exits 1 if any run failed. Runs go ``--jobs`` at a time (default 2, one thread each).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import pathlib
import re
import sys
import time

PERTURBATIONS = {
    "none": {},
    "aten-default": {"ATEN_CPU_CAPABILITY": "default"},
    "threads-2": {"VAE_LESSON_THREADS": "2"},
}


def first_failure(nb) -> str | None:
    """``"cell N: Error: message"`` for the first code cell holding an error output, else None."""
    number = 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        number += 1
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                message = output.get("evalue", "").strip().splitlines()
                first_line = next((line for line in message if line.strip()), "")
                if not first_line:  # an assert without a message: show its line from the traceback
                    text = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(output.get("traceback", [])))
                    arrows = [line for line in text.splitlines() if line.lstrip().startswith("---->")]
                    first_line = arrows[-1].split("---->", 1)[1].strip() if arrows else "(no message)"
                return f"code cell {number}: {output.get('ename')}: {first_line[:200]}"
    return None


def run_one(path: str, seed: int, perturbation: str, timeout: int = 600) -> tuple[str, int, str, float, str | None]:
    """Execute ``path`` in a fresh kernel with ``VAE_LESSON_SEED=seed`` and the perturbation's environment."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    env = {**os.environ, "VAE_LESSON_SEED": str(seed), "VAE_LESSON_PROGRESS": "0", **PERTURBATIONS[perturbation]}
    env.pop("MPLBACKEND", None)
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", store_widget_state=False,
                            resources={"metadata": {"path": str(pathlib.Path(path).parent.resolve())}})
    started = time.perf_counter()
    failure = None
    try:
        client.execute(env=env)  # the kernel's environment
    except CellExecutionError:
        failure = first_failure(nb) or "a cell failed (no error output stored)"
    except (CellTimeoutError, DeadKernelError) as error:
        failure = f"{type(error).__name__}: {str(error).strip().splitlines()[0][:200]}"
    return path, seed, perturbation, time.perf_counter() - started, failure


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", help="notebooks (default: notebooks/[0-9]*.ipynb)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2], help="values of VAE_LESSON_SEED (default 1 2)")
    parser.add_argument("--perturb", nargs="+", choices=sorted(PERTURBATIONS), default=["none"],
                        help="floating-point perturbations to run each seed under (default: none)")
    parser.add_argument("--jobs", type=int, default=2, help="notebooks executed at once (default 2)")
    argv = sys.argv[1:] if argv is None else list(argv)
    # notebooks may come anywhere, also after --seeds 1 2 (whose nargs="+" would otherwise take them)
    notebooks = [a for a in argv if a.endswith(".ipynb")]
    args = parser.parse_args([a for a in argv if not a.endswith(".ipynb")])
    args.paths = notebooks
    paths = args.paths or sorted(str(p) for p in pathlib.Path("notebooks").glob("[0-9]*.ipynb"))
    missing = [p for p in paths if not pathlib.Path(p).is_file()]
    if not paths or missing:
        print(f"robustness: no notebook at {missing[0] if missing else 'notebooks/[0-9]*.ipynb'}", file=sys.stderr)
        return 2
    if any(seed < 0 for seed in args.seeds) or args.jobs < 1:
        print("robustness: --seeds must be >= 0 and --jobs >= 1", file=sys.stderr)
        return 2
    runs = [(p, s, q) for s in args.seeds for q in args.perturb for p in paths]
    print(f"robustness: {len(runs)} runs ({len(paths)} notebooks x seeds {args.seeds} x {args.perturb}), "
          f"{args.jobs} at a time", flush=True)
    failures = []
    with concurrent.futures.ProcessPoolExecutor(args.jobs) as pool:
        futures = [pool.submit(run_one, *run) for run in runs]
        for future in concurrent.futures.as_completed(futures):
            path, seed, perturbation, seconds, failure = future.result()
            status = "ok  " if failure is None else "FAIL"
            print(f"{status} {seconds:6.1f} s  seed {seed} {perturbation:<12} {path}"
                  + (f"\n       {failure}" if failure else ""), flush=True)
            if failure:
                failures.append((path, seed, perturbation, failure))
    print(f"robustness: {len(runs) - len(failures)} passed, {len(failures)} failed")
    for path, seed, perturbation, failure in sorted(failures):
        print(f"  {path} (seed {seed}, {perturbation}): {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
