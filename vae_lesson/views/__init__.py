"""Figures and widgets: pure functions that return matplotlib figures, and thin (any)widget wiring around them.

Not here: any computation a number in a notebook depends on (that lives in the other folders). These modules import
matplotlib and ipywidgets, so ``import vae_lesson`` does not import them.

Modules (import each from its full path, e.g. ``vae_lesson.views.plotting``):

* ``plotting``     -- every notebook: pure functions that return figures (``show_images``, ``plot_history``, ...)
* ``latent_views`` -- notebook 07: latent-space computations and pure figures (``render_*``, ``lerp``, ``slerp``,
  activity)
* ``widgets``      -- notebook 07: the explorers (sliders, plane, interpolation, posterior viewer), thin wiring
  around ``latent_views``
* ``pointer``      -- notebook 07: the anywidget classes behind the explorers that follow the pointer (the figure is
  drawn once; a click or drag only decodes)
* ``drawing``      -- notebook 07: draw a digit and watch its q(z|x) move on the latent plane
* ``browser_code`` -- the JavaScript those widgets run in the browser (no build step)
* ``diffusion_view`` -- notebook 16: a slider over the steps t of a diffusion model
* ``lecture``      -- instructors: ``lecture_mode()``: projector-sized figures
"""
