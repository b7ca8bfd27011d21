"""FusedAdam gives exactly the parameters torch.optim.Adam(fused=True) gives; adam() picks it where it applies."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vae_lesson import VAE
from vae_lesson.optim import FusedAdam, adam


def _train(model, optimizer, steps, skip_decoder_every=0, seed=0):
    g = torch.Generator().manual_seed(seed)
    dtype = next(model.parameters()).dtype
    for step in range(steps):
        x = torch.rand(16, model.input_dim, generator=g, dtype=dtype)
        mu, logvar = model.encode(x)
        if skip_decoder_every and step % skip_decoder_every == 0:
            loss = (mu.pow(2) + logvar.exp()).sum()  # the decoder gets no gradient this step (grad None)
        else:
            loss = torch.nn.functional.binary_cross_entropy_with_logits(model.decode(mu), x)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


@settings(max_examples=10, deadline=None)
@given(lr=st.floats(1e-4, 3e-2), steps=st.integers(1, 12), skip=st.sampled_from([0, 2, 3]),
       dtype=st.sampled_from([torch.float32, torch.float64]))
def test_fused_adam_is_bit_identical_to_torch_adam(lr, steps, skip, dtype):
    torch.manual_seed(0)
    ours = VAE(12, 3, hidden_dims=(8,)).to(dtype)
    reference = VAE(12, 3, hidden_dims=(8,)).to(dtype)
    reference.load_state_dict(ours.state_dict())
    optimizer = adam(ours.parameters(), lr=lr)
    assert isinstance(optimizer, FusedAdam)
    _train(ours, optimizer, steps, skip)
    _train(reference, torch.optim.Adam(reference.parameters(), lr=lr, fused=True), steps, skip)
    for (name, a), b in zip(ours.named_parameters(), reference.parameters()):
        assert torch.equal(a, b), name


def test_a_parameter_never_given_a_gradient_is_left_alone():
    model = VAE(6, 2, hidden_dims=(4,))
    before = [p.detach().clone() for p in model.decoder.parameters()]
    optimizer = adam(model.parameters(), lr=1e-2)
    _train(model, optimizer, 3, skip_decoder_every=1)  # the decoder never gets a gradient
    assert all(torch.equal(a, b) for a, b in zip(before, model.decoder.parameters()))
    assert len(optimizer.state) == len(list(model.encoder.parameters()))


def test_adam_falls_back_to_torch_for_mixed_dtypes():
    params = [torch.nn.Parameter(torch.zeros(3)), torch.nn.Parameter(torch.zeros(3, dtype=torch.float64))]
    assert isinstance(adam(params), torch.optim.Adam)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="params: expected at least one parameter"):
        FusedAdam([torch.zeros(3)])  # requires_grad is False
    with pytest.raises(ValueError, match="lr: expected a number > 0"):
        FusedAdam([torch.nn.Parameter(torch.zeros(3))], lr=-1.0)
