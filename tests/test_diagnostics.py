"""nearest_neighbour_distance against a brute-force reference computed here."""

import pytest
import torch

from vae_lesson import nearest_neighbour_distance


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
