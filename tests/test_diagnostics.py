"""nearest_neighbour_distance against a brute-force reference computed here."""

import numpy as np
import pytest
import torch

from vae_lesson.analysis.diagnostics import frechet_distance, nearest_neighbour_distance, pca_basis


def test_matches_brute_force():
    g = torch.Generator().manual_seed(0)
    images, reference = torch.rand(7, 16, generator=g), torch.rand(11, 16, generator=g)
    expected = torch.stack([min((im - r).pow(2).mean().sqrt() for r in reference) for im in images])
    assert torch.allclose(nearest_neighbour_distance(images, reference, chunk=3), expected, atol=1e-5)


def test_zero_for_members_of_the_reference():
    reference = torch.rand(5, 9)
    assert torch.allclose(nearest_neighbour_distance(reference[[4, 1]], reference), torch.zeros(2), atol=1e-3)


def test_shape_mismatch_is_rejected():
    with pytest.raises(ValueError, match=r"reference: expected shape \[m, 9\]"):
        nearest_neighbour_distance(torch.rand(2, 9), torch.rand(3, 8))


def test_pca_basis_finds_the_high_variance_axis():
    g = torch.Generator().manual_seed(1)
    X = torch.randn(2000, 3, generator=g, dtype=torch.float64) * torch.tensor([0.1, 3.0, 1.0], dtype=torch.float64)
    mean, components = pca_basis(X, 2)
    assert mean.shape == (3,) and components.shape == (3, 2)
    assert abs(components[1, 0]) > 0.99 and abs(components[2, 1]) > 0.99  # largest variance first
    with pytest.raises(ValueError, match="n_components: expected at most D = 3"):
        pca_basis(X, 4)


def test_frechet_distance_matches_scipy_closed_form():
    scipy_linalg = pytest.importorskip("scipy.linalg")
    g = torch.Generator().manual_seed(2)
    a = torch.randn(500, 4, generator=g, dtype=torch.float64) @ torch.randn(4, 4, generator=g, dtype=torch.float64)
    b = torch.randn(700, 4, generator=g, dtype=torch.float64) * 2 + 1
    basis = (torch.zeros(4, dtype=torch.float64), torch.eye(4, dtype=torch.float64))  # features = pixels
    ca, cb = np.cov(a.numpy().T), np.cov(b.numpy().T)
    expected = (((a.mean(0) - b.mean(0)) ** 2).sum().item()
                + np.trace(ca + cb - 2 * scipy_linalg.sqrtm(ca @ cb).real))
    assert frechet_distance(a, b, basis) == pytest.approx(expected, rel=1e-8)
    assert frechet_distance(a, a, basis) == pytest.approx(0.0, abs=1e-8)


def test_frechet_distance_penalises_missing_spread():
    g = torch.Generator().manual_seed(3)
    data = torch.rand(400, 16, generator=g)
    basis = pca_basis(data, 5)
    same_blur = data.mean(0, keepdim=True).repeat(400, 1)
    other_half = torch.rand(400, 16, generator=g)
    assert frechet_distance(other_half, data, basis) < 0.2 * frechet_distance(same_blur, data, basis)
    with pytest.raises(ValueError, match=r"images: expected shape \[n >= 2, 16\]"):
        frechet_distance(torch.rand(1, 16), data, basis)
