"""What every VAE is made of: the formulas, the models, the bounds, training, data, seeding and units.

Not here: anything a single notebook studies (``theory``), measures (``analysis``) or varies (``variants``), and no
figures (``views``). ``import vae_lesson`` imports these modules (and ``theory.linear_gaussian``) and nothing
heavier: no matplotlib, no ipywidgets.

Modules (import each from its full path, e.g. ``vae_lesson.core.distributions``):

* ``distributions`` -- notebooks 04-06: ``reparameterize``, ``gaussian_kl``, ``bernoulli_log_likelihood``,
  ``gaussian_log_likelihood``: the four formulas every VAE is made of
* ``models``        -- notebooks 01, 06: ``Autoencoder``, ``VAE`` (MLP encoder/decoder; ``decode`` returns logits;
  ``VAE.sample``)
* ``bounds``        -- notebooks 04, 06, 08: ``elbo(model, x, n_samples)`` -> ``ELBOTerms`` (``elbo``,
  ``reconstruction``, ``kl``); ``iwae_bound(model, x, k)`` (chunked), ``iwae_log_weights``; the one copy of each
  formula, ``elbo_from_q`` and ``log_importance_weights`` (any diagonal Gaussian q, any decoder); ``Objective``
  (a per-example loss and named terms, for objectives that are not the ELBO)
* ``training``      -- notebooks 01, 06: ``fit(model, X, ...)`` (in memory, Adam, beta, KL warm-up, validation,
  ``History`` of named series), ``evaluate``, ``objective_loss``
* ``checkpoint``    -- notebook 06: ``save_checkpoint`` / ``load_checkpoint`` (state dict + config,
  ``weights_only=True``)
* ``data``          -- notebook 00: ``load_mnist(split)`` (bundled subset, or ``source=`` a folder of IDX files),
  ``load_digits(split)``
* ``idx``           -- notebook 00: ``read_idx``: the IDX format of the original MNIST files
* ``seed``          -- notebook 00: ``seed_everything()``: the one place that seeds and sets the thread count
* ``units``         -- notebook 06: ``bits_per_dim``, ``nats_to_bits``, ``implied_beta`` (the beta a "mean" loss
  hides)
"""
