"""vae_lesson: the small, tested helper package behind the VAE course notebooks.

Conventions: log-densities, bounds and KLs are in **nats, per example** (``[batch]``), summed over data and
latent dimensions; Gaussians are given by ``mu`` and ``logvar`` (log-variance); images are float tensors in
[0, 1] flattened to ``[batch, D]``. Start a session with ``generator = seed_everything()``.

The folders show the course's architecture (the README's module map gives each module's notebook):

* ``core/`` (distributions, models, bounds, training, checkpoint, data, idx, seed, units) -- what every VAE is made
  of: the formulas, the models, the bounds, training, data, seeding and units.
* ``theory/`` (toy, quadrature, linear_gaussian, estimators, elbo_study, noisy_autoencoder) -- small models where
  every quantity is exact, to study the ideas before training a VAE (notebooks 02-05).
* ``analysis/`` (evaluation, collapse, diagnostics) -- measuring a trained VAE: log-likelihood estimates, gaps,
  posterior collapse, and yardsticks for generated images.
* ``variants/`` (beta_vae, cvae, iwae_training, vq_vae, conv_vae) -- one module per VAE variant of notebooks 09-13,
  each with its objective, model and widgets.
* ``views/`` (plotting, latent_views, widgets, lecture) -- figures and widgets: pure functions that return
  matplotlib figures, and thin ipywidgets wiring around them.

This top level holds only the stable contract (``__all__``): the names the README and the notebooks import from
``vae_lesson`` itself. Everything else is imported from its module's full path, e.g.
``from vae_lesson.views.plotting import show_images``. ``import vae_lesson`` imports torch and ``core`` only: no
matplotlib, no ipywidgets. Course tooling (notebook runner, benchmark, results table, slides, student copies)
is not part of this package: it lives in ``tools/``.
"""

from vae_lesson.core.bounds import ELBOTerms, elbo, iwae_bound, iwae_log_weights, reconstruction_terms
from vae_lesson.core.checkpoint import load_checkpoint, register_model, save_checkpoint
from vae_lesson.core.data import load_digits, load_mnist
from vae_lesson.core.distributions import bernoulli_log_likelihood, gaussian_kl, gaussian_log_likelihood, reparameterize
from vae_lesson.core.idx import read_idx
from vae_lesson.core.models import VAE, Autoencoder
from vae_lesson.core.seed import seed_everything
from vae_lesson.core.training import History, evaluate, fit
from vae_lesson.core.units import bits_per_dim, implied_beta, nats_to_bits
from vae_lesson.theory.linear_gaussian import LinearGaussian

__version__ = "0.1.0"

__all__ = [
    "reparameterize", "gaussian_kl", "bernoulli_log_likelihood", "gaussian_log_likelihood", "Autoencoder", "VAE",
    "ELBOTerms", "elbo", "iwae_bound", "iwae_log_weights", "reconstruction_terms", "History", "fit", "evaluate",
    "load_mnist", "load_digits", "read_idx", "seed_everything", "save_checkpoint", "load_checkpoint",
    "register_model", "bits_per_dim", "nats_to_bits", "implied_beta", "LinearGaussian",
]
