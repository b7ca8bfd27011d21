"""vae_lesson: the small, tested helper package behind the VAE course notebooks.

Conventions: log-densities, bounds and KLs are in **nats, per example** (``[batch]``), summed over data and
latent dimensions; Gaussians are given by ``mu`` and ``logvar`` (log-variance); images are float tensors in
[0, 1] flattened to ``[batch, D]``. Start a session with ``generator = seed_everything(0)``.

Modules (one idea each), in the order the course meets them:

* ``distributions`` -- reparameterize, Gaussian KL, Bernoulli and Gaussian log-likelihoods;
* ``models`` -- Autoencoder, VAE; ``bounds`` -- ELBO, IWAE; ``training`` -- fit, evaluate; ``optim`` -- its Adam;
* ``toy``, ``quadrature`` -- toy latent variable models where p(x) and p(z|x) are computed exactly (02-04);
* ``linear_gaussian`` -- probabilistic PCA, every quantity in closed form (04);
* ``elbo_study`` -- gradient ascent on an ELBO, the best mean-field q (04);
* ``estimators``, ``noisy_autoencoder`` -- score-function vs reparameterized gradients; "AE + noise" (05);
* ``units`` -- nats, bits per dimension, the beta hidden in a "mean" loss (06);
* ``latent_views``, ``widgets`` -- pure latent-space figures and the ipywidgets explorers built on them (07);
* ``evaluation``, ``collapse`` -- IWAE curves, amortization gap, KL per dimension, active units, free bits (08);
* variants, one module each: ``beta_vae`` (09), ``cvae`` (10), ``iwae_training`` (11), ``vq_vae`` (12),
  ``conv_vae`` (13); ``results`` regenerates the course's results table; ``bench`` times ``fit``;
* ``lecture``, ``slides``, ``student`` -- projector mode, offline slide decks, student copies of the notebooks;
* ``data``, ``idx`` -- offline data; ``checkpoint`` -- safe save/load; ``seed`` -- the one place for RNG/threads;
* ``plotting``, ``diagnostics`` -- pure figure functions; yardsticks for generated images.
"""

from .beta_vae import RateDistortion, beta_switcher, latent_traversal, plot_rate_distortion, rate_distortion
from .bounds import ELBOTerms, elbo, iwae_bound, iwae_log_weights, reconstruction_terms
from .checkpoint import load_checkpoint, register_model, save_checkpoint
from .collapse import ActiveUnits, active_units, free_bits_objective, kl_per_dimension, kl_terms
from .conv_vae import ConvVAE
from .cvae import (
    ConditionalVAE,
    conditional_elbo,
    conditional_sliders,
    elbo_per_label,
    evaluate_conditional,
    fit_conditional,
    style_transfer,
)
from .data import load_digits, load_mnist
from .diagnostics import frechet_distance, nearest_neighbour_distance, pca_basis
from .distributions import bernoulli_log_likelihood, gaussian_kl, gaussian_log_likelihood, reparameterize
from .elbo_study import ELBOAscent, ascend_elbo, mean_field_optimum, monte_carlo_elbo, monte_carlo_kl
from .estimators import (
    GradientSpread,
    encoder_gradient,
    gradient_variance,
    reparameterized_gradient,
    score_function_gradient,
)
from .evaluation import elbo_with_q, iwae_curve, optimise_local_posterior
from .idx import read_idx
from .iwae_training import effective_sample_size, iwae_objective, posterior_spread
from .latent_views import (
    aggregate_log_density,
    decoded_pixels,
    latent_activity,
    lerp,
    render_aggregate_posterior,
    render_decoded,
    render_interpolation,
    render_latent_plane,
    render_posterior,
    slerp,
)
from .lecture import lecture_mode
from .linear_gaussian import LinearGaussian
from .models import VAE, Autoencoder
from .noisy_autoencoder import NoisyAutoencoder, aggregate_kl, code_summary, distance_to_codes, prior_coverage
from .plotting import plot_history, plot_latent_scatter, show_images, show_latent_grid, show_panels
from .quadrature import (
    elbo_quadrature,
    importance_sampling_log_marginal,
    log_marginal_quadrature,
    naive_mc_log_marginal,
    posterior_on_grid,
    relative_error,
)
from .seed import seed_everything
from .toy import ToyModel, fold_model, spiral_model
from .training import History, evaluate, fit
from .units import bits_per_dim, implied_beta, nats_to_bits
from .vq_vae import VQVAE, AutoregressivePrior, CategoricalPrior, code_usage, perplexity, vq_bound, vq_objective
from .widgets import (
    LatentInterpolation,
    LatentPlane,
    LatentSliders,
    PosteriorViewer,
    latent_interpolation,
    latent_plane,
    latent_sliders,
    posterior_viewer,
)

__version__ = "0.1.0"

__all__ = [
    # the contract of COURSE.md
    "reparameterize", "gaussian_kl", "bernoulli_log_likelihood", "gaussian_log_likelihood",
    "Autoencoder", "VAE", "elbo", "iwae_bound", "LinearGaussian", "load_mnist", "load_digits", "fit",
    "seed_everything", "save_checkpoint", "load_checkpoint",
    # training, bounds, data, checkpoints
    "ELBOTerms", "History", "evaluate", "iwae_log_weights", "reconstruction_terms", "read_idx", "register_model",
    # figures and yardsticks
    "show_images", "show_panels", "plot_history", "plot_latent_scatter", "show_latent_grid",
    "nearest_neighbour_distance", "frechet_distance", "pca_basis",
    # theory arc: toys and quadrature (02-04), ELBO studies (04), estimators and AE + noise (05)
    "ToyModel", "spiral_model", "fold_model", "log_marginal_quadrature", "posterior_on_grid", "elbo_quadrature",
    "naive_mc_log_marginal", "importance_sampling_log_marginal", "relative_error",
    "ELBOAscent", "ascend_elbo", "mean_field_optimum", "monte_carlo_elbo", "monte_carlo_kl",
    "GradientSpread", "reparameterized_gradient", "score_function_gradient", "encoder_gradient", "gradient_variance",
    "NoisyAutoencoder", "aggregate_kl", "code_summary", "distance_to_codes", "prior_coverage",
    # practice arc: units (06), latent views and widgets (07), evaluation and collapse (08)
    "bits_per_dim", "implied_beta", "nats_to_bits",
    "aggregate_log_density", "decoded_pixels", "latent_activity", "lerp", "slerp", "render_aggregate_posterior",
    "render_decoded", "render_interpolation", "render_latent_plane", "render_posterior",
    "LatentSliders", "LatentPlane", "LatentInterpolation", "PosteriorViewer",
    "latent_sliders", "latent_plane", "latent_interpolation", "posterior_viewer",
    "iwae_curve", "elbo_with_q", "optimise_local_posterior",
    "ActiveUnits", "active_units", "free_bits_objective", "kl_per_dimension", "kl_terms",
    # variants: beta-VAE (09), conditional VAE (10), IWAE training (11), VQ-VAE (12), convolutional VAE (13)
    "RateDistortion", "rate_distortion", "plot_rate_distortion", "latent_traversal", "beta_switcher",
    "ConditionalVAE", "conditional_elbo", "conditional_sliders", "elbo_per_label", "evaluate_conditional",
    "fit_conditional", "style_transfer",
    "iwae_objective", "effective_sample_size", "posterior_spread",
    "VQVAE", "vq_objective", "vq_bound", "CategoricalPrior", "AutoregressivePrior", "perplexity", "code_usage",
    "ConvVAE",
    # classroom
    "lecture_mode",
]
