"""Lecture mode changes figure settings only and reverts; every notebook converts to a deck, one slide a section."""

import pathlib
import re

import matplotlib as mpl
import nbformat
import pytest

from tools.slides import LOCAL_URLS, add_slide_metadata, is_section_start, write_deck
from vae_lesson.views.lecture import LECTURE_RC, lecture_mode

NOTEBOOKS = sorted((pathlib.Path(__file__).parent.parent / "notebooks").glob("[0-9]*.ipynb"))


def test_lecture_mode_enlarges_and_restores():
    before = {key: mpl.rcParams[key] for key in LECTURE_RC}
    try:
        now = lecture_mode()
        assert now["font.size"] == 16 and now["lines.linewidth"] == 3.0
        assert now["font.size"] > before["font.size"]
        lecture_mode()  # switching on twice keeps the saved defaults
        assert lecture_mode(False) == before
    finally:
        mpl.rcParams.update(before)
    with pytest.raises(TypeError, match="on: expected True or False"):
        lecture_mode("yes")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_committed_notebooks_carry_slide_metadata(path):
    nb = nbformat.read(path, as_version=4)
    sections = [c for c in nb.cells if is_section_start(c)]
    assert len(sections) >= 4, f"{path.name}: too few sections for a deck"
    for cell in nb.cells:
        marked = cell.get("metadata", {}).get("slideshow", {}).get("slide_type") == "slide"
        assert marked == is_section_start(cell), f"{path.name}: slide metadata out of date (run the notebook runner)"


def test_add_slide_metadata_marks_headings_only():
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# 01 · Title"),
        nbformat.v4.new_markdown_cell("Some prose with a #hashtag"),
        nbformat.v4.new_code_cell("# a comment, not a heading"),
        nbformat.v4.new_markdown_cell("## 2. A section"),
        nbformat.v4.new_markdown_cell("### a subsection stays on its slide"),
    ])
    assert add_slide_metadata(nb) == 2
    assert [("slideshow" in c.metadata) for c in nb.cells] == [True, False, False, True, False]


@pytest.mark.parametrize("path", [NOTEBOOKS[0], NOTEBOOKS[len(NOTEBOOKS) // 2]], ids=lambda p: p.name)
def test_deck_has_one_slide_per_section_and_no_cdn(tmp_path, path):
    deck = write_deck(path, tmp_path)
    html = deck.read_text()
    sections = sum(is_section_start(c) for c in nbformat.read(path, as_version=4).cells)
    # nbconvert wraps each slide in an outer <section> (a vertical stack) around an inner one
    assert html.count("<section") == 2 * sections
    for url in LOCAL_URLS.values():
        assert url.split("?")[0] in html
    scripts = re.findall(r'<script[^>]+src="([^"]+)"', html)
    assert not [s for s in scripts if s.startswith("http")], scripts
