r"""Numbers that say whether generated images look like data, so notebooks can *check* "this is garbage".

:func:`nearest_neighbour_distance` is the simplest honest measure: for each generated image, the root-mean-square
pixel distance to the closest real image of a reference set,

$$d(\hat x) = \min_{x \in \text{reference}} \sqrt{\tfrac1D \lVert \hat x - x \rVert^2}.$$

A reconstruction of a real digit sits close to some training digit; a decode from an empty region of a latent
space (or a blur that is no digit at all) sits far from all of them. It is a yardstick for comparisons inside
one notebook, not a sample-quality score for papers.
"""

from __future__ import annotations

import torch

from . import _checks


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
