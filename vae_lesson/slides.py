"""Slides from the notebooks: one reveal.js deck per notebook, one slide per section, usable offline.

    python -m vae_lesson.slides OUT_DIR                      # every notebooks/NN_*.ipynb
    python -m vae_lesson.slides OUT_DIR notebooks/04_elbo.ipynb

Every markdown cell that opens a section (a ``#`` or ``##`` heading) carries ``"slideshow": {"slide_type":
"slide"}`` metadata (:func:`add_slide_metadata`, applied by the notebook runner); the cells after it stay on
that slide and scroll. ``jupyter nbconvert --to slides`` works on the notebooks as they are.

Offline: nbconvert's decks load reveal.js and MathJax from a CDN by default. This command points them at local
copies instead (``OUT_DIR/node_modules``), which one command installs from the npm registry, once::

    npm install --prefix OUT_DIR reveal.js@4.0.2 mathjax@2.7.9 jquery@3.7.1 requirejs@2.3.7

Without them the deck still opens and shows every slide's content, but without reveal.js navigation and with
TeX source instead of typeset maths.
"""

from __future__ import annotations

import argparse
import pathlib
import re
import sys

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


def write_deck(path, out_dir) -> pathlib.Path:
    """Convert one notebook to ``OUT_DIR/<name>.slides.html`` with local reveal.js/MathJax paths."""
    import nbformat
    from nbconvert.exporters import SlidesExporter

    path, out_dir = pathlib.Path(path), pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    nb = nbformat.read(path, as_version=4)
    add_slide_metadata(nb)
    exporter = SlidesExporter(**LOCAL_URLS)
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": path.stem}})
    target = out_dir / f"{path.stem}.slides.html"
    target.write_text(body, encoding="utf-8")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", help="folder for the decks (created if missing)")
    parser.add_argument("paths", nargs="*", help="notebooks (default: notebooks/[0-9]*.ipynb)")
    args = parser.parse_args(argv)
    paths = args.paths or sorted(pathlib.Path("notebooks").glob("[0-9]*.ipynb"))
    for path in paths:
        print(write_deck(path, args.out_dir))
    if not (pathlib.Path(args.out_dir) / "node_modules" / "reveal.js").is_dir():
        print(f"for offline navigation and maths, once: npm install --prefix {args.out_dir} {NPM_PACKAGES}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
