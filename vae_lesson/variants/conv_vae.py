r"""A VAE with a convolutional encoder and a transposed-convolutional decoder, the interface of ``vae_lesson.VAE``.

The probabilistic model is exactly the one of :class:`vae_lesson.VAE`: prior $p(z) = \mathcal N(0, I)$, encoder
$q_\phi(z\mid x) = \mathcal N(\mu_\phi(x), \operatorname{diag} e^{\text{logvar}_\phi(x)})$, decoder
$p_\theta(x\mid z) = \prod_d \operatorname{Bernoulli}(x_d;\ \operatorname{sigmoid}(\ell_\theta(z)_d))$. Only the two
networks change. With ``channels=(16, 32)`` and 28 x 28 images:

    encoder  x [B, 784] -> [B, 1, 28, 28] -conv 4x4/2-> [B, 16, 14, 14] -conv 4x4/2-> [B, 32, 7, 7]
             -> flatten [B, 1568] -linear-> [B, 2 * latent_dim] = (mu, logvar)
    decoder  z [B, latent_dim] -linear-> [B, 1568] -> [B, 32, 7, 7] -convT 4x4/2-> [B, 16, 14, 14]
             -convT 4x4/2-> [B, 1, 28, 28] -> x_logits [B, 784]

(ReLU after every layer but the last of each network.) Each stride-2 convolution halves the side, each transposed
convolution doubles it, so the image side must be divisible by $2^{\text{len(channels)}}$.

Because ``encode(x [batch, D]) -> (mu, logvar)`` and ``decode(z [..., latent_dim]) -> x_logits [..., D]`` reshape
inside, :func:`vae_lesson.elbo`, :func:`vae_lesson.iwae_bound`, :func:`vae_lesson.fit` and
:func:`vae_lesson.evaluate` work unchanged, and numbers are in the same units (nats per example, summed over
pixels). Not here: any change to the objective.
"""

from __future__ import annotations

import torch
from torch import nn

from vae_lesson import _checks
from vae_lesson.core.checkpoint import register_model
from vae_lesson.core.models import GaussianLatentMethods


@register_model
class ConvVAE(GaussianLatentMethods, nn.Module):
    r"""A VAE whose encoder and decoder are small convolutional networks (see the module docstring for the layers).

    * ``image_side``: images are ``image_side x image_side`` (28 for MNIST), flattened to ``D = image_side**2``;
    * ``latent_dim``: size of $z$;
    * ``channels``: channels after each stride-2 convolution, e.g. ``(16, 32)``; the decoder mirrors them.

    ``encode(x [batch, D]) -> (mu, logvar)``, each ``[batch, latent_dim]``; ``decode(z [..., latent_dim]) ->
    x_logits [..., D]``; ``sample(n, generator)`` and ``reconstruct(x)`` as for :class:`vae_lesson.VAE`.
    """

    def __init__(self, image_side: int = 28, latent_dim: int = 20, channels=(16, 32)):
        super().__init__()
        self.image_side = _checks.integer("image_side", image_side, minimum=2)
        self.latent_dim = _checks.integer("latent_dim", latent_dim, minimum=1)
        self.channels = _checks.dims("channels", channels)
        if not self.channels:
            _checks.fail("channels", "at least one convolution, e.g. (16, 32)", "an empty sequence")
        factor = 2 ** len(self.channels)
        if self.image_side % factor:
            _checks.fail("image_side", f"a multiple of {factor} (each of the {len(self.channels)} convolutions "
                         "halves the side)", self.image_side)
        self.input_dim = self.image_side**2
        self.config = {"image_side": self.image_side, "latent_dim": self.latent_dim, "channels": list(self.channels)}
        self.bottom_side = self.image_side // factor  # 7 for 28 x 28 and two convolutions
        flat = self.channels[-1] * self.bottom_side**2  # 1568 for (16, 32)

        layers: list[nn.Module] = []
        for c_in, c_out in zip((1, *self.channels[:-1]), self.channels):
            layers += [nn.Conv2d(c_in, c_out, kernel_size=4, stride=2, padding=1), nn.ReLU()]
        self.encoder = nn.Sequential(*layers, nn.Flatten(), nn.Linear(flat, 2 * self.latent_dim))

        layers = [nn.Linear(self.latent_dim, flat), nn.ReLU(),
                  nn.Unflatten(1, (self.channels[-1], self.bottom_side, self.bottom_side))]
        widths = (*reversed(self.channels), 1)
        for i, (c_in, c_out) in enumerate(zip(widths[:-1], widths[1:])):
            layers.append(nn.ConvTranspose2d(c_in, c_out, kernel_size=4, stride=2, padding=1))
            if i < len(widths) - 2:
                layers.append(nn.ReLU())
        self.decoder = nn.Sequential(*layers)

    def extra_repr(self) -> str:
        return f"image_side={self.image_side}, latent_dim={self.latent_dim}, channels={self.channels}"

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x [batch, D]`` (pixels in [0, 1]) -> ``(mu, logvar)``, each ``[batch, latent_dim]``."""
        _checks.tensor("x", x, ndim=2, low=0.0, high=1.0)
        if x.shape[1] != self.input_dim:
            _checks.fail("x", f"shape [batch, {self.input_dim}] (image_side**2)", list(x.shape))
        x = _checks.model_input("x", x, self)  # float64 data: cast once to the model's dtype
        images = x.reshape(-1, 1, self.image_side, self.image_side)  # [batch, 1, side, side]
        mu, logvar = self.encoder(images).chunk(2, dim=-1)  # [batch, latent_dim] each
        return mu, logvar

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """``z [..., latent_dim]`` (e.g. ``[batch, d]`` or ``[k, batch, d]``) -> ``x_logits [..., D]``."""
        _checks.tensor("z", z, ndim=(2, 3))
        if z.shape[-1] != self.latent_dim:
            _checks.fail("z", f"shape [batch, {self.latent_dim}] (latent_dim)", list(z.shape))
        z = _checks.model_input("z", z, self)
        lead = z.shape[:-1]
        images = self.decoder(z.reshape(-1, self.latent_dim))  # [prod(lead), 1, side, side]
        return images.reshape(*lead, self.input_dim)  # [..., D]
