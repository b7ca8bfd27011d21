r"""Toy latent variable models, small enough that *every* quantity can be computed (notebooks 02-04).

The generative story of a VAE, with a fixed non-linear decoder $f$ instead of a neural network:

$$z \sim p(z) = \mathcal N(0, I_d), \qquad x \mid z \sim p(x \mid z) = \mathcal N\big(f(z),\ \sigma^2 I_D\big).$$

With a latent of dimension $d \le 2$ the marginal likelihood $p(x) = \int p(x\mid z)\,p(z)\,dz$ and the
posterior $p(z \mid x) = p(x\mid z)\,p(z)/p(x)$ can be computed on a grid: that lives in
:mod:`vae_lesson.theory.quadrature`. This module only holds the models. It is *not* a trainable model (nothing here
has parameters to learn) and not meant for images: it is a microscope for the maths.

API (everything in float64, log-densities in nats):

* ``ToyModel(decoder, latent_dim, data_dim, sigma, name="custom")``, with
  ``decode(z) [..., d] -> [..., D]``, ``log_prior(z) -> [...]``, ``log_likelihood(x, z)`` and
  ``log_joint(x, z)`` (``x [batch, D]``, ``z [..., d]`` broadcast like torch: ``z [batch, d] -> [batch]``,
  ``z [k, batch, d] -> [k, batch]``, a grid ``z [G, 1, d] -> [G, batch]``), ``sample(n, generator) -> (x, z)``;
* ``spiral_model(sigma=0.1)``: $d = 1$, $D = 2$; $f(z) = e^{0.3z}(\cos 2z, \sin 2z)$, a spiral;
* ``fold_model(sigma=0.2)``: $d = 2$, $D = 2$; $f(z) = (z_1,\ z_2^2 + 0.5 z_1 - 1)$, a sheet folded in two;
* ``ToyModel.from_linear_gaussian(linear)``: the same story with $f(z) = Wz + b$, whose exact answers
  :class:`~vae_lesson.theory.linear_gaussian.LinearGaussian` knows in closed form (the reference of the tests).

Quadrature and Monte Carlo (in :mod:`vae_lesson.theory.quadrature`): ``log_marginal_quadrature``,
``posterior_on_grid``, ``elbo_quadrature``, ``naive_mc_log_marginal``, ``importance_sampling_log_marginal``,
``relative_error``, ``naive_mc_relative_std``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from vae_lesson import _checks
from vae_lesson.theory.linear_gaussian import LinearGaussian

LOG_2PI = math.log(2 * math.pi)

SPIRAL_GROWTH = 0.3  # the spiral's radius is exp(SPIRAL_GROWTH * z)
SPIRAL_TURN_RATE = 2.0  # its angle is SPIRAL_TURN_RATE * z radians
FOLD_TILT = 0.5  # fold_model: x2 = z2^2 + FOLD_TILT * z1 - 1


class ToyModel:
    r"""$p(z) = \mathcal N(0, I_d)$, $p(x\mid z) = \mathcal N(f(z), \sigma^2 I_D)$ with a fixed decoder $f$.

    ``decoder`` maps a float64 tensor ``z [..., latent_dim]`` to ``[..., data_dim]``. All methods work in float64.
    """

    def __init__(self, decoder: Callable[[torch.Tensor], torch.Tensor], latent_dim: int, data_dim: int,
                 sigma: float, name: str = "custom"):
        if not callable(decoder):
            _checks.fail("decoder", "a function z [..., d] -> f(z) [..., D]", type(decoder).__name__, TypeError)
        self.decoder = decoder
        self.latent_dim = _checks.integer("latent_dim", latent_dim, minimum=1)
        self.data_dim = _checks.integer("data_dim", data_dim, minimum=1)
        self.sigma = _checks.number("sigma", sigma, positive=True)
        self.name = str(name)

    def __repr__(self) -> str:
        return f"ToyModel({self.name!r}, d={self.latent_dim}, D={self.data_dim}, sigma={self.sigma:g})"

    @classmethod
    def from_linear_gaussian(cls, linear: LinearGaussian) -> ToyModel:
        """The same model as ``linear`` (decoder $f(z) = Wz + b$), to run quadrature or Monte Carlo on it."""
        if not isinstance(linear, LinearGaussian):
            _checks.fail("linear", "a vae_lesson.LinearGaussian", type(linear).__name__, TypeError)
        W, b = linear.W, linear.b
        return cls(lambda z: z @ W.T + b, linear.latent_dim, linear.data_dim, linear.sigma, name="linear")

    def _check_z(self, z: torch.Tensor) -> torch.Tensor:
        _checks.tensor("z", z, ndim=tuple(range(1, 8)))
        if z.shape[-1] != self.latent_dim:
            _checks.fail("z", f"shape [..., {self.latent_dim}] (latent_dim)", list(z.shape))
        return z.double()

    def _check_x(self, x: torch.Tensor) -> torch.Tensor:
        _checks.tensor("x", x, ndim=2)
        if x.shape[1] != self.data_dim:
            _checks.fail("x", f"shape [batch, {self.data_dim}] (data_dim)", list(x.shape))
        return x.double()

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """The decoder's mean $f(z)$: ``z [..., d]`` -> ``[..., D]``, float64."""
        z = self._check_z(z)
        mean = self.decoder(z)
        if not isinstance(mean, torch.Tensor) or mean.shape != (*z.shape[:-1], self.data_dim):
            _checks.fail("decoder", f"to return shape {[*z.shape[:-1], self.data_dim]} for z of shape "
                         f"{list(z.shape)}", getattr(mean, "shape", type(mean).__name__))
        return mean.double()

    def log_prior(self, z: torch.Tensor) -> torch.Tensor:
        r"""$\log p(z) = -\tfrac12\big(d\log 2\pi + \lVert z\rVert^2\big)$: ``z [..., d]`` -> ``[...]``, nats."""
        z = self._check_z(z)
        return -0.5 * (self.latent_dim * LOG_2PI + z.pow(2).sum(-1))

    def _log_likelihood_of_mean(self, x: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
        s2 = self.sigma**2
        return -0.5 * (self.data_dim * math.log(2 * math.pi * s2) + (x - mean).pow(2).sum(-1) / s2)

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        r"""$\log p(x\mid z) = -\tfrac D2 \log(2\pi\sigma^2) - \lVert x - f(z)\rVert^2 / 2\sigma^2$, nats.

        ``x [batch, D]``; ``z [..., d]`` whose leading dimensions broadcast against ``[batch]`` (torch rules):
        ``z [batch, d]`` -> ``[batch]``; ``z [k, batch, d]`` -> ``[k, batch]``; ``z [G, 1, d]`` -> ``[G, batch]``.
        """
        x = self._check_x(x)
        mean = self.decode(z)  # [..., D]
        try:
            torch.broadcast_shapes(mean.shape, x.shape)
        except RuntimeError:
            _checks.fail("z", f"leading dimensions that broadcast against x's batch {[x.shape[0]]}", list(z.shape))
        return self._log_likelihood_of_mean(x, mean)

    def log_joint(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        r"""$\log p(x, z) = \log p(x\mid z) + \log p(z)$; shapes as :meth:`log_likelihood`, nats."""
        return self.log_likelihood(x, z) + self.log_prior(z)

    def sample(self, n: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Ancestral sampling: $z \\sim p(z)$, then $x \\sim p(x\\mid z)$. Returns ``(x [n, D], z [n, d])``."""
        n = _checks.integer("n", n, minimum=1)
        _checks.generator("generator", generator)
        z = torch.randn(n, self.latent_dim, generator=generator, dtype=torch.float64)  # [n, d]
        noise = torch.randn(n, self.data_dim, generator=generator, dtype=torch.float64)  # [n, D]
        return self.decode(z) + self.sigma * noise, z


def _spiral(z: torch.Tensor) -> torch.Tensor:
    radius = torch.exp(SPIRAL_GROWTH * z[..., 0])  # [...]
    angle = SPIRAL_TURN_RATE * z[..., 0]  # [...]
    return torch.stack([radius * torch.cos(angle), radius * torch.sin(angle)], dim=-1)  # [..., 2]


def _fold(z: torch.Tensor) -> torch.Tensor:
    z1, z2 = z[..., 0], z[..., 1]
    return torch.stack([z1, z2.pow(2) + FOLD_TILT * z1 - 1.0], dim=-1)  # [..., 2]


def spiral_model(sigma: float = 0.1) -> ToyModel:
    r"""A 1-D latent rolled into a 2-D spiral: $f(z) = e^{0.3 z}(\cos 2z,\ \sin 2z)$, noise ``sigma``.

    Over the prior's bulk ($|z| < 3$) the curve turns about twice around the origin; each turn is
    $e^{0.3\pi} \approx 2.6$ times wider than the previous one. Points between two arms have a two-peaked posterior.
    """
    return ToyModel(_spiral, latent_dim=1, data_dim=2, sigma=sigma, name="spiral")


def fold_model(sigma: float = 0.2) -> ToyModel:
    r"""A 2-D latent plane folded onto itself: $f(z) = (z_1,\ z_2^2 + 0.5 z_1 - 1)$, noise ``sigma``.

    $z$ and its mirror image $(z_1, -z_2)$ decode to the same point, so every posterior is symmetric in $z_2$:
    two peaks above the fold line $x_2 = 0.5x_1 - 1$, one stretched peak below it.
    """
    return ToyModel(_fold, latent_dim=2, data_dim=2, sigma=sigma, name="fold")
