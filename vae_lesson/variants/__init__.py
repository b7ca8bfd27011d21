"""One module per VAE variant of notebooks 09-13, each with its objective, model and widgets.

Not here: what every VAE shares (``core``); a variant calls it.

Modules (import each from its full path, e.g. ``vae_lesson.variants.beta_vae``):

* ``beta_vae``      -- notebook 09: rate-distortion sweeps, latent traversals, the beta switcher widget
* ``cvae``          -- notebook 10: ``ConditionalVAE``, its ELBO, training and widgets
* ``iwae_training`` -- notebook 11: training on the k-sample bound, effective sample size, posterior spread
* ``vq_vae``        -- notebook 12: ``VQVAE``, its objective and bound, categorical and autoregressive priors,
  perplexity
* ``conv_vae``      -- notebook 13: ``ConvVAE``: the same interface as ``VAE``, convolutional networks
"""
