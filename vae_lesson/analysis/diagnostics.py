r"""Numbers that say whether generated images look like data, so notebooks can *check* "this is garbage".

:func:`nearest_neighbour_distance` is the simplest measure: for each generated image, the root-mean-square
pixel distance to the closest real image of a reference set,

$$d(\hat x) = \min_{x \in \text{reference}} \sqrt{\tfrac1D \lVert \hat x - x \rVert^2}.$$

It is blind in a way notebook 06 measures: a blur that is no digit at all (the average image) scores almost as
well as real digits, so it cannot tell digits from smoke. For a *set* of samples use :func:`frechet_distance`
(FID's idea in the PCA features of :func:`pca_basis`), always beside its floor: the distance between two sets of
real images of the same sizes (train-vs-test or val-vs-test), which no set of samples can be expected to beat.
Both are yardsticks for comparisons inside the course, not sample-quality scores for papers.
"""

from __future__ import annotations

import torch

from vae_lesson import _checks


@torch.no_grad()
def nearest_neighbour_distance(images: torch.Tensor, reference: torch.Tensor, chunk: int = 256) -> torch.Tensor:
    """RMS pixel distance from each of ``images [n, D]`` to its nearest row of ``reference [m, D]``: ``[n]``."""
    _checks.tensor("images", images, ndim=2)
    _checks.tensor("reference", reference, ndim=2)
    if images.shape[1] != reference.shape[1]:
        _checks.fail("reference", f"shape [m, {images.shape[1]}] (the width of images)", list(reference.shape))
    chunk = _checks.integer("chunk", chunk, minimum=1)
    reference = reference.to(images.dtype)
    out = []
    for start in range(0, images.shape[0], chunk):
        part = images[start:start + chunk]
        squared = torch.cdist(part, reference).pow(2).min(dim=1).values  # [chunk]
        out.append((squared / images.shape[1]).sqrt())
    return torch.cat(out) if out else images.new_zeros(0)


def pca_basis(X: torch.Tensor, n_components: int = 20) -> tuple[torch.Tensor, torch.Tensor]:
    """``(mean [D], components [D, n_components])``: the top principal axes of ``X [n, D]`` (largest variance first)."""
    _checks.tensor("X", X, ndim=2)
    n_components = _checks.integer("n_components", n_components, minimum=1)
    if n_components > X.shape[1]:
        _checks.fail("n_components", f"at most D = {X.shape[1]}", n_components)
    X = X.double()
    _, eigenvectors = torch.linalg.eigh(torch.cov(X.T))  # ascending eigenvalues, [D, D]
    return X.mean(0), eigenvectors[:, -n_components:].flip(-1)


@torch.no_grad()
def frechet_distance(images: torch.Tensor, reference: torch.Tensor, basis: tuple[torch.Tensor, torch.Tensor]) -> float:
    r"""Fréchet distance between Gaussians fitted to two image sets, in a PCA feature space (FID's idea, no network).

    Features are projections on ``basis = pca_basis(X_train, k)``; with $\mathcal N(m_a, C_a)$ and
    $\mathcal N(m_b, C_b)$ fitted to the two sets of features,

    $$\mathrm{FD} = \lVert m_a - m_b\rVert^2
      + \operatorname{tr}\big(C_a + C_b - 2\,(C_a^{1/2} C_b C_a^{1/2})^{1/2}\big),$$

    the squared 2-Wasserstein distance between the Gaussians. 0 for identical statistics; unlike a per-image
    distance, it penalises a set of samples without the data's spread (e.g. the same blur every time).
    """
    _checks.tensor("images", images, ndim=2)
    _checks.tensor("reference", reference, ndim=2)
    mean, components = basis
    for name, t in (("images", images), ("reference", reference)):
        if t.shape[1] != components.shape[0] or t.shape[0] < 2:
            _checks.fail(name, f"shape [n >= 2, {components.shape[0]}] (the basis's D)", list(t.shape))
    feats_a = (images.double() - mean) @ components  # [n_a, k]
    feats_b = (reference.double() - mean) @ components  # [n_b, k]
    cov_a, cov_b = torch.atleast_2d(torch.cov(feats_a.T)), torch.atleast_2d(torch.cov(feats_b.T))  # [k, k]
    values, vectors = torch.linalg.eigh(cov_a)
    sqrt_a = vectors @ torch.diag(values.clamp(min=0).sqrt()) @ vectors.T  # C_a^(1/2)
    cross = torch.linalg.eigvalsh(sqrt_a @ cov_b @ sqrt_a).clamp(min=0).sqrt().sum()  # tr (C_a^1/2 C_b C_a^1/2)^1/2
    distance = (feats_a.mean(0) - feats_b.mean(0)).pow(2).sum() + cov_a.trace() + cov_b.trace() - 2 * cross
    return float(distance.clamp(min=0))
