"""Measuring a trained VAE: log-likelihood estimates, gaps, posterior collapse, and yardsticks for generated images.

Not here: training (``core``) and figures (``views``).

Modules (import each from its full path, e.g. ``vae_lesson.analysis.evaluation``):

* ``evaluation``  -- notebook 08: IWAE-vs-k curves, the ELBO of any q, per-example q (amortization gap)
* ``collapse``    -- notebook 08: KL per dimension, active units, free bits
* ``diagnostics`` -- notebooks 01, 06, 12, 13: yardsticks for generated images (nearest-neighbour and PCA Fréchet
  distances)
"""
