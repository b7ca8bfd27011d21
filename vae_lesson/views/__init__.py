"""Figures and widgets: pure functions that return matplotlib figures, and thin ipywidgets wiring around them.

Not here: any computation a number in a notebook depends on (that lives in the other folders). These modules import
matplotlib and ipywidgets, so ``import vae_lesson`` does not import them.

Modules (import each from its full path, e.g. ``vae_lesson.views.plotting``):

* ``plotting``     -- every notebook: pure functions that return figures (``show_images``, ``plot_history``, ...)
* ``latent_views`` -- notebook 07: latent-space computations and pure figures (``render_*``, ``lerp``, ``slerp``,
  activity)
* ``widgets``      -- notebook 07: the four ipywidgets explorers, thin wiring around ``latent_views``
* ``lecture``      -- instructors: ``lecture_mode()``: projector-sized figures
"""
