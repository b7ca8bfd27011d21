"""Lecture mode: one switch that makes every figure readable from the back of a lecture hall.

    from vae_lesson.views.lecture import lecture_mode
    lecture_mode()        # larger fonts, thicker lines, bigger figures for a projector
    lecture_mode(False)   # back to the defaults

It changes matplotlib's ``rcParams`` only (figures drawn afterwards), nothing that a computation depends on, so
a notebook prints the same numbers in either mode. Slides of each notebook: see :mod:`tools.slides`.
"""

from __future__ import annotations

import matplotlib as mpl

LECTURE_RC = {
    "font.size": 16,
    "axes.titlesize": 18,
    "axes.labelsize": 17,
    "xtick.labelsize": 14,
    "ytick.labelsize": 14,
    "legend.fontsize": 14,
    "figure.titlesize": 19,
    "lines.linewidth": 3.0,
    "lines.markersize": 9,
    "axes.linewidth": 1.6,
    "figure.dpi": 110,
}
_saved: dict | None = None


def lecture_mode(on: bool = True) -> dict:
    """Switch projector-friendly figure settings on (default) or back off; returns the settings now in force."""
    global _saved
    if not isinstance(on, bool):
        raise TypeError(f"on: expected True or False, got {on!r}")
    if on and _saved is None:
        _saved = {key: mpl.rcParams[key] for key in LECTURE_RC}
        mpl.rcParams.update(LECTURE_RC)
    elif not on and _saved is not None:
        mpl.rcParams.update(_saved)
        _saved = None
    return {key: mpl.rcParams[key] for key in LECTURE_RC}
