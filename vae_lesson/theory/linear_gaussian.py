r"""Probabilistic PCA: a latent variable model where *every* quantity is exact.

$$p(z) = \mathcal N(0, I_d), \qquad p(x \mid z) = \mathcal N(Wz + b,\ \sigma^2 I_D),
\qquad W \in \mathbb R^{D\times d}.$$

Because everything is linear and Gaussian, the marginal and the posterior are Gaussian in closed form:

$$p(x) = \mathcal N\big(b,\ WW^\top + \sigma^2 I_D\big), \qquad
p(z \mid x) = \mathcal N\big(M^{-1}W^\top(x-b)/\sigma^2,\ M^{-1}\big),\quad M = I_d + W^\top W/\sigma^2,$$

and so is the ELBO of any diagonal Gaussian $q(z) = \mathcal N(m, \operatorname{diag} s^2)$:

$$\text{ELBO} = -\tfrac D2\log 2\pi\sigma^2
  - \frac{\lVert x - b - Wm\rVert^2 + \operatorname{tr}(W\operatorname{diag}(s^2)W^\top)}{2\sigma^2}
  - \mathrm{KL}\big(q\,\|\,\mathcal N(0, I)\big).$$

That makes it the course's test bench: ``log_marginal(x) - elbo(x, q) == kl_to_posterior(x, q)`` holds to
numerical precision (notebook 04), with no sampling anywhere. Computed in float64.
"""

from __future__ import annotations

import math

import torch

from vae_lesson import _checks
from vae_lesson.core.distributions import gaussian_kl


class LinearGaussian:
    """``LinearGaussian(W [D, d], b [D], sigma > 0)``: exact log-marginal, posterior and ELBO. All in nats."""

    def __init__(self, W: torch.Tensor, b: torch.Tensor, sigma: float):
        _checks.tensor("W", W, ndim=2)
        _checks.tensor("b", b, ndim=1)
        if b.shape[0] != W.shape[0]:
            _checks.fail("b", f"shape [{W.shape[0]}] (W is [D, d] = {list(W.shape)})", list(b.shape))
        self.sigma = _checks.number("sigma", sigma, positive=True)
        self.W = W.detach().double()  # [D, d]
        self.b = b.detach().double()  # [D]
        self.data_dim, self.latent_dim = self.W.shape

    def __repr__(self) -> str:
        return f"LinearGaussian(D={self.data_dim}, d={self.latent_dim}, sigma={self.sigma:g})"

    def _check_x(self, x):
        _checks.tensor("x", x, ndim=2)
        if x.shape[1] != self.data_dim:
            _checks.fail("x", f"shape [batch, {self.data_dim}] (D)", list(x.shape))
        return x.double()

    def marginal_covariance(self) -> torch.Tensor:
        """$WW^\\top + \\sigma^2 I$, ``[D, D]``."""
        return self.W @ self.W.T + self.sigma**2 * torch.eye(self.data_dim, dtype=torch.float64)

    def log_marginal(self, x: torch.Tensor) -> torch.Tensor:
        """$\\log p(x) = \\log\\mathcal N(x; b, WW^\\top + \\sigma^2 I)$. ``x [batch, D]`` -> ``[batch]``, nats."""
        x = self._check_x(x)
        cov = self.marginal_covariance()
        chol = torch.linalg.cholesky(cov)  # [D, D]
        diff = (x - self.b).T  # [D, batch]
        white = torch.linalg.solve_triangular(chol, diff, upper=False)  # [D, batch]
        log_det = 2 * torch.log(torch.diagonal(chol)).sum()
        return -0.5 * (self.data_dim * math.log(2 * math.pi) + log_det + white.pow(2).sum(0))

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The exact $p(z\\mid x)$: ``(mean [batch, d], cov [d, d])``; the covariance does not depend on x."""
        x = self._check_x(x)
        precision = torch.eye(self.latent_dim, dtype=torch.float64) + self.W.T @ self.W / self.sigma**2
        cov = torch.linalg.inv(precision)  # [d, d]
        cov = 0.5 * (cov + cov.T)
        mean = (x - self.b) @ self.W @ cov / self.sigma**2  # [batch, d]  (cov is symmetric)
        return mean, cov

    def _check_q(self, x, q_mu, q_logvar):
        _checks.tensor("q_mu", q_mu, ndim=2)
        _checks.tensor("q_logvar", q_logvar, ndim=2)
        _checks.same_shape("q_mu", q_mu, "q_logvar", q_logvar)
        if q_mu.shape != (x.shape[0], self.latent_dim):
            _checks.fail("q_mu", f"shape [{x.shape[0]}, {self.latent_dim}] (batch of x, d)", list(q_mu.shape))
        return q_mu.double(), q_logvar.double()

    def expected_log_likelihood(self, x: torch.Tensor, q_mu: torch.Tensor,
                                q_logvar: torch.Tensor) -> torch.Tensor:
        """$\\mathbb E_{q}[\\log p(x\\mid z)]$ in closed form (the reconstruction term), ``[batch]``, nats."""
        x = self._check_x(x)
        q_mu, q_logvar = self._check_q(x, q_mu, q_logvar)
        residual = x - self.b - q_mu @ self.W.T  # [batch, D]
        trace = (q_logvar.exp() * self.W.pow(2).sum(0)).sum(-1)  # tr(W diag(s^2) W^T), [batch]
        s2 = self.sigma**2
        return -0.5 * self.data_dim * math.log(2 * math.pi * s2) - (residual.pow(2).sum(-1) + trace) / (2 * s2)

    def elbo(self, x: torch.Tensor, q_mu: torch.Tensor, q_logvar: torch.Tensor) -> torch.Tensor:
        """Exact ELBO of $q(z) = \\mathcal N(q\\_mu, \\operatorname{diag} e^{q\\_logvar})$ for each row of x.

        Returns ``[batch]``, nats."""
        recon = self.expected_log_likelihood(x, q_mu, q_logvar)
        return recon - gaussian_kl(q_mu.double(), q_logvar.double())

    def kl_to_posterior(self, x: torch.Tensor, q_mu: torch.Tensor, q_logvar: torch.Tensor) -> torch.Tensor:
        """$\\mathrm{KL}(q \\,\\|\\, p(z\\mid x))$ between a diagonal Gaussian q and the exact posterior.

        Returns ``[batch]``, nats; equals ``log_marginal(x) - elbo(x, q_mu, q_logvar)``."""
        x = self._check_x(x)
        q_mu, q_logvar = self._check_q(x, q_mu, q_logvar)
        mean, cov = self.posterior(x)
        precision = torch.linalg.inv(cov)
        diff = mean - q_mu  # [batch, d]
        trace = (torch.diagonal(precision) * q_logvar.exp()).sum(-1)
        maha = ((diff @ precision) * diff).sum(-1)
        log_det_p = torch.linalg.slogdet(cov)[1]
        return 0.5 * (trace + maha - self.latent_dim + log_det_p - q_logvar.sum(-1))

    def sample(self, n: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Ancestral sampling: ``(x [n, D], z [n, d])`` with $z\\sim p(z)$, $x \\sim p(x\\mid z)$."""
        n = _checks.integer("n", n, minimum=1)
        _checks.generator("generator", generator)
        z = torch.randn(n, self.latent_dim, generator=generator, dtype=torch.float64)
        noise = torch.randn(n, self.data_dim, generator=generator, dtype=torch.float64)
        return z @ self.W.T + self.b + self.sigma * noise, z
