r"""VQ-VAE (van den Oord, Vinyals & Kavukcuoglu 2017): discrete latents from a codebook, and priors over them.

The encoder maps $x$ to ``num_positions`` (P) continuous vectors $z_e \in \mathbb R^{P\times d}$; each is replaced by
its nearest entry of a learned codebook $\{e_1, \dots, e_K\}$, $k_p = \arg\min_j \lVert z_{e,p} - e_j\rVert^2$,
$z_q = (e_{k_1}, \dots, e_{k_P})$, and the decoder maps $z_q$ to Bernoulli logits. ``argmin`` has no gradient, so the
**straight-through** estimator feeds the decoder $z_e + \operatorname{sg}[z_q - z_e]$: its value is $z_q$, its
Jacobian with respect to $z_e$ is the identity (sg = stop-gradient, ``.detach()``). The loss per image is

$$-\log p_\theta(x\mid z_q) + \lVert \operatorname{sg}[z_e] - z_q\rVert^2 + \beta_{\text{commit}}
\lVert z_e - \operatorname{sg}[z_q]\rVert^2,$$

reconstruction in nats, the codebook term moving the codes towards the encoder outputs, the commitment term
keeping the encoder near its codes (squared distances, summed over positions and dimensions: not nats).

As a latent variable model, $q(z\mid x)$ is a point mass on the codes $k(x)$, so for any prior $\pi$ over
$K^P$ code sequences $\log p(x) \ge \log p_\theta(x\mid z_q) + \log \pi(k(x))$; for the uniform prior of training
this is reconstruction $- P\log K$ nats. :func:`neighbour_bound` sums $\pi(k)\,p_\theta(x\mid k)$ over
$k(x)$ and its single-position neighbours: an exact, tighter lower bound. Sampling needs a prior fitted to the
codes afterwards: :class:`CategoricalPrior` (independent positions, by counting) or :class:`AutoregressivePrior`
($\pi(k) = \prod_p \pi(k_p\mid k_{<p})$, a masked linear layer). Not here: Gaussian VAEs
(:mod:`vae_lesson.core.models`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from vae_lesson import _checks
from vae_lesson.core.bounds import ELBOTerms, Objective
from vae_lesson.core.checkpoint import register_model
from vae_lesson.core.distributions import bernoulli_log_likelihood
from vae_lesson.core.models import mlp


def nearest_code(z_e: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    r"""Index of the nearest code, $k = \arg\min_j \lVert z_e - e_j\rVert^2$: ``z_e [..., d]``, ``codebook [K, d]``
    -> ``[...]`` (int64). Distances by $\lVert z\rVert^2 - 2 z\cdot e + \lVert e\rVert^2$; ties go to the lower
    index."""
    _checks.tensor("z_e", z_e)
    _checks.tensor("codebook", codebook, ndim=2)
    if z_e.shape[-1] != codebook.shape[1]:
        _checks.fail("z_e", f"last dimension {codebook.shape[1]} (the codebook's code_dim)", list(z_e.shape))
    flat = z_e.reshape(-1, codebook.shape[1])  # [N, d]
    distances = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ codebook.T + codebook.pow(2).sum(1)  # [N, K]
    return distances.argmin(1).reshape(z_e.shape[:-1])


def straight_through(z_e: torch.Tensor, z_q: torch.Tensor) -> torch.Tensor:
    r"""$z_e + \operatorname{sg}[z_q - z_e]$: equals ``z_q`` forward; backward, the gradient passes to ``z_e``
    unchanged (identity Jacobian) and nothing reaches ``z_q``. Shapes equal, returned as is."""
    _checks.same_shape("z_e", z_e, "z_q", z_q)
    return z_e + (z_q - z_e).detach()


def vq_losses(z_e: torch.Tensor, z_q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r"""``(codebook, commitment)``, each ``[batch]``: $\lVert\operatorname{sg}[z_e] - z_q\rVert^2$ (gradient only to
    the codes) and $\lVert z_e - \operatorname{sg}[z_q]\rVert^2$ (gradient only to the encoder), summed over all
    but the first axis of ``z_e, z_q [batch, P, d]``. Equal in value; they differ only in where gradients go."""
    _checks.same_shape("z_e", z_e, "z_q", z_q)
    codebook = (z_e.detach() - z_q).pow(2).flatten(1).sum(1)  # [batch]
    commitment = (z_e - z_q.detach()).pow(2).flatten(1).sum(1)  # [batch]
    return codebook, commitment


def perplexity(indices: torch.Tensor, num_codes: int) -> torch.Tensor:
    r"""Codebook perplexity $\exp H(\hat u)$ of the empirical code frequencies $\hat u_j$ over all entries of
    ``indices`` (any shape, int): $K$ when all $K$ codes are used equally, 1 when a single code is used."""
    counts = code_usage(indices, num_codes).double()  # [K]
    u = counts / counts.sum()
    entropy = -(u * torch.log(u.clamp_min(1e-300))).sum()  # nats; 0 log 0 = 0
    return entropy.exp()


def _check_indices(indices, num_codes: int, positions: int | None = None) -> torch.Tensor:
    """An int64 tensor of values in [0, num_codes); of shape [n, positions] when ``positions`` is given."""
    if not isinstance(indices, torch.Tensor) or indices.dtype != torch.int64:
        _checks.fail("indices", "an int64 tensor of code indices", getattr(indices, "dtype", type(indices)), TypeError)
    if positions is not None and (indices.dim() != 2 or indices.shape[1] != positions):
        _checks.fail("indices", f"shape [n, {positions}] (one code per position)", list(indices.shape))
    if indices.numel() == 0 or indices.min() < 0 or indices.max() >= num_codes:
        _checks.fail("indices", f"a non-empty tensor of values in [0, {num_codes})", list(indices.shape)
                     if indices.numel() == 0 else f"values from {int(indices.min())} to {int(indices.max())}")
    return indices


def code_usage(indices: torch.Tensor, num_codes: int) -> torch.Tensor:
    """How often each code occurs in ``indices`` (any shape, int64 in [0, num_codes)): ``[num_codes]`` counts."""
    num_codes = _checks.integer("num_codes", num_codes, minimum=1)
    return torch.bincount(_check_indices(indices, num_codes).flatten(), minlength=num_codes)


@register_model
class VQVAE(nn.Module):
    """MLP encoder -> ``num_positions`` vectors of size ``code_dim`` -> nearest of ``num_codes`` codes -> MLP decoder.

    ``encode(x [batch, D]) -> z_e [batch, P, d]``; ``quantize(z_e) -> (indices [batch, P], z_q [batch, P, d])``;
    ``decode(z_q [batch, P, d]) -> x_logits [batch, D]``; ``decode_indices(indices [batch, P])`` likewise.
    The codebook starts as standard normal draws (torch's global generator, like every ``nn`` initialisation):
    codes of the scale the encoder's outputs soon reach. (Tiny codes, e.g. uniform in $[-1/K, 1/K]$, trained far
    more slowly here: they have to travel to the encoder's outputs at the learning rate's pace.)
    """

    def __init__(self, input_dim: int = 784, num_positions: int = 8, code_dim: int = 8, num_codes: int = 32,
                 hidden_dims=(400,)):
        super().__init__()
        self.input_dim = _checks.integer("input_dim", input_dim, minimum=1)
        self.num_positions = _checks.integer("num_positions", num_positions, minimum=1)
        self.code_dim = _checks.integer("code_dim", code_dim, minimum=1)
        self.num_codes = _checks.integer("num_codes", num_codes, minimum=1)
        self.hidden_dims = _checks.dims("hidden_dims", hidden_dims)
        self.config = {"input_dim": self.input_dim, "num_positions": self.num_positions, "code_dim": self.code_dim,
                       "num_codes": self.num_codes, "hidden_dims": list(self.hidden_dims)}
        flat = self.num_positions * self.code_dim
        self.encoder = mlp((self.input_dim, *self.hidden_dims, flat))
        self.decoder = mlp((flat, *reversed(self.hidden_dims), self.input_dim))
        self.codebook = nn.Parameter(torch.randn(self.num_codes, self.code_dim))  # [K, d]

    def extra_repr(self) -> str:
        return (f"input_dim={self.input_dim}, num_positions={self.num_positions}, code_dim={self.code_dim}, "
                f"num_codes={self.num_codes}, hidden_dims={self.hidden_dims}")

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """``x [batch, D]`` in [0, 1] -> continuous encoder outputs ``z_e [batch, P, d]``."""
        _checks.tensor("x", x, ndim=2, low=0.0, high=1.0)
        if x.shape[1] != self.input_dim:
            _checks.fail("x", f"shape [batch, {self.input_dim}] (input_dim)", list(x.shape))
        x = _checks.model_input("x", x, self)  # float64 data: cast once to the model's dtype
        return self.encoder(x).reshape(-1, self.num_positions, self.code_dim)  # [batch, P, d]

    def quantize(self, z_e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Nearest codes: ``z_e [batch, P, d]`` -> ``(indices [batch, P] int64, z_q [batch, P, d])``.

        No straight-through here: ``z_q`` depends on the codebook only (see :meth:`forward`)."""
        indices = nearest_code(z_e, self.codebook)  # [batch, P]
        return indices, self.codebook[indices]

    def decode(self, z_q: torch.Tensor) -> torch.Tensor:
        """``z_q [batch, P, d]`` -> ``x_logits [batch, D]``."""
        _checks.tensor("z_q", z_q, ndim=3)
        if tuple(z_q.shape[1:]) != (self.num_positions, self.code_dim):
            _checks.fail("z_q", f"shape [batch, {self.num_positions}, {self.code_dim}]", list(z_q.shape))
        return self.decoder(_checks.model_input("z_q", z_q, self).flatten(1))

    def decode_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """Code indices ``[batch, P]`` -> ``x_logits [batch, D]``."""
        _check_indices(indices, self.num_codes, self.num_positions)
        return self.decode(self.codebook[indices])

    def forward(self, x: torch.Tensor):
        """``(x_logits, z_e, z_q, indices)``; the decoder sees the straight-through ``z_q``."""
        z_e = self.encode(x)  # [batch, P, d]
        indices, z_q = self.quantize(z_e)
        return self.decoder(straight_through(z_e, z_q).flatten(1)), z_e, z_q, indices

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Pixel probabilities decoded from the nearest codes, ``[batch, D]``."""
        return torch.sigmoid(self(x)[0])

    @torch.no_grad()
    def codes(self, X: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
        """The code indices of every row of ``X [n, D]``: ``[n, P]`` int64 (in batches of ``batch_size``)."""
        batch_size = _checks.integer("batch_size", batch_size, minimum=1)
        return torch.cat([self.quantize(self.encode(X[s:s + batch_size]))[0] for s in range(0, X.shape[0], batch_size)])


def vq_objective(commitment_cost: float = 0.25):
    r"""A training objective for :func:`vae_lesson.fit`: ``objective(model, x, generator=None) ->``
    :class:`~vae_lesson.core.bounds.Objective`, the VQ-VAE loss per image

    ``loss`` $= -\log p_\theta(x\mid z_q) + \lVert\operatorname{sg}[z_e]-z_q\rVert^2
    + \beta_{\text{commit}}\lVert z_e-\operatorname{sg}[z_q]\rVert^2$, ``[batch]``,

    with the named terms ``reconstruction`` $= \log p_\theta(x\mid z_q)$ (nats) and ``squared_distance``
    $= \lVert z_e - z_q\rVert^2$ (summed over positions and dimensions: not nats, not a KL; the codebook and the
    commitment terms both have this value and differ only in where their gradient goes), so ``fit``'s history has
    those two series and nothing named ``kl`` or ``elbo``. The objective is not a bound: for the bound in nats use
    :func:`vq_bound`. No KL term, so ``fit``'s ``beta`` must stay 1. ``generator`` is unused (quantisation is
    deterministic).
    """
    commitment_cost = _checks.number("commitment_cost", commitment_cost, minimum=0.0)

    def objective(model, x: torch.Tensor, generator: torch.Generator | None = None) -> Objective:
        x_logits, z_e, z_q, _ = model(x)
        reconstruction = bernoulli_log_likelihood(x_logits, x)  # [batch]
        codebook, commitment = vq_losses(z_e, z_q)  # [batch] each
        vq = codebook + commitment_cost * commitment  # [batch]
        return Objective(loss=-(reconstruction - vq),
                         terms={"reconstruction": reconstruction, "squared_distance": codebook.detach()})

    objective.__name__ = objective.__qualname__ = f"vq_objective({commitment_cost:g})"
    return objective


@torch.no_grad()
def vq_bound(model: VQVAE, X: torch.Tensor, prior=None) -> ELBOTerms:
    r"""The ELBO of a VQ-VAE with a point-mass $q$: $\log p_\theta(x\mid z_q(x)) + \log\pi(k(x)) \le \log p(x)$.

    ``prior``: an object with ``log_prob(indices [n, P]) -> [n]`` (nats), or ``None`` for the uniform prior
    ($\log\pi = -P\log K$). Returns :class:`~vae_lesson.ELBOTerms` of ``[n]`` tensors in nats, with
    ``kl`` $= -\log\pi(k(x))$. ``X``: ``[n, D]`` in [0, 1].
    """
    if not isinstance(model, VQVAE):
        _checks.fail("model", "a vae_lesson.variants.vq_vae.VQVAE", type(model).__name__, TypeError)
    indices = model.codes(X)  # [n, P]
    reconstruction = bernoulli_log_likelihood(model.decode_indices(indices), X)  # [n]
    if prior is None:
        kl = torch.full_like(reconstruction, model.num_positions * math.log(model.num_codes))
    else:
        kl = -prior.log_prob(indices)  # [n]
    return ELBOTerms(reconstruction - kl, reconstruction, kl)


def _log_prior(model: VQVAE, prior, indices: torch.Tensor) -> torch.Tensor:
    r"""$\log\pi(k)$ of ``indices [m, P]``: ``[m]`` nats; ``prior=None`` is the uniform prior, $-P\log K$."""
    if prior is None:
        return torch.full((len(indices),), -model.num_positions * math.log(model.num_codes))
    return prior.log_prob(indices)


@torch.no_grad()
def neighbour_bound(model: VQVAE, X: torch.Tensor, prior=None, batch_size: int = 32) -> torch.Tensor:
    r"""A tighter lower bound on $\log p(x) = \log\sum_k \pi(k)\,p_\theta(x\mid k)$ than the point-mass ELBO:
    the same sum restricted to the chosen codes $k(x)$ and their single-position neighbours,

    $$\log p(x) \;\ge\; \log\!\!\sum_{k\in\mathcal N(x)}\!\! \pi(k)\,p_\theta(x\mid k) \;\ge\;
    \log\pi(k(x)) + \log p_\theta(x\mid k(x)),$$

    where $\mathcal N(x)$ holds $k(x)$ and every sequence that differs from it in exactly one position
    ($1 + P(K-1)$ sequences, one decoder pass each). Both inequalities hold exactly, with no sampling: the middle
    term sums a subset of the non-negative terms of $p(x)$, and that subset contains the point-mass term.

    ``X [n, D]`` in [0, 1]; ``prior``: ``log_prob(indices [m, P]) -> [m]`` nats, or ``None`` for uniform.
    Returns ``[n]`` nats. ``batch_size`` images at a time (each costs $1 + P(K-1)$ decoder passes).
    """
    if not isinstance(model, VQVAE):
        _checks.fail("model", "a vae_lesson.variants.vq_vae.VQVAE", type(model).__name__, TypeError)
    _checks.tensor("X", X, ndim=2, low=0.0, high=1.0)
    batch_size = _checks.integer("batch_size", batch_size, minimum=1)
    P, K = model.num_positions, model.num_codes
    out = []
    for start in range(0, len(X), batch_size):
        x = X[start:start + batch_size]  # [b, D]
        chosen = model.codes(x)  # [b, P]
        # every single-position change: candidate (p, j) is chosen with position p set to code j
        candidates = chosen[:, None, None, :].repeat(1, P, K, 1)  # [b, P, K, P]
        positions = torch.arange(P)
        candidates[:, positions, :, positions] = torch.arange(K)  # [b, P, K, P]
        candidates = candidates.reshape(len(x), P * K, P)  # [b, P*K, P]
        is_chosen = (candidates == chosen[:, None, :]).all(2)  # [b, P*K]: the P copies of k(x) itself
        flat = candidates.reshape(-1, P)  # [b*P*K, P]
        x_rep = x[:, None, :].expand(len(x), P * K, x.shape[1]).reshape(-1, x.shape[1])  # [b*P*K, D]
        log_joint = (bernoulli_log_likelihood(model.decode_indices(flat), x_rep)
                     + _log_prior(model, prior, flat)).reshape(len(x), P * K)  # [b, P*K]
        point_mass = log_joint.masked_fill(~is_chosen, -math.inf).amax(1)  # [b], the term of k(x)
        neighbours = log_joint.masked_fill(is_chosen, -math.inf)  # [b, P*K], the P(K-1) neighbours
        out.append(torch.logsumexp(torch.cat([point_mass[:, None], neighbours], 1), 1))  # [b]
    return torch.cat(out)


class CategoricalPrior:
    r"""Independent positions: $\pi(k) = \prod_p \pi_p(k_p)$, each $\pi_p$ the code frequencies at position $p$
    with ``alpha`` pseudo-counts (add-alpha smoothing, so unseen codes keep a non-zero probability)."""

    def __init__(self, indices: torch.Tensor, num_codes: int, alpha: float = 1.0):
        self.num_codes = _checks.integer("num_codes", num_codes, minimum=1)
        _check_indices(indices, num_codes, indices.shape[-1] if isinstance(indices, torch.Tensor) else None)
        alpha = _checks.number("alpha", alpha, minimum=0.0)
        counts = F.one_hot(indices, num_codes).sum(0).double() + alpha  # [P, K]
        self.log_probs = (counts / counts.sum(1, keepdim=True)).log().float()  # [P, K]

    def log_prob(self, indices: torch.Tensor) -> torch.Tensor:
        r"""$\log\pi(k) = \sum_p \log\pi_p(k_p)$: ``indices [n, P]`` -> ``[n]`` nats."""
        _check_indices(indices, self.num_codes, self.log_probs.shape[0])
        return self.log_probs.gather(1, indices.T).sum(0)  # [n]

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` code sequences, ``[n, P]`` int64, each position drawn independently."""
        n = _checks.integer("n", n, minimum=1)
        return torch.multinomial(self.log_probs.exp(), n, replacement=True, generator=generator).T  # [n, P]


