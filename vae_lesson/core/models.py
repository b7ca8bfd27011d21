r"""The two models of the course: a plain :class:`Autoencoder` and a :class:`VAE`, both small MLPs.

Both work on flattened images ``x`` of shape ``[batch, input_dim]`` with pixels in [0, 1], and both decoders
return **logits** (``x_logits``): ``sigmoid(x_logits)`` are the Bernoulli means $p_\theta(x_d = 1 \mid z)$.

* ``Autoencoder``: ``encode(x) -> z`` is a point, ``[batch, latent_dim]``. There is no distribution over z.
* ``VAE``: ``encode(x) -> (mu, logvar)`` parameterizes
  $q_\phi(z\mid x) = \mathcal N(\mu, \operatorname{diag} e^{\text{logvar}})$;
  the prior is $p(z) = \mathcal N(0, I)$, so ``sample(n)`` can generate.

Losses live in :mod:`vae_lesson.core.bounds`, training in :mod:`vae_lesson.core.training`. Every model keeps its
constructor arguments in ``model.config`` so that :mod:`vae_lesson.core.checkpoint` can rebuild it.

float64 inputs (``torch.tensor(numpy_array)``) are accepted: ``encode`` and ``decode`` cast ``x`` and ``z`` once
to the model's dtype (float32 unless you called ``.double()``). A model is limited to ``MAX_PARAMETERS``
weights, checked before anything is allocated.
"""

from __future__ import annotations

import torch
from torch import nn

from vae_lesson import _checks
from vae_lesson.core.distributions import reparameterize

MAX_PARAMETERS = 2**30  # 4 GiB of float32 weights: far beyond a course model, refused before allocating
MAX_SAMPLE_ELEMENTS = 2**28  # sample(n): n * input_dim decoded pixels at most (1 GiB of float32)


def mlp_parameters(sizes) -> int:
    """The number of weights and biases of :func:`mlp` through ``sizes`` (computed, nothing allocated)."""
    return sum((n_in + 1) * n_out for n_in, n_out in zip(sizes[:-1], sizes[1:]))


