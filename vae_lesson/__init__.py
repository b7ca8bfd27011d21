"""vae_lesson: the small, tested helper package behind the VAE course notebooks.

Conventions: log-densities, bounds and KLs are in **nats, per example** (``[batch]``), summed over data and
latent dimensions; Gaussians are given by ``mu`` and ``logvar`` (log-variance); images are float tensors in
[0, 1] flattened to ``[batch, D]``. Start a session with ``generator = seed_everything(0)``.

Modules (one idea each): ``distributions`` (reparameterize, KL, likelihoods), ``models`` (Autoencoder, VAE),
``bounds`` (ELBO, IWAE), ``linear_gaussian`` (exact probabilistic PCA), ``data`` and ``idx`` (offline data),
``training`` (fit, evaluate), ``checkpoint`` (safe save/load), ``plotting``, ``seed``.
"""

from .bounds import ELBOTerms, elbo, iwae_bound, iwae_log_weights, reconstruction_terms
from .checkpoint import load_checkpoint, register_model, save_checkpoint
from .data import load_digits, load_mnist
from .diagnostics import nearest_neighbour_distance
from .distributions import bernoulli_log_likelihood, gaussian_kl, gaussian_log_likelihood, reparameterize
from .idx import read_idx
from .linear_gaussian import LinearGaussian
from .models import VAE, Autoencoder
from .plotting import plot_history, plot_latent_scatter, show_images, show_latent_grid
from .seed import seed_everything
from .training import History, evaluate, fit

__version__ = "0.1.0"

__all__ = [
    "ELBOTerms", "History", "LinearGaussian", "VAE", "Autoencoder",
    "bernoulli_log_likelihood", "elbo", "evaluate", "fit", "gaussian_kl", "gaussian_log_likelihood",
    "iwae_bound", "iwae_log_weights", "load_checkpoint", "load_digits", "load_mnist", "read_idx",
    "reconstruction_terms", "register_model", "reparameterize", "save_checkpoint", "seed_everything",
    "nearest_neighbour_distance", "show_images", "plot_history", "plot_latent_scatter", "show_latent_grid",
]
