r"""A small diffusion model on MNIST, built and trained as a hierarchical VAE with a fixed encoder.

Latents $z_1, \dots, z_T$ (each ``[batch, 784]``); the **encoder is fixed**, $q(z_t\mid x) = \mathcal N(\alpha_t x,
\sigma_t^2 I)$ (:mod:`vae_lesson.theory.diffusion_toy`), nothing in it is learned. The **decoder** is learned:
a prior $p(z_T) = \mathcal N(0, I)$, steps $p(z_{t-1}\mid z_t) = q(z_{t-1}\mid z_t, x = \hat x_\theta(z_t, t))$ and the
course's Bernoulli decoder $p_\theta(x\mid z_1) = \prod_d \operatorname{Bernoulli}(x_d; \hat x_\theta(z_1, 1)_d)$.
One network does all of it: it predicts $x$ as **logits**, so $\hat x = \operatorname{sigmoid}(\text{logits})$ is a
grey image in (0, 1) at every step, and at $t = 1$ the same logits are the decoder's. The ELBO has $T + 1$ terms:

$$\mathcal L(x) = \underbrace{\mathbb E_{q(z_1\mid x)}\log p_\theta(x\mid z_1)}_{\text{reconstruction}}
 - \sum_{t=2}^T \underbrace{\mathbb E_{q(z_t\mid x)}\tfrac12(\mathrm{SNR}_{t-1}-\mathrm{SNR}_t)
   \lVert x - \hat x_\theta(z_t, t)\rVert^2}_{\text{step } t}
 - \underbrace{\mathrm{KL}(q(z_T\mid x)\,\|\,\mathcal N(0, I))}_{\text{prior}}.$$

The network sees ``[z_t, embedding(t)]`` and returns two maps, ``b`` and ``a``; the logits are
$b + \operatorname{sigmoid}(a + c_t)\cdot\operatorname{logit}(\operatorname{clip}(z_t/\alpha_t))$. The second term is a
gated skip: $z_t/\alpha_t = x + (\sigma_t/\alpha_t)\varepsilon$ is already a guess of $x$, exact as the noise
vanishes, which a 400-unit MLP could not copy through its bottleneck; the gate (per pixel, plus a learned offset $c_t$
per step) decides how much to trust it, and $b$ adds what the rest of the image says.

* :class:`Diffusion` -- the model (``x_logits``, ``denoise``, ``decode``, ``sample``, ``sample_chain``);
* :func:`diffusion_objective` -- the training objective for :func:`vae_lesson.fit`: one uniformly drawn step per
  image, scaled by $T - 1$ (an unbiased estimate of the sum);
* :func:`diffusion_bound` -- every term of the bound per image, for evaluation in nats.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from vae_lesson import _checks
from vae_lesson.core.bounds import ELBOTerms
from vae_lesson.core.distributions import bernoulli_log_likelihood
from vae_lesson.core.models import mlp
from vae_lesson.theory.diffusion_toy import (
    Schedule,
    denoising_kl,
    posterior,
    prior_kl,
    sample_forward,
    vp_schedule,
)

SKIP_CLIP = 0.005  # z_t / alpha_t is clipped to [0.005, 0.995] before its logit


class Diffusion(nn.Module):
    r"""A diffusion model with ``num_steps`` latent layers, a shared MLP decoder and a Bernoulli $p(x\mid z_1)$.

    ``hidden_dims``: the MLP's widths; ``embed_dim``: the size of the learned step embedding;
    ``log_snr_max``, ``log_snr_min``: the schedule (:func:`vae_lesson.theory.diffusion_toy.vp_schedule`).
    """

    def __init__(self, input_dim: int = 784, num_steps: int = 10, hidden_dims=(400,), embed_dim: int = 32,
                 log_snr_max: float = 1.0, log_snr_min: float = -5.0):
        super().__init__()
        self.input_dim = _checks.integer("input_dim", input_dim, minimum=1)
        self.num_steps = _checks.integer("num_steps", num_steps, minimum=2)
        self.hidden_dims = _checks.dims("hidden_dims", hidden_dims)
        self.embed_dim = _checks.integer("embed_dim", embed_dim, minimum=1)
        self.schedule: Schedule = vp_schedule(self.num_steps, log_snr_max, log_snr_min)  # float64, on the CPU
        self.config = {"input_dim": self.input_dim, "num_steps": self.num_steps, "hidden_dims": list(self.hidden_dims),
                       "embed_dim": self.embed_dim, "log_snr_max": float(log_snr_max),
                       "log_snr_min": float(log_snr_min)}
        self.step_embedding = nn.Embedding(self.num_steps, self.embed_dim)
        self.net = mlp((self.input_dim + self.embed_dim, *self.hidden_dims, 2 * self.input_dim))  # b and a
        self.gate_offset = nn.Parameter(torch.zeros(self.num_steps))  # c_t: the skip's gate, per step

    def _steps(self, t, batch: int) -> torch.Tensor:
        """``t`` as an int64 tensor ``[batch]`` of steps in 1..T."""
        if isinstance(t, torch.Tensor):
            if t.dtype != torch.int64 or t.shape != (batch,):
                _checks.fail("t", f"an int or an int64 tensor of shape [{batch}]", f"{t.dtype} {list(t.shape)}",
                             TypeError if t.dtype != torch.int64 else ValueError)
        else:
            t = torch.full((batch,), _checks.integer("t", t), dtype=torch.int64)
        if batch and (int(t.min()) < 1 or int(t.max()) > self.num_steps):
            _checks.fail("t", f"steps from 1 to num_steps={self.num_steps}", f"{int(t.min())} to {int(t.max())}")
        return t

    def x_logits(self, z_t: torch.Tensor, t) -> torch.Tensor:
        r"""Logits of $\hat x_\theta(z_t, t)$, ``[batch, D]``; ``z_t [batch, D]``, ``t`` an int or ``[batch]``."""
        _checks.tensor("z_t", z_t, ndim=2)
        if z_t.shape[1] != self.input_dim:
            _checks.fail("z_t", f"shape [batch, {self.input_dim}] (input_dim)", list(z_t.shape))
        z_t = _checks.model_input("z_t", z_t, self)
        t = self._steps(t, z_t.shape[0])
        alpha = self.schedule.alpha[t.cpu()].to(z_t.dtype).unsqueeze(-1)  # [batch, 1]
        skip = torch.logit((z_t / alpha).clamp(SKIP_CLIP, 1 - SKIP_CLIP))  # [batch, D], the noisy image's logits
        h = torch.cat([z_t, self.step_embedding(t - 1)], dim=-1)  # [batch, D + embed_dim]
        b, a = self.net(h).chunk(2, dim=-1)  # [batch, D] each
        return b + torch.sigmoid(a + self.gate_offset[t - 1].unsqueeze(-1)) * skip

    def denoise(self, z_t: torch.Tensor, t) -> torch.Tensor:
        r"""The model's guess $\hat x_\theta(z_t, t) = \operatorname{sigmoid}(\text{logits})$, ``[batch, D]``, in
        (0, 1)."""
        return torch.sigmoid(self.x_logits(z_t, t))

    def decode(self, z_1: torch.Tensor) -> torch.Tensor:
        r"""The course's decoder: logits of $p_\theta(x\mid z_1)$, ``[batch, D]`` (the network at $t = 1$)."""
        return self.x_logits(z_1, 1)

    @torch.no_grad()
    def sample_chain(self, n: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        r"""Ancestral sampling through every layer: ``(z, x_hat)``, each ``[T, n, D]``; row ``t - 1`` holds $z_t$
        and the guess $\hat x_\theta(z_t, t)$. $z_T\sim\mathcal N(0, I)$, then $z_{t-1}\sim p(z_{t-1}\mid z_t)$.
        ``x_hat[0]`` are the decoder's pixel probabilities: the samples."""
        n = _checks.integer("n", n, minimum=1)
        _checks.generator("generator", generator)
        dtype = next(self.parameters()).dtype
        T = self.num_steps
        zs, x_hats = [None] * T, [None] * T
        z = torch.randn(n, self.input_dim, generator=generator, dtype=dtype)  # z_T
        for t in range(T, 0, -1):
            x_hat = self.denoise(z, t)  # [n, D]
            zs[t - 1], x_hats[t - 1] = z, x_hat
            if t > 1:
                mean, var = posterior(self.schedule, z, x_hat, t)
                z = mean + var.sqrt() * torch.randn(z.shape, generator=generator, dtype=dtype)  # z_{t-1}
        return torch.stack(zs), torch.stack(x_hats)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` samples as pixel probabilities ``[n, D]`` (what the course shows as samples)."""
        return self.sample_chain(n, generator)[1][0]

    def extra_repr(self) -> str:
        return (f"input_dim={self.input_dim}, num_steps={self.num_steps}, hidden_dims={self.hidden_dims}, "
                f"log_snr=({self.config['log_snr_max']:g} ... {self.config['log_snr_min']:g})")


def _check_diffusion(model) -> Diffusion:
    if not isinstance(model, Diffusion):
        _checks.fail("model", "a vae_lesson.variants.diffusion.Diffusion", type(model).__name__, TypeError)
    return model


def _check_x(model: Diffusion, x) -> torch.Tensor:
    _checks.tensor("x", x, ndim=2, low=0.0, high=1.0)
    if x.shape[1] != model.input_dim:
        _checks.fail("x", f"shape [batch, {model.input_dim}] (input_dim)", list(x.shape))
    return _checks.model_input("x", x, model)


def _step_kl(model: Diffusion, x: torch.Tensor, t, generator) -> torch.Tensor:
    """One draw of step ``t``'s term: ``z_t ~ q(z_t | x)``, then the closed-form KL, ``[batch]`` nats."""
    z_t = sample_forward(model.schedule, x, t, generator=generator)  # [batch, D]
    return denoising_kl(model.schedule, x, model.denoise(z_t, t), t)


def _reconstruction(model: Diffusion, x: torch.Tensor, generator) -> torch.Tensor:
    z_1 = sample_forward(model.schedule, x, 1, generator=generator)  # [batch, D]
    return bernoulli_log_likelihood(model.decode(z_1), x)  # [batch]


def diffusion_objective(model: Diffusion, x: torch.Tensor, generator: torch.Generator | None = None) -> ELBOTerms:
    r"""One-sample, unbiased estimates of the ELBO's terms with one step per image, for :func:`vae_lesson.fit`.

    ``reconstruction`` = $\log p_\theta(x\mid z_1)$, $z_1\sim q(z_1\mid x)$; ``kl`` = $(T-1)\cdot$(step $t$'s term)
    $+$ prior KL with $t$ uniform on $2..T$ per image: an unbiased estimate of
    $\mathrm{KL}(q(z_{1:T}\mid x)\,\|\,p_\theta(z_{1:T}))$, the hierarchical VAE's KL. ``[batch]`` tensors, nats.
    """
    _check_diffusion(model)
    _checks.generator("generator", generator)
    x = _check_x(model, x)
    T = model.num_steps
    t = torch.randint(2, T + 1, (x.shape[0],), generator=generator)  # [batch], one step per image
    kl = (T - 1) * _step_kl(model, x, t, generator) + prior_kl(model.schedule, x)
    reconstruction = _reconstruction(model, x, generator)
    return ELBOTerms(reconstruction - kl, reconstruction, kl)


class DiffusionBound(NamedTuple):
    """Every term of the bound, per image, nats: ``elbo = reconstruction - step_kls.sum(1) - prior_kl``."""

    elbo: torch.Tensor  # [n]
    reconstruction: torch.Tensor  # [n], one draw of z_1 per image
    step_kls: torch.Tensor  # [n, T - 1], column t - 2 is step t, one draw of z_t per image and step
    prior_kl: torch.Tensor  # [n], exact


@torch.no_grad()
def diffusion_bound(model: Diffusion, X: torch.Tensor, generator: torch.Generator | None = None,
                    batch_size: int = 500) -> DiffusionBound:
    r"""The full $(T+1)$-term ELBO of every image of ``X [n, D]``, each step's expectation by one draw of $z_t$.

    Each per-image value is an unbiased estimate of that image's ELBO, so the mean over images and its standard
    error across images (which includes this sampling noise) estimate the data set's ELBO. In eval mode."""
    _check_diffusion(model)
    _checks.tensor("X", X, ndim=2, low=0.0, high=1.0)
    batch_size = _checks.integer("batch_size", batch_size, minimum=1)
    _checks.generator("generator", generator)
    was_training = model.training
    model.eval()
    parts = []
    for start in range(0, X.shape[0], batch_size):
        x = _check_x(model, X[start:start + batch_size])
        reconstruction = _reconstruction(model, x, generator)
        steps = torch.stack([_step_kl(model, x, t, generator) for t in range(2, model.num_steps + 1)], 1)
        parts.append((reconstruction, steps, prior_kl(model.schedule, x)))
    model.train(was_training)
    reconstruction, steps, prior = (torch.cat(p) for p in zip(*parts))
    return DiffusionBound(reconstruction - steps.sum(1) - prior, reconstruction, steps, prior)
