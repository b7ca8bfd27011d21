"""One module per VAE variant of notebooks 09-16, each with its objective, model and widgets.

Not here: what every VAE shares (``core``); a variant calls it.

Modules (import each from its full path, e.g. ``vae_lesson.variants.beta_vae``):

* ``beta_vae``      -- notebook 09: rate-distortion sweeps, latent traversals, the beta switcher widget
* ``cvae``          -- notebook 10: ``ConditionalVAE``, its ELBO, training and widgets
* ``iwae_training`` -- notebook 11: training on the k-sample bound, effective sample size, posterior spread
* ``vq_vae``        -- notebook 12: ``VQVAE``, its objective and bound, categorical and autoregressive priors,
  perplexity
* ``conv_vae``      -- notebook 13: ``ConvVAE``: the same interface as ``VAE``, convolutional networks
* ``decoders``      -- notebook 14: the decoder's distribution (Bernoulli, continuous Bernoulli, Gaussian with fixed
  or learned sigma) and discrete likelihoods of 8-bit data in bits/dim
* ``learned_priors`` -- notebook 15: MoG prior and VampPrior, Monte Carlo KL, IWAE, KL split and hole maps
* ``hierarchical``  -- notebook 15: a two-level top-down VAE, its ELBO term by term, active units per layer
* ``diffusion``     -- notebook 16: a diffusion model as a hierarchical VAE with a fixed encoder, its sampled-step
  objective and full bound
"""
