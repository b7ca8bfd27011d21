"""The optimizer :func:`~vae_lesson.fit` uses: Adam's fused kernel, called without the optimizer's bookkeeping.

``torch.optim.Adam(fused=True)`` already does the whole update in one kernel. Around it, each ``step()`` spends
about 0.1-0.4 ms in Python (hooks, grouping tensors by device and dtype, a profiler record), and the first
``torch.optim.Adam`` a process constructs imports ``torch._dynamo`` (about 1.4 s here). :class:`FusedAdam`
keeps the same state and calls the same kernel, ``torch._fused_adam_``, directly: the parameters it produces
are **bit-identical** to ``torch.optim.Adam(fused=True)`` (``tests/test_optim.py``), and a training step of the
course's MNIST VAE is about 4 % faster (15 alternating runs of each in one process). :func:`adam` falls back to
``torch.optim.Adam`` wherever the fast path does not apply (mixed devices or dtypes, another kind of device,
a torch without the kernel).
"""

from __future__ import annotations

import torch

from . import _checks

_FUSED_DEVICES = ("cpu", "cuda")


class FusedAdam:
    """Adam (Kingma & Ba) with ``torch.optim.Adam``'s defaults, for parameters on one device with one dtype.

    Only what :func:`~vae_lesson.fit` needs: ``zero_grad()`` and ``step()``. Like ``torch.optim.Adam``, a
    parameter whose ``.grad`` is ``None`` is skipped, and its state (moments and step count) starts at its
    first gradient.
    """

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        self.params = [p for p in params if p.requires_grad]
        if not self.params:
            _checks.fail("params", "at least one parameter that requires grad", "none")
        self.lr = _checks.number("lr", lr, positive=True)
        self.betas = tuple(float(b) for b in betas)
        self.eps = float(eps)
        self.state: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}  # index -> (m, v, step)

    def zero_grad(self) -> None:
        """Drop the gradients (``set_to_none``): backward then writes fresh ones instead of adding."""
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        """One Adam update of every parameter that has a gradient."""
        params, grads, exp_avgs, exp_avg_sqs, steps = [], [], [], [], []
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            if i not in self.state:
                self.state[i] = (torch.zeros_like(p, memory_format=torch.preserve_format),
                                 torch.zeros_like(p, memory_format=torch.preserve_format),
                                 torch.zeros((), dtype=torch.float32, device=p.device))
            m, v, t = self.state[i]
            params.append(p)
            grads.append(p.grad)
            exp_avgs.append(m)
            exp_avg_sqs.append(v)
            steps.append(t)
        if not params:
            return
        torch._foreach_add_(steps, 1)
        torch._fused_adam_(params, grads, exp_avgs, exp_avg_sqs, [], steps, amsgrad=False, lr=self.lr,
                           beta1=self.betas[0], beta2=self.betas[1], weight_decay=0.0, eps=self.eps,
                           maximize=False, grad_scale=None, found_inf=None)


def adam(params, lr: float = 1e-3):
    """:class:`FusedAdam` when every trainable parameter is a dense floating-point tensor on one CPU or CUDA device
    with one dtype (and this torch has the fused kernel); ``torch.optim.Adam`` otherwise. Both expose
    ``zero_grad`` and ``step``."""
    params = [p for p in params if p.requires_grad]
    kinds = {(p.device.type, p.dtype, p.is_sparse) for p in params}
    if len(kinds) == 1 and hasattr(torch, "_fused_adam_"):
        device_type, dtype, sparse = kinds.pop()
        if device_type in _FUSED_DEVICES and dtype.is_floating_point and not sparse:
            return FusedAdam(params, lr=lr)
    return torch.optim.Adam(params, lr=lr)