class AutoregressivePrior(nn.Module):
    r"""$\pi(k) = \prod_{p=1}^P \operatorname{softmax}(b_p + \sum_{q<p} W_{pq}\,\mathrm{onehot}(k_q))_{k_p}$:
    one linear layer on the one-hot codes, masked so that position $p$ sees only positions before it.
    Train it by maximising ``log_prob`` (nats) on the training codes; ``sample`` draws positions in order."""

    def __init__(self, num_positions: int, num_codes: int):
        super().__init__()
        self.num_positions = _checks.integer("num_positions", num_positions, minimum=1)
        self.num_codes = _checks.integer("num_codes", num_codes, minimum=1)
        size = self.num_positions * self.num_codes
        self.linear = nn.Linear(size, size)
        nn.init.zeros_(self.linear.weight)  # start from the uniform prior, log pi(k) = -P log K
        nn.init.zeros_(self.linear.bias)
        position = torch.arange(size) // self.num_codes  # [P*K]: the position of each unit
        self.register_buffer("mask", (position[None, :] < position[:, None]).float())  # [out, in], strictly earlier

    def logits(self, indices: torch.Tensor) -> torch.Tensor:
        """``indices [n, P]`` -> logits ``[n, P, K]`` of $\\pi(k_p \\mid k_{<p})$."""
        one_hot = F.one_hot(indices, self.num_codes).flatten(1).float()  # [n, P*K]
        out = F.linear(one_hot, self.linear.weight * self.mask, self.linear.bias)  # [n, P*K]
        return out.reshape(-1, self.num_positions, self.num_codes)

    def log_prob(self, indices: torch.Tensor) -> torch.Tensor:
        r"""$\log\pi(k)$: ``indices [n, P]`` -> ``[n]`` nats (differentiable)."""
        _check_indices(indices, self.num_codes, self.num_positions)
        log_p = torch.log_softmax(self.logits(indices), -1)  # [n, P, K]
        return log_p.gather(2, indices[..., None]).squeeze(2).sum(1)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` code sequences ``[n, P]``, ancestral sampling one position at a time."""
        n = _checks.integer("n", n, minimum=1)
        indices = torch.zeros(n, self.num_positions, dtype=torch.int64)
        for p in range(self.num_positions):
            probs = torch.softmax(self.logits(indices)[:, p], -1)  # [n, K]; depends only on positions < p
            indices[:, p] = torch.multinomial(probs, 1, generator=generator).squeeze(1)
        return indices