def mlp(sizes: tuple[int, ...]) -> nn.Sequential:
    """``Linear -> ReLU -> ... -> Linear`` through the given widths (no activation after the last layer)."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class _LatentModel(nn.Module):
    """Shared constructor checks and helpers of the two MLP models."""

    def __init__(self, input_dim: int, latent_dim: int, hidden_dims=(400,)):
        super().__init__()
        self.input_dim = _checks.integer("input_dim", input_dim, minimum=1)
        self.latent_dim = _checks.integer("latent_dim", latent_dim, minimum=1)
        self.hidden_dims = _checks.dims("hidden_dims", hidden_dims)
        count = self._parameter_count()
        if count > MAX_PARAMETERS:
            _checks.fail("hidden_dims", f"layer widths giving at most {MAX_PARAMETERS} parameters (input_dim="
                         f"{self.input_dim}, latent_dim={self.latent_dim})", f"{list(self.hidden_dims)}: "
                         f"{count:.3g} parameters")
        self.config = {"input_dim": self.input_dim, "latent_dim": self.latent_dim,
                       "hidden_dims": list(self.hidden_dims)}
        self.decoder = mlp((self.latent_dim, *reversed(self.hidden_dims), self.input_dim))

    def _parameter_count(self) -> int:
        sizes = (self.latent_dim, *reversed(self.hidden_dims), self.input_dim)  # the decoder
        return mlp_parameters(sizes) + mlp_parameters((self.input_dim, *self.hidden_dims, self._code_dim()))

    def _check_x(self, x: torch.Tensor, name: str = "x") -> torch.Tensor:
        _checks.tensor(name, x, ndim=2, low=0.0, high=1.0)
        if x.shape[1] != self.input_dim:
            _checks.fail(name, f"shape [batch, {self.input_dim}] (input_dim)", list(x.shape))
        return _checks.model_input(name, x, self)  # float64 data: cast once to the model's dtype

    def _check_z(self, z: torch.Tensor) -> torch.Tensor:
        _checks.tensor("z", z, ndim=(2, 3))
        if z.shape[-1] != self.latent_dim:
            _checks.fail("z", f"shape [batch, {self.latent_dim}] (latent_dim)", list(z.shape))
        return _checks.model_input("z", z, self)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """``z [batch, latent_dim]`` (or ``[k, batch, latent_dim]``) -> ``x_logits [batch, input_dim]`` (or
        ``[k, batch, input_dim]``)."""
        return self.decoder(self._check_z(z))

    def extra_repr(self) -> str:
        return f"input_dim={self.input_dim}, latent_dim={self.latent_dim}, hidden_dims={self.hidden_dims}"


class Autoencoder(_LatentModel):
    r"""A deterministic autoencoder: $x \to z = f_\phi(x) \to \text{logits} = g_\theta(z)$.

    Trained by maximizing the Bernoulli log-likelihood of the reconstruction (i.e. minimizing binary
    cross-entropy). It learns a code, not a distribution: nothing says which ``z`` are "valid", which is
    why sampling ``z ~ N(0, I)`` and decoding gives garbage (notebook 01).
    """

    def __init__(self, input_dim: int, latent_dim: int, hidden_dims=(400,)):
        super().__init__(input_dim, latent_dim, hidden_dims)
        self.encoder = mlp((self.input_dim, *self.hidden_dims, self.latent_dim))

    def _code_dim(self) -> int:
        return self.latent_dim

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """``x [batch, input_dim]`` -> ``z [batch, latent_dim]``."""
        return self.encoder(self._check_x(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruction logits ``[batch, input_dim]``."""
        return self.decode(self.encode(x))

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstructed pixel probabilities ``sigmoid(decode(encode(x)))``, ``[batch, input_dim]``."""
        return torch.sigmoid(self(x))


class GaussianLatentMethods:
    """``forward``, ``reconstruct`` and ``sample`` of any VAE with a Gaussian encoder, a N(0, I) prior and a
    Bernoulli decoder: they need only ``encode(x) -> (mu, logvar)``, ``decode(z) -> x_logits`` and
    ``latent_dim``. Shared by :class:`VAE` and :class:`vae_lesson.variants.conv_vae.ConvVAE`."""

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None):
        """One pass: ``(x_logits, mu, logvar)`` with ``z`` drawn by the reparameterization trick."""
        mu, logvar = self.encode(x)
        z = reparameterize(mu, logvar, generator)  # [batch, latent_dim]
        return self.decode(z), mu, logvar

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Pixel probabilities decoded at the posterior mean, ``sigmoid(decode(mu(x)))``, ``[batch, D]``."""
        mu, _ = self.encode(x)
        return torch.sigmoid(self.decode(mu))

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Ancestral sampling: ``z ~ N(0, I)``, return the decoder's pixel probabilities ``[n, D]``.

        (Probabilities, not binary draws: they are what one shows as "samples" of an MNIST VAE.)
        """
        n = _checks.integer("n", n, minimum=1)
        input_dim = getattr(self, "input_dim", 1)
        if n * input_dim > MAX_SAMPLE_ELEMENTS:
            _checks.fail("n", f"at most {MAX_SAMPLE_ELEMENTS // input_dim} samples at once ({input_dim} pixels "
                         "each; draw several batches for more)", n)
        _checks.generator("generator", generator)
        device = next(self.parameters()).device
        gen_device = generator.device if generator is not None else device
        z = torch.randn(n, self.latent_dim, generator=generator, device=gen_device).to(device)  # [n, latent_dim]
        return torch.sigmoid(self.decode(z))


class VAE(GaussianLatentMethods, _LatentModel):
    r"""A variational autoencoder with Gaussian encoder and Bernoulli decoder.

    * prior $p(z) = \mathcal N(0, I_{\text{latent\_dim}})$;
    * encoder $q_\phi(z \mid x) = \mathcal N(\mu_\phi(x), \operatorname{diag}\exp(\text{logvar}_\phi(x)))$,
      one MLP whose last layer outputs ``2 * latent_dim`` numbers split into ``mu`` and ``logvar``;
    * decoder $p_\theta(x \mid z) = \prod_d \operatorname{Bernoulli}(x_d;\ \operatorname{sigmoid}(g_\theta(z))_d)$.
    """

    def __init__(self, input_dim: int, latent_dim: int, hidden_dims=(400,)):
        super().__init__(input_dim, latent_dim, hidden_dims)
        self.encoder = mlp((self.input_dim, *self.hidden_dims, 2 * self.latent_dim))

    def _code_dim(self) -> int:
        return 2 * self.latent_dim

    def _encode(self, x):
        mu, logvar = self.encoder(x).chunk(2, dim=-1)  # [batch, latent_dim] each
        return mu, logvar

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x [batch, input_dim]`` -> ``(mu, logvar)``, each ``[batch, latent_dim]``."""
        return self._encode(self._check_x(x))
