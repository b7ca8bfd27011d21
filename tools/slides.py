"""Slides from the notebooks: one reveal.js deck per notebook, one slide per section, usable offline.

    python -m tools.slides OUT_DIR                      # every notebooks/NN_*.ipynb
    python -m tools.slides OUT_DIR notebooks/04_elbo.ipynb

Every markdown cell that opens a section (a ``#`` or ``##`` heading) carries ``"slideshow": {"slide_type":
"slide"}`` metadata (:func:`add_slide_metadata`, applied by the notebook runner); the cells after it stay on
that slide and scroll. ``jupyter nbconvert --to slides`` works on the notebooks as they are.

Offline: nbconvert's decks load reveal.js and MathJax from a CDN by default. This command points them at local
copies instead (``OUT_DIR/node_modules``), which one command installs from the npm registry, once::

    npm install --prefix OUT_DIR reveal.js@4.0.2 mathjax@2.7.9 jquery@3.7.1 requirejs@2.3.7

Without them the deck still opens and shows every slide's content, but without reveal.js navigation and with
TeX source instead of typeset maths.

Errors (a missing file, a file that is not a notebook, an output folder that is a file, no ``notebooks/`` folder
here) end the command with one line naming the file and exit status 1; every deck is made before any is written.
"""

from __future__ import annotations

import argparse
import pathlib
import re
import sys

from tools._cli import CLIError, check_out_dir, default_notebooks, fail, read_notebook

HEADING = re.compile(r"^#{1,2} \S")
NPM_PACKAGES = "reveal.js@4.0.2 mathjax@2.7.9 jquery@3.7.1 requirejs@2.3.7"
LOCAL_URLS = {  # nbconvert's CDN defaults, replaced by paths into OUT_DIR/node_modules
    "reveal_url_prefix": "node_modules/reveal.js",
    "mathjax_url": "node_modules/mathjax/MathJax.js?config=TeX-AMS_HTML",
    "jquery_url": "node_modules/jquery/dist/jquery.min.js",
    "require_js_url": "node_modules/requirejs/require.js",
}


def _source(cell) -> str:
    src = cell["source"]
    return src if isinstance(src, str) else "".join(src)


def is_section_start(cell) -> bool:
    """A markdown cell whose first line is a ``#`` or ``##`` heading."""
    return cell["cell_type"] == "markdown" and bool(HEADING.match(_source(cell)))


def add_slide_metadata(nb) -> int:
    """Mark each section-opening markdown cell as a new slide (in place); returns the number of slides."""
    count = 0
    for cell in nb["cells"]:
        if is_section_start(cell):
            cell.setdefault("metadata", {})["slideshow"] = {"slide_type": "slide"}
            count += 1
        elif "slideshow" in cell.get("metadata", {}):
            del cell["metadata"]["slideshow"]
    return count


def _deck(path) -> str:
    """The HTML deck of one notebook (``CLIError`` naming the file if it is not a readable notebook)."""
    from nbconvert.exporters import SlidesExporter

    path = pathlib.Path(path)
    nb = read_notebook(path)
    add_slide_metadata(nb)
    exporter = SlidesExporter(**LOCAL_URLS)
    try:
        body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": path.stem}})
    except Exception as err:  # noqa: BLE001 - nbconvert's errors vary; name the file
        raise CLIError(f"{path}: nbconvert could not make slides ({type(err).__name__}: {err})") from None
    return body


def write_deck(path, out_dir) -> pathlib.Path:
    """Convert one notebook to ``OUT_DIR/<name>.slides.html`` with local reveal.js/MathJax paths."""
    path, out_dir = pathlib.Path(path), check_out_dir(out_dir)
    body = _deck(path)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{path.stem}.slides.html"
    target.write_text(body, encoding="utf-8")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.slides", description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", help="folder for the decks (created if missing)")
    parser.add_argument("paths", nargs="*", help="notebooks (default: notebooks/[0-9]*.ipynb)")
    args = parser.parse_args(argv)
    try:
        paths = [pathlib.Path(p) for p in (args.paths or default_notebooks("slides"))]
        out_dir = check_out_dir(args.out_dir)
        decks = [(out_dir / f"{p.stem}.slides.html", _deck(p)) for p in paths]  # all made before any is written
        out_dir.mkdir(parents=True, exist_ok=True)
        for target, body in decks:
            target.write_text(body, encoding="utf-8")
            print(target)
    except (CLIError, OSError) as err:
        return fail("slides", err)
    if not (out_dir / "node_modules" / "reveal.js").is_dir():
        print(f"for offline navigation and maths, once: npm install --prefix {args.out_dir} {NPM_PACKAGES}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
