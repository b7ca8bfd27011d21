"""Small models where every quantity is exact, to study the ideas before training a VAE (notebooks 02-05, and
the diffusion toy of notebook 16).

Not here: anything used to train or evaluate a real VAE (``core``, ``analysis``).

Modules (import each from its full path, e.g. ``vae_lesson.theory.toy``):

* ``toy``               -- notebooks 02-04: toy latent variable models (spiral, fold, linear) small enough to
  compute exactly
* ``quadrature``        -- notebooks 02-04: exact p(x), p(z|x) and ELBO by quadrature; naive and importance-sampling
  estimates of p(x)
* ``linear_gaussian``   -- notebooks 03-04: ``LinearGaussian(W, b, sigma)``: probabilistic PCA, every quantity in
  closed form
* ``estimators``        -- notebook 05: score-function vs reparameterized gradients and their variance
* ``elbo_study``        -- notebook 04: gradient ascent on an exact ELBO, the best mean-field q, Monte Carlo KL/ELBO
  checks
* ``noisy_autoencoder`` -- notebook 05: the "autoencoder + noise" experiment: why a VAE needs its KL term
* ``diffusion_toy``     -- notebook 16: the variance-preserving chain, q(z_{t-1} | z_t, x), per-step KLs; a one-pixel
  toy with exact ELBO and log p(x) by quadrature
"""
